"""The registry: source and destination types by name, their settings, how to build them.

Adding a protocol is one module implementing ``sync.contracts.Source`` or ``Destination`` and
one ``register_source`` / ``register_destination`` call at the bottom of this file. The CLI
never names a protocol: it asks ``assemble`` for an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from .config import Options, Pipeline
from .contracts import Destination, Source, StateStore
from .depositor import DepositPolicy
from .engine import Engine, EngineSettings
from .errors import ConfigError
from .fetcher import Fetcher
from .http import Http, HttpOptions, HttpSettings, host_key
from .settings import from_table, to_table


@dataclass
class Runtime:
    """What every source and destination of one run share: one polite HTTP client, the
    fetcher that verifies downloads, the pipeline's options."""

    http: Http
    fetcher: Fetcher
    options: Options
    destination_collections: list[str]  # the collections the pipeline maps to


@dataclass(frozen=True)
class SourceType:
    name: str
    settings: type[Any]
    build: Callable[[Any, Runtime], Source]
    detect: Callable[[str, Http], bool] | None = None  # does this location speak it?


@dataclass(frozen=True)
class DestinationType:
    name: str
    settings: type[Any]
    build: Callable[[Any, Runtime], Destination]


SOURCES: dict[str, SourceType] = {}
DESTINATIONS: dict[str, DestinationType] = {}


def register_source(kind: SourceType) -> None:
    SOURCES[kind.name] = kind


def register_destination(kind: DestinationType) -> None:
    DESTINATIONS[kind.name] = kind


def _source_type(name: str) -> SourceType:
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(
            f"source.type {name!r} is not known", hint="known: " + ", ".join(sorted(SOURCES))
        ) from None


def _destination_type(name: str) -> DestinationType:
    try:
        return DESTINATIONS[name]
    except KeyError:
        raise ConfigError(
            f"destination.type {name!r} is not known",
            hint="known: " + ", ".join(sorted(DESTINATIONS)),
        ) from None


def settings_fields(side: str, name: str) -> set[str]:
    kind = _source_type(name) if side == "source" else _destination_type(name)
    return {f.name for f in fields(kind.settings)}


LOCATION_KEYS = ("url", "base_url", "path")


def source_settings(p: Pipeline, source_type: str) -> Any:
    """The source's settings; a location given under another type's key (the command line's
    SOURCE is a ``url`` or a ``path``) moves to the key this type names it by."""
    kind = _source_type(source_type)
    table = dict(p.source)
    names = {f.name for f in fields(kind.settings)}
    own = next((k for k in LOCATION_KEYS if k in names), None)
    for key in LOCATION_KEYS:
        if own is not None and key != own and key in table and own not in table:
            table[own] = table.pop(key)
    return from_table(kind.settings, table, "source")


def destination_settings(p: Pipeline) -> Any:
    return from_table(_destination_type(p.destination_type).settings, p.destination, "destination")


def check_pipeline(p: Pipeline) -> None:
    """Every setting of the pipeline fits its type (raises ConfigError naming the key); the
    tables are stored normalised (sizes in bytes, defaults filled in)."""
    if not p.source_location:
        raise ConfigError("no source given", hint="SOURCE argument, or url / path in [source]")
    if p.source_type is not None:
        p.source = to_table(source_settings(p, p.source_type))
    dest = destination_settings(p)
    p.destination = to_table(dest)
    check = getattr(dest, "check_collections", None)
    if callable(check):
        check(p.collections)


def relocate(p: Pipeline, location: str) -> dict[str, Any]:
    """The pipeline's source table read from another location (a new export, a moved URL)."""
    table = {k: v for k, v in p.source.items() if k not in LOCATION_KEYS}
    key = "url" if "://" in location else "path"
    if p.source_type is not None:
        names = {f.name for f in fields(_source_type(p.source_type).settings)}
        key = next((k for k in LOCATION_KEYS if k in names), key)
    table[key] = location
    return table


def build_destination(p: Pipeline) -> Destination:
    """Only the destination (for ``status``: what it holds back); sends no request."""
    runtime = _runtime(p, http_for(p))
    return _destination_type(p.destination_type).build(destination_settings(p), runtime)


def _runtime(p: Pipeline, http: Http) -> Runtime:
    return Runtime(
        http=http,
        fetcher=Fetcher(http, max_file_size=p.max_file_size),
        options=p.options(),
        destination_collections=sorted(set(p.collections.values())),
    )


def detect_source_type(location: str, http: Http) -> str:
    """The source type a location speaks: a local path is an archive; a URL is asked in
    registration order (each ``detect`` sends at most one request)."""
    for kind in SOURCES.values():
        if kind.detect is not None and kind.detect(location, http):
            return kind.name
    return "resourcesync"


@dataclass
class Assembly:
    """An engine with the source, destination and HTTP client it was built from."""

    engine: Engine
    source: Source
    destination: Destination
    http: Http
    pipeline: Pipeline  # with the detected source type and normalised settings

    def close(self) -> None:
        self.source.close()
        self.destination.close()
        self.http.close()


def http_for(p: Pipeline) -> Http:
    settings = HttpSettings(
        **{f.name: getattr(p, f.name) for f in fields(HttpOptions)},
        concurrency_cap=p.workers,  # adaptive politeness never above the worker count
        verify=(p.ca_bundle or True) if p.verify_tls else False,
        pool_size=max(4, p.workers * 2),
    )
    allowed = {host_key(h if "://" in h else f"http://{h}") for h in p.allowed_hosts}
    return Http(settings=settings, allowed_hosts=allowed)


def assemble(p: Pipeline, state: StateStore, *, progress: bool = True) -> Assembly:
    """Build the HTTP client, source, destination and engine a pipeline names."""
    http = http_for(p)
    runtime = _runtime(p, http)
    source_type = p.source_type
    if source_type is None:
        if "://" in p.source_location:
            http.allow(p.source_location)
        source_type = detect_source_type(p.source_location, http)
    chosen = source_settings(p, source_type)
    p = replace(p, source_type=source_type, source=to_table(chosen))
    source = _source_type(source_type).build(chosen, runtime)
    destination = _destination_type(p.destination_type).build(destination_settings(p), runtime)
    settings = EngineSettings(
        name=p.name,
        collection=p.collection,
        collections=dict(p.collections),
        metadata_preference=tuple(p.metadata_preference),
        unlinked=p.unlinked,
        workers=p.workers,
        limit=p.limit,
        overlap_seconds=p.overlap_seconds,
        max_delete_share=p.max_delete_share,
        policy=DepositPolicy(
            on_archived=p.on_archived, missing_title=p.missing_title, attempts=p.attempts
        ),
    )
    engine = Engine(
        settings,
        source,
        destination,
        state,
        progress=progress,
        requests_sent=lambda: http.requests_sent,
    )
    return Assembly(engine, source, destination, http, p)


# -- the registrations -------------------------------------------------------------------------
def register_module(side: str, module: Any) -> None:
    """A protocol module names itself (``NAME``), its settings (``Settings``), a ``build``
    function and, for sources, optionally ``detect``."""
    if side == "source":
        register_source(
            SourceType(module.NAME, module.Settings, module.build, getattr(module, "detect", None))
        )
    else:
        register_destination(DestinationType(module.NAME, module.Settings, module.build))


def _register_builtin() -> None:
    from .destinations import memory as memory_destination
    from .destinations import saf_plugin as saf_destination
    from .destinations.sword import plugin as sword
    from .sources import memory as memory_source
    from .sources import saf_plugin as saf_source
    from .sources.oai_pmh import plugin as oai_pmh
    from .sources.resourcesync import plugin as resourcesync

    register_module("source", resourcesync)
    register_module("source", saf_source)  # detected first: a local path, no request
    register_module("source", oai_pmh)
    register_module("source", memory_source)
    register_module("destination", sword)
    register_module("destination", saf_destination)
    register_module("destination", memory_destination)


_register_builtin()
