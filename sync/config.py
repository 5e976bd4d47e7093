"""Pipeline configuration: which source goes to which destination, with which options.

A pipeline is a TOML file (``pipelines/NAME.toml``); the same settings can come from the
command line for one-off runs. Secrets never come from the command line: the SWORD password is
read from an environment variable (``password_env``) or from a file readable by its owner only
(``password_file``).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError, register_secret
from .linker import DEFAULT_PREFERENCE

DEFAULT_STATE_DIR = Path("state")
ON_ARCHIVED = ("fail", "skip", "recreate")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


def parse_size(value: int | str) -> int:
    """``2GiB``, ``500 MB``, ``1048576`` -> bytes."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m or (m.group(2) or "").lower() not in _UNITS:
        raise ConfigError(f"not a size: {value!r} (try 500MiB or 2GiB)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


@dataclass
class Pipeline:
    """Everything a run needs to know, from a pipeline file, the state DB or the CLI."""

    name: str = "default"
    source: str = ""
    collection: str = ""  # default destination Col-IRI
    service_document: str | None = None
    username: str | None = None
    password_env: str = "SWORD_PASSWORD"
    password_file: str | None = None
    on_behalf_of: str | None = None
    collections: dict[str, str] = field(default_factory=dict)  # source collection -> Col-IRI
    metadata_preference: list[str] = field(default_factory=lambda: list(DEFAULT_PREFERENCE))
    unlinked: str = "deposit"  # deposit | skip: resources linked to nothing
    missing_title: str = "fallback"  # fallback | fail
    on_archived: str = "fail"  # fail | skip | recreate
    workers: int = 4
    per_host_concurrency: int | None = None  # default: the worker count
    per_host_rate: float = 20.0
    limit: int | None = None  # at most N items per run
    max_file_size: int = 4 * 2**30
    max_list_entries: int = 50_000
    max_list_bytes: int = 60 * 2**20
    allowed_hosts: list[str] = field(default_factory=list)
    overlap_seconds: int = 300
    max_delete_share: float = 0.5
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    attempts: int = 5
    max_retry_seconds: float = 300.0
    backoff_initial: float = 1.0
    verify_tls: bool = True
    ca_bundle: str | None = None
    state: str | None = None  # path of the state DB

    def state_path(self) -> Path:
        if self.state:
            return Path(self.state).expanduser()
        return DEFAULT_STATE_DIR / f"{self.name}.sqlite"

    def validate(self) -> None:
        if not self.source:
            raise ConfigError("no source given", hint="SOURCE argument or `source` in the file")
        if not self.collection:
            raise ConfigError(
                "no destination collection given", hint="--collection COL_IRI or `collection`"
            )
        for url in [self.source, self.collection, *self.collections.values()]:
            if not re.match(r"^https?://", url):
                raise ConfigError(f"not an http(s) URL: {url!r}")
        if self.on_archived not in ON_ARCHIVED:
            raise ConfigError(f"on_archived must be one of {', '.join(ON_ARCHIVED)}")
        if self.unlinked not in ("deposit", "skip"):
            raise ConfigError("unlinked must be 'deposit' or 'skip'")
        if self.missing_title not in ("fallback", "fail"):
            raise ConfigError("missing_title must be 'fallback' or 'fail'")
        if self.workers < 1 or self.workers > 256:
            raise ConfigError("workers must be between 1 and 256")
        if not 0 < self.max_delete_share <= 1:
            raise ConfigError("max_delete_share must be in (0, 1]")

    def password(self) -> str | None:
        """The SWORD password: environment variable first, then the owner-only file."""
        value = os.environ.get(self.password_env) if self.password_env else None
        if not value and self.password_file:
            value = read_secret_file(Path(self.password_file).expanduser())
        register_secret(value)
        return value

    def to_json(self) -> dict[str, Any]:
        """What is kept in the state DB so `incremental` / `replay` need no arguments."""
        data = asdict(self)
        data.pop("limit", None)
        # --insecure holds for the run that was given it, never for later runs
        data.pop("verify_tls", None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pipeline:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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


_FLAT = {f.name for f in fields(Pipeline)}


def load_pipeline(path: Path) -> Pipeline:
    """Read ``pipelines/NAME.toml``: top-level keys, ``[destination]`` and ``[options]``
    tables, and ``[collections]`` (source collection URL -> Col-IRI)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read pipeline file ({exc.strerror})", resource=str(path)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"pipeline file is not valid TOML: {exc}", resource=str(path)) from None
    flat: dict[str, Any] = {"name": path.stem}
    for key, value in data.items():
        if key in ("destination", "options") and isinstance(value, dict):
            flat.update(value)
        elif key == "collections" and isinstance(value, dict):
            flat["collections"] = {str(k): str(v) for k, v in value.items()}
        else:
            flat[key] = value
    if "password" in flat:
        raise ConfigError(
            "pipeline files must not hold the password",
            resource=str(path),
            hint="use password_env (an environment variable) or password_file (chmod 600)",
        )
    if "verify_tls" in flat:
        raise ConfigError(
            "TLS verification cannot be turned off in a pipeline file",
            resource=str(path),
            hint="use ca_bundle for a private CA, or --insecure for one run (not advised)",
        )
    unknown = set(flat) - _FLAT
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}", resource=str(path))
    for key in ("max_file_size", "max_list_bytes"):
        if key in flat:
            flat[key] = parse_size(flat[key])
    if "state" in flat and not Path(flat["state"]).is_absolute():
        flat["state"] = str(flat["state"])
    pipeline = Pipeline(**flat)
    pipeline.validate()
    return pipeline
