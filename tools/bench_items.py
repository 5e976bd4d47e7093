"""The per-item requests of a mirror run, without resync-sword's engine: the yardsticks of the
benchmark (issue #12).

For each item: GET its metadata record and its files (MD5 checked), POST an Atom entry to the
collection, POST each file to the EM-IRI, POST ``In-Progress: false`` to complete it: the same
requests as ``tools.bench.sequential`` and as resync-sword. The resource list is read first
(start-up and discovery are part of what users wait for), then ``workers`` threads share the
items. Two clients make the same requests:

- ``PlainClient``: ``http.client``, one keep-alive connection per thread and host, no state, no
  retries, no politeness: the *limit* row, what the machine allows;
- ``SyncClient``: ``sync.http.Http`` with its defaults (adaptive per-host concurrency, retries):
  what resync-sword's transport alone does with a server (the politeness rows).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from sync.http import Http, HttpSettings

SM = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
RS = "{http://www.openarchives.org/rs/terms/}"
ATOM = "http://www.w3.org/2005/Atom"
SWORD_ADD = "http://purl.org/net/sword/terms/add"
BINARY = "http://purl.org/net/sword/package/Binary"


class Client(Protocol):
    def call(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]: ...


class PlainClient:
    """http.client with one kept-alive connection per thread and origin; nothing else."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _conn(self, netloc: str) -> http.client.HTTPConnection:
        conns: dict[str, http.client.HTTPConnection] | None = getattr(self._local, "c", None)
        if conns is None:
            conns = self._local.c = {}
        conn = conns.get(netloc)
        if conn is None:
            conn = conns[netloc] = http.client.HTTPConnection(netloc, timeout=60)
        return conn

    def call(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"Content-Length": str(len(body)), **(headers or {})}
        for tried in (1, 2):
            conn = self._conn(parts.netloc)
            try:
                conn.request(method, target, body=body or None, headers=hdrs)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                conn.close()  # a kept-alive connection the server closed: once more
                if tried == 2:
                    raise
        raise AssertionError("unreachable")


class SyncClient:
    """resync-sword's transport with its default politeness (adaptive, capped at workers)."""

    def __init__(self, workers: int) -> None:
        self.http = Http(HttpSettings(concurrency_cap=workers, backoff_max=5.0, attempts=8))

    def call(
        self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        resp, data = self.http.exchange(
            method,
            url,
            max_bytes=1 << 26,
            headers=headers,
            body=(lambda: body) if body else None,
        )
        return resp.status_code, data


@dataclass
class Item:
    record: str
    files: list[str]
    md5: dict[str, str | None] = field(default_factory=dict)


def _check(status: int, what: str, ok: tuple[int, ...] = (200, 201, 204)) -> None:
    if status not in ok:
        raise RuntimeError(f"{what}: HTTP {status}")


def read_items(client: Client, url: str) -> list[Item]:
    """The items of a resource list (an index followed to its lists): records with the files
    they describe, and each file's MD5."""
    status, data = client.call("GET", url)
    _check(status, url)
    root = ET.fromstring(data)
    if root.tag == f"{SM}sitemapindex":
        items: list[Item] = []
        for sm in root.iter(f"{SM}sitemap"):
            items += read_items(client, (sm.findtext(f"{SM}loc") or "").strip())
        return items
    md5_of: dict[str, str | None] = {}
    out: list[Item] = []
    for e in root.iter(f"{SM}url"):
        loc = (e.findtext(f"{SM}loc") or "").strip()
        md = e.find(f"{RS}md")
        hashes = (md.get("hash") or "") if md is not None else ""
        md5_of[loc] = next((h[4:] for h in hashes.split() if h.startswith("md5:")), None)
        files = [
            ln.get("href", "")
            for ln in e.iter(f"{RS}ln")
            if (ln.get("rel") or "").lower() == "describes"
        ]
        if files:
            out.append(Item(loc, files))
    for item in out:
        item.md5 = {f: md5_of.get(f) for f in item.files}
    return out


def _atom_entry(title: str, identifier: str) -> bytes:
    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<entry xmlns="{ATOM}" xmlns:dcterms="http://purl.org/dc/terms/">'
        f"<title>{esc(title)}</title><author><name>bench</name></author>"
        f"<dcterms:identifier>{esc(identifier)}</dcterms:identifier></entry>"
    ).encode()


def mirror_item(client: Client, item: Item, col_iri: str, auth: str) -> None:
    """Fetch an item (record and files, MD5 checked) and deposit it (create, files, complete)."""
    status, meta = client.call("GET", item.record)
    _check(status, item.record)
    title = next(
        (el.text or "" for el in ET.fromstring(meta).iter() if el.tag.endswith("title")),
        item.record,
    )
    got: list[tuple[bytes, str, str]] = []
    for href in item.files:
        status, data = client.call("GET", href)
        _check(status, href)
        digest = hashlib.md5(data).hexdigest()
        if item.md5.get(href) not in (None, digest):
            raise RuntimeError(f"md5 mismatch for {href}")
        got.append((data, href.rsplit("/", 1)[-1] or "file", digest))
    status, receipt = client.call(
        "POST",
        col_iri,
        _atom_entry(title, item.record),
        {
            "Authorization": auth,
            "Content-Type": "application/atom+xml;type=entry",
            "In-Progress": "true",
        },
    )
    _check(status, col_iri)
    links = ET.fromstring(receipt).findall(f"{{{ATOM}}}link")
    em = next(
        ln.get("href") for ln in links if ln.get("rel") == "edit-media" and not ln.get("type")
    )
    edit = next(ln.get("href") for ln in links if ln.get("rel") == "edit")
    se = next((ln.get("href") for ln in links if ln.get("rel") == SWORD_ADD), edit)
    for data, name, md5 in got:
        status, _ = client.call(
            "POST",
            str(em),
            data,
            {
                "Authorization": auth,
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-MD5": md5,
                "Packaging": BINARY,
                "In-Progress": "true",
            },
        )
        _check(status, str(em))
    status, _ = client.call("POST", str(se), b"", {"Authorization": auth, "In-Progress": "false"})
    _check(status, str(se))


def run_items(
    make_client: Callable[[], Client],
    list_url: str,
    col_iri: str,
    *,
    user: str,
    password: str,
    workers: int,
    limit: int | None = None,
) -> tuple[int, float]:
    """Read the list, then mirror its items from ``workers`` threads: (items, seconds)."""
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    start = time.perf_counter()
    client = make_client()
    items = read_items(client, list_url)[:limit]
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(mirror_item, client, it, col_iri, auth) for it in items]:
            f.result()
    return len(items), time.perf_counter() - start
