"""The next page of a list on its way while this one is read: a harvest's time becomes the
longer of downloading and reading, not their sum.

A resumption token stands at the end of its page, so it can be read from the page's last bytes
(``peek_token``) before the page is parsed. The page it names is then downloaded on one
background thread (one keep-alive connection) while the records are parsed and stored. The
repository still sees one request at a time: the next request starts only once this page is
in. The token the parser reads stays the truth: a page fetched for another token is thrown
away, and a token already seen (a loop) is never requested ahead.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from xml.sax.saxutils import unescape

from ...http import Download

TAIL_BYTES = 8192
_TOKEN = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?resumptionToken\b[^>]*>([^<]+)</")


def peek_token(path: Path) -> str | None:
    """The resumption token in the last bytes of the page at ``path``, if one is there (a
    hint: the parse decides)."""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - TAIL_BYTES))
        tail = fh.read()
    found = _TOKEN.findall(tail)
    if len(found) != 1:
        return None
    try:
        token = unescape(found[0].decode("utf-8")).strip()
    except UnicodeDecodeError:
        return None
    return token or None


class PagePrefetch:
    """At most one page downloaded ahead, on one background thread."""

    def __init__(self, download: Callable[[str], Download]) -> None:
        self._download = download
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[str, Future[Download]] | None = None

    def start(self, url: str) -> None:
        """Begin downloading ``url`` (if nothing is on its way already)."""
        if self._ahead is not None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="oai-page")
        self._ahead = (url, self._pool.submit(self._download, url))

    def take(self, url: str) -> Download:
        """The page at ``url``: the one on its way if it is that one, else downloaded now (on
        the same thread and connection); its errors are raised here."""
        if self._ahead is not None and self._ahead[0] != url:
            self.drop()
        self.start(url)
        assert self._ahead is not None
        future = self._ahead[1]
        self._ahead = None
        return future.result()

    def drop(self) -> None:
        """Forget the page on its way (waiting for it, then removing its file)."""
        if self._ahead is None:
            return
        future = self._ahead[1]
        self._ahead = None
        if future.cancel():
            return
        with contextlib.suppress(Exception):  # a page nobody asked for: its failure is moot
            future.result().discard()

    def close(self) -> None:
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
