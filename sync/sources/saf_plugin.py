"""SAF's registration as a source (``[source]`` with ``type = "saf"``): a `dspace export`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..settings import require

if TYPE_CHECKING:
    from ..http import Http
    from ..registry import Runtime
    from .saf import SafSource

NAME = "saf"


@dataclass
class Settings:
    path: str = ""  # a SAF folder or .zip (`dspace export` output)
    bundles: list[str] = field(default_factory=lambda: ["ORIGINAL"])

    def validate(self, section: str) -> None:
        require(bool(self.path), section, "path", "must name a SAF folder or .zip")
        require(
            Path(self.path).expanduser().exists(), section, "path", f"does not exist: {self.path}"
        )
        require(bool(self.bundles), section, "bundles", "must name at least one bundle")


def detect(location: str, http: Http) -> bool:
    """A local folder or zip is a SAF export (no request is sent)."""
    return "://" not in location and Path(location).expanduser().exists()


def build(s: Settings, rt: Runtime) -> SafSource:
    from .saf import SafSource  # loaded only for SAF runs: start-up time is every run's

    return SafSource(Path(s.path).expanduser(), bundles=s.bundles)
