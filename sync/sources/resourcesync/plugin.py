"""ResourceSync's registration: its settings (``[source]`` with ``type = "resourcesync"``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...settings import require, size_field
from .source import ResourceSyncSource

if TYPE_CHECKING:
    from ...registry import Runtime


NAME = "resourcesync"


@dataclass
class Settings:
    url: str = ""  # site, source description, capability list, resource or change list
    max_list_entries: int = 50_000
    max_list_bytes: int = size_field(60 * 2**20)

    def validate(self, section: str) -> None:
        require(bool(re.match(r"^https?://", self.url)), section, "url", "must be an http(s) URL")
        require(self.max_list_entries >= 1, section, "max_list_entries", "must be at least 1")
        require(self.max_list_bytes >= 1, section, "max_list_bytes", "must be positive")


def build(s: Settings, rt: Runtime) -> ResourceSyncSource:
    rt.http.allow(s.url)
    return ResourceSyncSource(
        s.url,
        http=rt.http,
        fetcher=rt.fetcher,
        max_list_bytes=s.max_list_bytes,
        max_list_entries=s.max_list_entries,
    )
