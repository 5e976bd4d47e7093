"""A local ResourceSync source serving a ``SourceModel`` (tests, demo, benchmark).

Routes (all XML as ``application/xml``, datetimes W3C UTC with 'Z'):

- ``/.well-known/resourcesync``: Source Description -> ``/capabilitylist.xml``
- ``/capabilitylist.xml``: resource list + change list(s) according to ``changelists``:
  ``none``; ``single`` (``/changelist.xml``); ``index`` (``/changelist.xml`` is a Change List
  Index of ``/changelists/{i}.xml``); ``archive`` (``/changelist-archive.xml`` lists the closed
  ``/changelists/{i}.xml``, ``/changelist.xml`` is the open one).
- ``/resourcelist.xml``: urlset, or a Resource List Index of ``/resourcelist/{i}.xml`` (1-based)
  when there are more than ``page_size`` entries.
- the resources themselves (GET/HEAD), ``/handle/{handle}`` HTML pages.
- ``synthetic_entries=N``: ``/big/capabilitylist.xml``, ``/big/resourcelist.xml`` (index) and
  ``/big/resourcelist/{i}.xml`` pages of 50,000 entries ``/big/r/{i}`` (also served, 1000 bytes).

Run ``python -m tests.servers.rs_source --items N`` to serve a generated model in the foreground.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from .base import FaultPolicy, Handler, LocalHTTPServer, ModelServer, serve_until_signal
from .fixtures import ChangeEvent, Entry, SourceModel, handle_page, w3c, xesc

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
RS_NS = "http://www.openarchives.org/rs/terms/"
XML_CT = "application/xml"
CHANGELIST_MODES = ("none", "single", "index", "archive")
BIG_PAGE = 50_000
BIG_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _open(root: str) -> str:
    return f'{_HEAD}<{root} xmlns="{SITEMAP_NS}" xmlns:rs="{RS_NS}">\n'


def _md(**attrs: str | int | None) -> str:
    parts = [f'{k.rstrip("_")}="{xesc(str(v))}"' for k, v in attrs.items() if v is not None]
    return f"<rs:md {' '.join(parts)}/>"


def _ln(rel: str, href: str, type_: str | None = None, extra: dict[str, str] | None = None) -> str:
    s = f'<rs:ln rel="{xesc(rel)}" href="{xesc(href)}"'
    if type_:
        s += f' type="{xesc(type_)}"'
    for k, v in (extra or {}).items():
        s += f' {k}="{xesc(v)}"'
    return s + "/>"


def render_entry(e: Entry, change: ChangeEvent | None = None, *, with_datetime: bool = True) -> str:
    parts = [f"<url><loc>{xesc(e.loc)}</loc>"]
    if e.lastmod is not None:
        parts.append(f"<lastmod>{w3c(e.lastmod)}</lastmod>")
    parts.append(
        _md(
            change=change.change if change else None,
            datetime=w3c(change.datetime) if change and with_datetime else None,
            hash=e.hash,
            length=e.length,
            type=e.type,
        )
    )
    parts.extend(_ln(link.rel, link.href, link.type, link.extra) for link in e.links)
    parts.append("</url>\n")
    return "".join(parts)


def _spool() -> IO[bytes]:
    """In memory up to 4 MiB, then on disk: large lists are never held whole in memory."""
    return tempfile.SpooledTemporaryFile(max_size=4 << 20)  # closed by reply()


def big_content(i: int) -> bytes:
    return (f"{i:09d}\n" * 100).encode("ascii")


class ResourceSyncSource(ModelServer):
    """HTTP ResourceSync source over a live ``SourceModel``."""

    def __init__(
        self,
        model: SourceModel,
        port: int = 0,
        page_size: int = 50000,
        changelists: str = "single",
        latency: float = 0.0,
        faults: FaultPolicy | None = None,
        synthetic_entries: int = 0,
        changelist_size: int = 10,
        ssl_context: ssl.SSLContext | None = None,
        changelist_style: str = "resourcesync",
    ) -> None:
        """``changelist_style="resync"``: change lists as the ``resync`` 2.0.1 client's
        ``--write-changelist`` writes them (``<rs:md capability="changelist"/>`` with no
        from / until, entries with ``lastmod`` and no ``rs:md datetime``), every ``lastmod``
        old, as for files restored with their old mtime."""
        if changelist_style not in ("resourcesync", "resync"):
            raise ValueError("changelist_style must be 'resourcesync' or 'resync'")
        self.changelist_style = changelist_style
        if changelists not in CHANGELIST_MODES:
            raise ValueError(f"changelists must be one of {CHANGELIST_MODES}")
        self.model = model
        self.port = port
        self.page_size = page_size
        self.changelists = changelists
        self.latency = latency
        self.faults = faults
        self.synthetic_entries = synthetic_entries
        self.changelist_size = changelist_size
        self.ssl_context = ssl_context  # serve HTTPS (tests of TLS verification)
        self.httpd: LocalHTTPServer | None = None
        self._overrides: dict[str, tuple[int, bytes | Path, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._big_lock = threading.Lock()
        self._big_dir: Path | None = None
        self._big_at = datetime.now(UTC)

    # -- lifecycle ---------------------------------------------------------------------------
    def handler(self) -> type[_SourceHandler]:
        class _Bound(_SourceHandler):
            pass

        _Bound.source = self
        return _Bound

    def cleanup(self) -> None:
        if self._big_dir is not None:
            shutil.rmtree(self._big_dir, ignore_errors=True)
            self._big_dir = None

    def reset_stats(self) -> None:
        if self.httpd is not None:
            self.httpd.reset_stats()

    # -- overrides ---------------------------------------------------------------------------
    def set_override(
        self,
        path: str,
        status: int,
        body: bytes | Path,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve raw ``body`` at ``path`` (with or without query) instead of the normal answer.

        A ``Path`` body is streamed from disk at each request (large files, the benchmark)."""
        if path.startswith(("http://", "https://")):
            sp = urlsplit(path)
            path = sp.path + (f"?{sp.query}" if sp.query else "")
        with self._lock:
            self._overrides[path] = (status, body, dict(headers or {}))

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def override_for(self, raw_path: str) -> tuple[int, bytes | Path, dict[str, str]] | None:
        with self._lock:
            if not self._overrides:
                return None
            hit = self._overrides.get(raw_path)
            if hit is None:
                path = raw_path.split("?", 1)[0]
                hit = self._overrides.get(path) or self._overrides.get(unquote(path))
            return hit

    # -- documents ---------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.model.base_url + path

    def source_description(self) -> bytes:
        return (
            _open("urlset")
            + _md(capability="description")
            + "\n"
            + f"<url><loc>{self.url('/capabilitylist.xml')}</loc>"
            + _md(capability="capabilitylist")
            + "</url>\n</urlset>\n"
        ).encode()

    def capability_list(self) -> bytes:
        out = [
            _open("urlset"),
            _ln("up", self.url("/.well-known/resourcesync")),
            "\n",
            _md(capability="capabilitylist"),
            "\n",
            f"<url><loc>{self.url('/resourcelist.xml')}</loc>",
            _md(capability="resourcelist"),
            "</url>\n",
        ]
        if self.changelists == "archive":
            out += [
                f"<url><loc>{self.url('/changelist-archive.xml')}</loc>",
                _md(capability="changelist-archive"),
                "</url>\n",
            ]
        if self.changelists != "none":
            out += [
                f"<url><loc>{self.url('/changelist.xml')}</loc>",
                _md(capability="changelist"),
                "</url>\n",
            ]
        out.append("</urlset>\n")
        return "".join(out).encode()

    def big_capability_list(self) -> bytes:
        return (
            _open("urlset")
            + _ln("up", self.url("/.well-known/resourcesync"))
            + _md(capability="capabilitylist")
            + f"\n<url><loc>{self.url('/big/resourcelist.xml')}</loc>"
            + _md(capability="resourcelist")
            + "</url>\n</urlset>\n"
        ).encode()

    def resource_list(self, page: int | None) -> IO[bytes] | None:
        """``page=None``: the list or the index; else a 1-based page (None if out of range)."""
        m = self.model
        with m.lock:
            at = m.tick()
            entries = m.resource_entries()
        n_pages = max(1, math.ceil(len(entries) / self.page_size))
        paged = len(entries) > self.page_size
        buf = _spool()
        if page is None and paged:
            buf.write(_open("sitemapindex").encode())
            buf.write((_ln("up", self.url("/capabilitylist.xml")) + "\n").encode())
            buf.write((_md(capability="resourcelist", at=w3c(at)) + "\n").encode())
            for i in range(1, n_pages + 1):
                buf.write(f"<sitemap><loc>{self.url(f'/resourcelist/{i}.xml')}</loc>".encode())
                buf.write(b"</sitemap>\n")
            buf.write(b"</sitemapindex>\n")
            return buf
        if page is not None:
            if not paged or not 1 <= page <= n_pages:
                buf.close()
                return None
            entries = entries[(page - 1) * self.page_size : page * self.page_size]
        buf.write(_open("urlset").encode())
        buf.write((_ln("up", self.url("/capabilitylist.xml")) + "\n").encode())
        if page is not None:
            buf.write((_ln("index", self.url("/resourcelist.xml")) + "\n").encode())
        completed = w3c(m.tick())
        buf.write((_md(capability="resourcelist", at=w3c(at), completed=completed) + "\n").encode())
        for e in entries:
            buf.write(render_entry(e).encode("utf-8"))
        buf.write(b"</urlset>\n")
        return buf

    # change lists: split events into fixed-size chunks; full chunks are closed.
    def _chunks(self) -> list[tuple[datetime, datetime | None, list[ChangeEvent]]]:
        m = self.model
        with m.lock:
            events = m.change_events()
            created = m.created_at
        if self.changelists == "single":
            return [(created, None, events)]
        size = self.changelist_size
        out: list[tuple[datetime, datetime | None, list[ChangeEvent]]] = []
        start = created
        i = 0
        while len(events) - i >= size:
            chunk = events[i : i + size]
            until = chunk[-1].datetime
            out.append((start, until, chunk))
            start = until
            i += size
        out.append((start, None, events[i:]))
        return out

    def change_list_doc(
        self, frm: datetime, until: datetime | None, events: list[ChangeEvent], index: bool
    ) -> IO[bytes]:
        buf = _spool()
        buf.write(_open("urlset").encode())
        buf.write((_ln("up", self.url("/capabilitylist.xml")) + "\n").encode())
        if index:
            buf.write((_ln("index", self.url("/changelist.xml")) + "\n").encode())
        if self.changelist_style == "resync":
            buf.write(b'<rs:md capability="changelist" />\n')
            old = self.model.created_at - timedelta(days=400)
            for ev in events:
                entry = replace(ev.entry, lastmod=old)
                buf.write(render_entry(entry, ev, with_datetime=False).encode("utf-8"))
            buf.write(b"</urlset>\n")
            return buf
        md = _md(capability="changelist", from_=w3c(frm), until=w3c(until) if until else None)
        buf.write((md + "\n").encode())
        for ev in events:
            buf.write(render_entry(ev.entry, ev).encode("utf-8"))
        buf.write(b"</urlset>\n")
        return buf

    def change_list(self) -> IO[bytes] | bytes | None:
        if self.changelists == "none":
            return None
        chunks = self._chunks()
        if self.changelists == "single":
            frm, until, evs = chunks[0]
            return self.change_list_doc(frm, until, evs, index=False)
        if self.changelists == "archive":
            frm, until, evs = chunks[-1]
            return self.change_list_doc(frm, until, evs, index=False)
        out = [
            _open("sitemapindex"),
            _ln("up", self.url("/capabilitylist.xml")),
            "\n",
            _md(capability="changelist", from_=w3c(self.model.created_at)),
            "\n",
        ]
        for i, (frm, until, _evs) in enumerate(chunks, 1):
            out.append(f"<sitemap><loc>{self.url(f'/changelists/{i}.xml')}</loc>")
            out.append(_md(from_=w3c(frm), until=w3c(until) if until else None))
            out.append("</sitemap>\n")
        out.append("</sitemapindex>\n")
        return "".join(out).encode()

    def change_list_page(self, i: int) -> IO[bytes] | None:
        if self.changelists not in ("index", "archive"):
            return None
        chunks = self._chunks()
        if not 1 <= i <= len(chunks):
            return None
        frm, until, evs = chunks[i - 1]
        return self.change_list_doc(frm, until, evs, index=self.changelists == "index")

    def change_list_archive(self) -> bytes | None:
        if self.changelists != "archive":
            return None
        out = [
            _open("urlset"),
            _ln("up", self.url("/capabilitylist.xml")),
            "\n",
            _md(capability="changelist-archive"),
            "\n",
        ]
        for i, (frm, until, _evs) in enumerate(self._chunks(), 1):
            if until is None:
                continue
            out.append(f"<url><loc>{self.url(f'/changelists/{i}.xml')}</loc>")
            out.append(f"<lastmod>{w3c(until)}</lastmod>")
            out.append(_md(from_=w3c(frm), until=w3c(until)))
            out.append("</url>\n")
        out.append("</urlset>\n")
        return "".join(out).encode()

    # synthetic benchmark lists, written once to temp files
    def _big_pages(self) -> int:
        return math.ceil(self.synthetic_entries / BIG_PAGE)

    def big_document(self, page: int | None) -> Path | None:
        n = self.synthetic_entries
        if n <= 0:
            return None
        if page is not None and not 1 <= page <= self._big_pages():
            return None
        with self._big_lock:
            if self._big_dir is None:
                self._big_dir = Path(tempfile.mkdtemp(prefix="rs-big-"))
            path = self._big_dir / ("index.xml" if page is None else f"{page}.xml")
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                with tmp.open("w", encoding="utf-8", newline="\n") as fh:
                    if page is None:
                        self._write_big_index(fh)
                    else:
                        self._write_big_page(fh, page)
                tmp.rename(path)
            return path

    def _write_big_index(self, fh: IO[str]) -> None:
        fh.write(_open("sitemapindex"))
        fh.write(_ln("up", self.url("/big/capabilitylist.xml")) + "\n")
        fh.write(_md(capability="resourcelist", at=w3c(self._big_at)) + "\n")
        for i in range(1, self._big_pages() + 1):
            fh.write(f"<sitemap><loc>{self.url(f'/big/resourcelist/{i}.xml')}</loc></sitemap>\n")
        fh.write("</sitemapindex>\n")

    def _write_big_page(self, fh: IO[str], page: int) -> None:
        fh.write(_open("urlset"))
        fh.write(_ln("up", self.url("/big/capabilitylist.xml")) + "\n")
        fh.write(_ln("index", self.url("/big/resourcelist.xml")) + "\n")
        at = w3c(self._big_at)
        fh.write(_md(capability="resourcelist", at=at, completed=at) + "\n")
        lo = (page - 1) * BIG_PAGE
        hi = min(self.synthetic_entries, lo + BIG_PAGE)
        prefix = self.url("/big/r/")
        batch: list[str] = []
        for i in range(lo, hi):
            md5 = hashlib.md5(big_content(i)).hexdigest()
            lastmod = w3c(BIG_EPOCH + timedelta(seconds=i))
            batch.append(
                f"<url><loc>{prefix}{i}</loc><lastmod>{lastmod}</lastmod>"
                f'<rs:md hash="md5:{md5}" length="1000" type="application/octet-stream"/></url>\n'
            )
            if len(batch) >= 2000:
                fh.write("".join(batch))
                batch.clear()
        fh.write("".join(batch))
        fh.write("</urlset>\n")


def _page_number(segment: str) -> int | None:
    if not segment.endswith(".xml"):
        return None
    stem = segment[:-4]
    return int(stem) if stem.isdigit() else None


class _SourceHandler(Handler):
    source: ResourceSyncSource

    def route(self, method: str) -> None:
        src = self.source
        if method not in ("GET", "HEAD"):
            self.discard_body()
            self.reply(405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD"})
            return
        over = src.override_for(self.path)
        if over is not None:
            status, body, headers = over
            self.reply(status, body, None, headers)
            return
        path = urlsplit(self.path).path
        if not path.startswith("/"):
            path = "/" + path
        doc = self._document(path)
        if doc is not None:
            self.reply(200, doc, XML_CT)
            return
        served = src.model.served(path)
        if served is not None:
            headers = dict(served.headers)
            if served.lastmod is not None:
                headers["Last-Modified"] = format_datetime(served.lastmod, usegmt=True)
            self.reply(200, served.content, served.mime, headers)
            return
        if path.startswith("/handle/"):
            handle = unquote(path[len("/handle/") :]).strip("/")
            m = src.model
            with m.lock:
                item = m.item_by_handle(handle)
                known = item is not None or handle in m.collections()
                page = handle_page(m.base_url, handle, item) if known else None
            if page is not None:
                self.reply(200, page, "text/html; charset=utf-8")
                return
        if path.startswith("/big/r/") and path[7:].isdigit():
            i = int(path[7:])
            if i < src.synthetic_entries:
                self.reply(200, big_content(i), "application/octet-stream")
                return
        self.reply(404, b"not found\n", "text/plain")

    def _document(self, path: str) -> bytes | Path | IO[bytes] | None:
        src = self.source
        if path in ("/.well-known/resourcesync", "/.well-known/resourcesync/"):
            return src.source_description()
        if path == "/capabilitylist.xml":
            return src.capability_list()
        if path == "/resourcelist.xml":
            return src.resource_list(None)
        if path.startswith("/resourcelist/"):
            n = _page_number(path[len("/resourcelist/") :])
            return src.resource_list(n) if n is not None else None
        if path == "/changelist.xml":
            return src.change_list()
        if path.startswith("/changelists/"):
            n = _page_number(path[len("/changelists/") :])
            return src.change_list_page(n) if n is not None else None
        if path == "/changelist-archive.xml":
            return src.change_list_archive()
        if src.synthetic_entries > 0:
            if path == "/big/capabilitylist.xml":
                return src.big_capability_list()
            if path == "/big/resourcelist.xml":
                return src.big_document(None)
            if path.startswith("/big/resourcelist/"):
                n = _page_number(path[len("/big/resourcelist/") :])
                return src.big_document(n) if n is not None else None
        return None


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve a generated ResourceSync source.")
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--changelists", choices=CHANGELIST_MODES, default="single")
    p.add_argument("--page-size", type=int, default=50000)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--synthetic", type=int, default=0, help="synthetic /big/ entries")
    args = p.parse_args(list(argv) if argv is not None else None)

    model = SourceModel.generate(args.items, seed=args.seed)
    src = ResourceSyncSource(
        model,
        port=args.port,
        page_size=args.page_size,
        changelists=args.changelists,
        latency=args.latency,
        synthetic_entries=args.synthetic,
    )
    return serve_until_signal(src.start, src.stop, lambda: src.base_url)


if __name__ == "__main__":
    sys.exit(main())
