"""SWORD v2's registration: its settings (``[destination]`` with ``type = "sword"``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...config import read_password
from ...errors import ConfigError
from ...settings import require
from .destination import SwordDestination

if TYPE_CHECKING:
    from ...registry import Runtime

NAME = "sword"
_HTTP = re.compile(r"^https?://")


@dataclass
class Settings:
    collection: str = ""  # the default Col-IRI
    service_document: str | None = None
    username: str | None = None
    password_env: str = "SWORD_PASSWORD"
    password_file: str | None = None
    on_behalf_of: str | None = None

    def validate(self, section: str) -> None:
        if not self.collection:
            raise ConfigError(
                "no destination collection given",
                hint="--collection COL_IRI, or collection in [destination]",
            )
        require(bool(_HTTP.match(self.collection)), section, "collection", "must be an http(s) URL")
        require(
            self.service_document is None or bool(_HTTP.match(self.service_document)),
            section,
            "service_document",
            "must be an http(s) URL",
        )

    def check_collections(self, mapping: dict[str, str]) -> None:
        for key, col in mapping.items():
            require(bool(_HTTP.match(col)), "collections", key, "must map to an http(s) Col-IRI")

    def password(self) -> str | None:
        """The SWORD password: environment variable first, then the owner-only file."""
        return read_password(self.password_env, self.password_file)


def build(s: Settings, rt: Runtime) -> SwordDestination:
    urls = [s.collection, *rt.destination_collections]
    if s.service_document:
        urls.append(s.service_document)
    password = s.password() if s.username else None
    for url in urls:
        rt.http.allow(url)
        if s.username:
            rt.http.set_auth(url, s.username, password or "")
    return SwordDestination(
        rt.http,
        collection=s.collection,
        service_document=s.service_document,
        on_behalf_of=s.on_behalf_of or None,
    )
