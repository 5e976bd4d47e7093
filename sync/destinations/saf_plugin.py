"""SAF's registration as a destination (``[destination]`` with ``type = "saf"``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..saf import handles
from ..settings import require

if TYPE_CHECKING:
    from ..registry import Runtime
    from .saf import SafDestination

NAME = "saf"


@dataclass
class Settings:
    path: str = ""  # the output folder: one run-NNNN/ batch per run
    collection: str = ""  # DSpace collection handle the items are imported into
    keep_handles: bool = False  # write the source's handles (a mirror that keeps them)
    zip: bool = False  # also write add.zip / replace.zip for `dspace import --zip`

    def validate(self, section: str) -> None:
        require(bool(self.path), section, "path", "must name the output folder")
        require(  # without one every item would fail, and a replay could not mend it
            bool(self.collection),
            section,
            "collection",
            "must name the DSpace collection to import into (--saf-collection HANDLE)",
        )
        require(
            handles.is_handle(self.collection),
            section,
            "collection",
            "must be a DSpace handle such as 123456789/2",
        )

    def check_collections(self, mapping: dict[str, str]) -> None:
        for key, col in mapping.items():
            require(handles.is_handle(col), "collections", key, "must map to a DSpace handle")


def build(s: Settings, rt: Runtime) -> SafDestination:
    from .saf import SafDestination  # loaded only for SAF runs: start-up time is every run's

    return SafDestination(
        Path(s.path).expanduser(),
        collection=s.collection or None,
        keep_handles=s.keep_handles,
        zip=s.zip,
    )
