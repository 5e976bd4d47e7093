"""Pipeline configuration: which source goes to which destination, with which options.

A pipeline is a TOML file (``pipelines/NAME.toml``)::

    [source]                 # type: resourcesync | oai-pmh | saf (detected when left out)
    url = "https://repository.example.edu/rs/"
    [destination]            # type: sword | saf (sword when left out)
    collection = "https://mirror.example.org/swordv2/collection/123456789/1"
    [collections]            # source collection -> destination collection
    [options]                # the engine's and the HTTP client's options (``Options``)

The first release's files (``source = "URL"`` and option keys in ``[destination]`` or at the
top) keep working: they are read into the same shape. The same settings can come from the
command line for one-off runs. Secrets never come from the command line or a pipeline file:
the SWORD password is read from an environment variable or from an owner-only file.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, register_secret
from .http import HttpOptions
from .linker import DEFAULT_PREFERENCE
from .settings import from_table, parse_size, require, size_field, to_table

DEFAULT_STATE_DIR = Path("state")

__all__ = ["Options", "Pipeline", "load_pipeline", "parse_size", "read_secret_file"]


@dataclass
class Options(HttpOptions):
    """The ``[options]`` table: how the engine and the HTTP client (``HttpOptions``: timeouts,
    retries, politeness) behave."""

    metadata_preference: list[str] = field(default_factory=lambda: list(DEFAULT_PREFERENCE))
    unlinked: Literal["deposit", "skip"] = "deposit"  # resources linked to nothing
    missing_title: Literal["fallback", "fail"] = "fallback"
    on_archived: Literal["fail", "skip", "recreate"] = "fail"
    workers: int = 8  # items in parallel; also the cap of the adaptive per-host concurrency
    limit: int | None = None  # at most N items per run
    max_file_size: int = size_field(4 * 2**30)
    allowed_hosts: list[str] = field(default_factory=list)
    overlap_seconds: int = 300
    max_delete_share: float = 0.5
    ca_bundle: str | None = None

    def validate(self, section: str = "options") -> None:
        require(1 <= self.workers <= 256, section, "workers", "must be between 1 and 256")
        require(
            self.per_host_concurrency is None or self.per_host_concurrency >= 1,
            section,
            "per_host_concurrency",
            "must be at least 1",
        )
        require(
            self.per_host_rate is None or self.per_host_rate >= 0,
            section,
            "per_host_rate",
            "must be 0 or more",
        )
        require(self.limit is None or self.limit >= 1, section, "limit", "must be at least 1")
        require(self.max_file_size > 0, section, "max_file_size", "must be positive")
        require(self.overlap_seconds >= 0, section, "overlap_seconds", "must be 0 or more")
        require(0 < self.max_delete_share <= 1, section, "max_delete_share", "must be in (0, 1]")
        for key in ("connect_timeout", "read_timeout", "max_retry_seconds"):
            require(getattr(self, key) > 0, section, key, "must be positive")
        require(self.backoff_initial >= 0, section, "backoff_initial", "must be 0 or more")
        require(self.attempts >= 1, section, "attempts", "must be at least 1")


_OPTION_KEYS = {f.name for f in dataclasses.fields(Options)}


@dataclass
class Pipeline(Options):
    """Everything a run needs: the source and destination (type + their own settings table,
    checked by their settings class in the registry), the collection mapping, the options."""

    name: str = "default"
    state: str | None = None  # path of the state DB
    source_type: str | None = None  # None: detected from the location
    source: dict[str, Any] = field(default_factory=dict)
    destination_type: str = "sword"
    destination: dict[str, Any] = field(default_factory=dict)
    collections: dict[str, str] = field(default_factory=dict)
    verify_tls: bool = True  # only --insecure turns it off, for one run

    def state_path(self) -> Path:
        if self.state:
            return Path(self.state).expanduser()
        return DEFAULT_STATE_DIR / f"{self.name}.sqlite"

    @property
    def source_location(self) -> str:
        """The URL or path the source is read from."""
        for key in ("url", "base_url", "path", "name"):
            if self.source.get(key):
                return str(self.source[key])
        return ""

    @property
    def collection(self) -> str:
        """The default destination collection (a Col-IRI, a handle...)."""
        return str(self.destination.get("collection") or "")

    def validate(self, section: str = "options") -> None:
        super().validate(section)
        from .registry import check_pipeline

        check_pipeline(self)

    def options(self) -> Options:
        return Options(**{k: getattr(self, k) for k in _OPTION_KEYS})

    def to_json(self) -> dict[str, Any]:
        """What is kept in the state DB so `incremental` / `replay` need no arguments."""
        opts = to_table(self.options())
        opts.pop("limit", None)
        return {
            "name": self.name,
            "state": self.state,
            "source_type": self.source_type,
            "source": self.source,
            "destination_type": self.destination_type,
            "destination": self.destination,
            "collections": self.collections,
            "options": opts,
            # --insecure holds for the run that was given it, never for later runs
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pipeline:
        if "options" not in data:  # written by the first release: one flat table
            return _from_flat(data, where="state DB", strict=False)
        options = {k: v for k, v in data["options"].items() if k in _OPTION_KEYS}
        return cls(
            name=data.get("name") or "default",
            state=data.get("state"),
            source_type=data.get("source_type"),
            source=dict(data.get("source") or {}),
            destination_type=data.get("destination_type") or "sword",
            destination=dict(data.get("destination") or {}),
            collections=dict(data.get("collections") or {}),
            **options,
        )


def read_secret_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(
            f"cannot read password file ({exc.strerror})", resource=str(path)
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            "password file is readable by others; refusing to use it",
            resource=str(path),
            hint=f"chmod 600 {path}",
        )
    return path.read_text(encoding="utf-8").strip()


def read_password(env: str | None, file: str | None) -> str | None:
    """A password from the environment variable ``env``, else the owner-only ``file``."""
    value = os.environ.get(env) if env else None
    if not value and file:
        value = read_secret_file(Path(file).expanduser())
    register_secret(value)
    return value


# -- reading pipeline files ----------------------------------------------------------------------
def _from_flat(flat: dict[str, Any], *, where: str, strict: bool) -> Pipeline:
    """A first-release pipeline (one flat table: ResourceSync source, SWORD destination)."""
    from .registry import settings_fields

    flat = dict(flat)
    source_keys = settings_fields("source", "resourcesync")
    dest_keys = settings_fields("destination", "sword")
    source: dict[str, Any] = {}
    destination: dict[str, Any] = {}
    options: dict[str, Any] = {}
    url = flat.pop("source", None)
    if url is not None:
        source["url"] = url
    top = {k: flat.pop(k) for k in ("name", "state", "collections") if k in flat}
    flat.pop("verify_tls", None)
    for key, value in flat.items():
        if key in _OPTION_KEYS:
            options[key] = value
        elif key in source_keys:
            source[key] = value
        elif key in dest_keys:
            destination[key] = value
        elif strict:
            raise ConfigError(f"unknown setting: {key}", resource=where)
    opts = from_table(Options, options, "options")
    return Pipeline(
        name=top.get("name") or "default",
        state=top.get("state"),
        source_type="resourcesync",
        source=source,
        destination_type="sword",
        destination=destination,
        collections={str(k): str(v) for k, v in (top.get("collections") or {}).items()},
        **dataclasses.asdict(opts),
    )


def load_pipeline(path: Path) -> Pipeline:
    """Read ``pipelines/NAME.toml``; every key is checked (exit 2 naming the key)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read pipeline file ({exc.strerror})", resource=str(path)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline file is not valid TOML: {exc}", resource=str(path)) from None
    try:
        pipeline = _from_document(data, name=path.stem, where=str(path))
        pipeline.validate()
    except ConfigError as exc:
        if exc.resource is None:
            exc.resource = str(path)
        raise ConfigError(exc.message, resource=str(path), hint=exc.hint) from None
    return pipeline


def _refuse_secrets(tables: list[dict[str, Any]]) -> None:
    for table in tables:
        if "password" in table:
            raise ConfigError(
                "pipeline files must not hold the password",
                hint="use password_env (an environment variable) or password_file (chmod 600)",
            )
        if "verify_tls" in table:
            raise ConfigError(
                "TLS verification cannot be turned off in a pipeline file",
                hint="use ca_bundle for a private CA, or --insecure for one run (not advised)",
            )


def _from_document(data: dict[str, Any], *, name: str, where: str) -> Pipeline:
    tables = [data] + [v for v in data.values() if isinstance(v, dict)]
    _refuse_secrets(tables)
    source = data.get("source")
    if not isinstance(source, dict):
        # the first release's layout: source = "URL", options anywhere
        flat: dict[str, Any] = {"name": name}
        for key, value in data.items():
            if key in ("destination", "options") and isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return _from_flat(flat, where=where, strict=True)
    unknown = sorted(
        set(data) - {"source", "destination", "collections", "options", "name", "state"}
    )
    if unknown:
        raise ConfigError(
            "unknown setting: " + ", ".join(unknown),
            hint="top-level tables: [source], [destination], [collections], [options]",
        )
    source = dict(source)
    destination = dict(data.get("destination") or {})
    source_type = source.pop("type", None)
    dest_type = destination.pop("type", None) or "sword"
    for key, value in (("source.type", source_type), ("destination.type", dest_type)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
    collections = data.get("collections") or {}
    if not isinstance(collections, dict) or not all(
        isinstance(v, str) for v in collections.values()
    ):
        raise ConfigError("collections must be a table of strings (source -> destination)")
    opts = from_table(Options, data.get("options") or {}, "options")
    return Pipeline(
        name=str(data.get("name") or name),
        state=data.get("state"),
        source_type=source_type,
        source=source,
        destination_type=dest_type,
        destination=destination,
        collections={str(k): v for k, v in collections.items()},
        **dataclasses.asdict(opts),
    )
