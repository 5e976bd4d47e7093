"""Handles as sources and DSpace write them: ``123456789/42``, its URL, and back. Pure."""

from __future__ import annotations

import re

HANDLE_RESOLVER = "http://hdl.handle.net/"
_HANDLE = re.compile(r"^[0-9A-Za-z._-]+/\S+$")
_PREFIXES = ("http://hdl.handle.net/", "https://hdl.handle.net/", "hdl:", "info:hdl/")


def is_handle(text: str) -> bool:
    return bool(_HANDLE.match(text))


def handle_url(handle: str) -> str:
    return HANDLE_RESOLVER + handle


def handle_from_identifier(identifier: str) -> str | None:
    """The handle an identifier names (``http(s)://hdl.handle.net/H``, ``hdl:H``,
    ``info:hdl/H``), or None."""
    text = identifier.strip()
    for prefix in _PREFIXES:
        if text.lower().startswith(prefix):
            rest = text[len(prefix) :]
            return rest if is_handle(rest) else None
    return None
