"""OAI-PMH's registration: its settings (``[source]`` with ``type = "oai-pmh"``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...settings import require
from .files import DEFAULT_BUNDLES

if TYPE_CHECKING:
    from ...http import Http
    from ...registry import Runtime
    from .source import OaiPmhSource

NAME = "oai-pmh"
__all__ = ["NAME", "Settings", "build", "detect"]


@dataclass
class Settings:
    base_url: str = ""  # DSpace 7: https://host/server/oai/request
    sets: list[str] = field(default_factory=list)  # harvest only these (default: everything)
    metadata_prefix: str | None = None  # default: the richest of dim, qdc, oai_dc offered
    bundles: list[str] = field(default_factory=lambda: list(DEFAULT_BUNDLES))

    def validate(self, section: str) -> None:
        require(
            bool(re.match(r"^https?://", self.base_url)),
            section,
            "base_url",
            "must be an http(s) URL",
        )
        require(bool(self.bundles), section, "bundles", "must name at least one bundle")


def detect(url: str, http: Http) -> bool:
    """Does ``url`` answer ``?verb=Identify``? (The harvester is loaded only when needed.)"""
    from .source import detect as identify

    return identify(url, http)


def build(s: Settings, rt: Runtime) -> OaiPmhSource:
    from .source import OaiPmhSource

    rt.http.allow(s.base_url)
    return OaiPmhSource(
        s.base_url,
        http=rt.http,
        fetcher=rt.fetcher,
        sets=s.sets,
        metadata_prefix=s.metadata_prefix,
        bundles=s.bundles,
    )
