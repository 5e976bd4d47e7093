"""Checking that a list's entries stay on the source's hosts, once per origin, not per entry.

A resource list names tens of thousands of URLs on one host. ``Http.check_allowed`` parses
each (a regular expression and a cache lookup, 7% of reading a list); here a URL that starts
with the ``scheme://authority/`` of a URL already allowed is allowed without asking again: the
same authority is the same host key, and the allow-list only ever grows during a run. Only
plain authorities are remembered (no user info, ``?``, ``#``, backslash or white space), so
anything unusual gets the full check every time.
"""

from __future__ import annotations

from collections.abc import Callable

_UNUSUAL = frozenset("?#@\\ \t\r\n\f\v")


def origin_prefix(url: str) -> str | None:
    """``http(s)://authority/`` of ``url``, or None if its authority is not plain."""
    if url.startswith("http://"):
        start = 7
    elif url.startswith("https://"):
        start = 8
    else:
        return None
    end = url.find("/", start)
    if end <= start:
        return None
    if not _UNUSUAL.isdisjoint(url[start:end]):
        return None
    return url[: end + 1]


class OriginMemo:
    """``check(url)`` for each URL, skipped for URLs under the last origin it allowed."""

    def __init__(self, check: Callable[[str], None]) -> None:
        self._check = check
        self._allowed: str | None = None  # "http://host:port/" of the last allowed URL

    def __call__(self, url: str) -> None:
        allowed = self._allowed
        if allowed is not None and url.startswith(allowed):
            return
        self._check(url)  # raises for a URL outside the source
        self._allowed = origin_prefix(url)
