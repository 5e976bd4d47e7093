"""Fixture data model for the local ResourceSync source.

Pure data, stdlib only. A ``SourceModel`` holds items in three publisher styles and knows how a
real publisher would expose them as ResourceSync resources:

- ``dspace``: DSpace 7 ``dspace-rs`` module. Metadata records ``{base}/resource/{handle}/{prefix}``
  (oai_dc, qdc, dim), bitstreams ``{base}/bitstreams/{uuid}``. Change lists report new items as
  ``updated``; deleted metadata records use ``{base}/{handle}/{prefix}`` (no ``/resource/``).
- ``recipe``: the classic ResourceSync+SWORD recipe. One qualified-DC record per item at
  ``{base}/records/{n}.xml`` that ``describes`` its files at ``{base}/files/{n}/{name}``; links
  use the mixed-case ``describedBy``; files carry md5 and sha-256.
- ``plain``: bare files at ``{base}/plain/{name}``, no links at all.

All URLs derive lazily from ``model.base_url`` (the server sets it when it binds). Mutations
record change events with strictly increasing UTC datetimes (real clock, microseconds).
"""

from __future__ import annotations

import copy
import hashlib
import html
import random
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, unquote

Style = Literal["dspace", "recipe", "plain"]
STYLES: tuple[Style, ...] = ("dspace", "recipe", "plain")

DSPACE_PREFIX = "123456789"
DSPACE_COLLECTIONS = (f"{DSPACE_PREFIX}/2", f"{DSPACE_PREFIX}/3")
# metadata prefix -> format namespace (rel="profile")
DSPACE_FORMATS: dict[str, str] = {
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "qdc": "http://purl.org/dc/terms/",
    "dim": "http://www.dspace.org/xmlns/dspace/dim",
}
DCTERMS_NS = "http://purl.org/dc/terms/"
DC_NS = "http://purl.org/dc/elements/1.1/"
XML_TYPE = "application/xml"


def w3c(dt: datetime) -> str:
    """W3C datetime in UTC with 'Z'; microseconds only when non-zero."""
    dt = dt.astimezone(UTC)
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        s += f".{dt.microsecond:06d}"
    return s + "Z"


def xesc(s: str) -> str:
    """Escape text for XML element content and double-quoted attributes."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def ascii_fallback(name: str) -> str:
    out = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return out or "file"


def content_disposition(name: str) -> str:
    return (
        f"attachment; filename=\"{ascii_fallback(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    )


# --------------------------------------------------------------------------------------------
# data classes
# --------------------------------------------------------------------------------------------
@dataclass
class FixtureFile:
    fid: str
    name: str
    content: bytes
    mime: str
    lastmod: datetime | None = None  # own modification time (recipe/plain); dspace uses item's

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class FixtureItem:
    key: str
    style: Style
    title: str
    creators: list[str]
    date: str
    description: str
    subjects: list[str]
    publisher: str
    rights: str
    language: str
    type: str
    collection: str | None
    files: list[FixtureFile]
    lastmod: datetime

    @property
    def number(self) -> int:
        return int(self.key.rsplit("/", 1)[-1].rsplit("-", 1)[-1])

    def file(self, index_or_name: int | str) -> FixtureFile:
        if isinstance(index_or_name, int):
            return self.files[index_or_name]
        for f in self.files:
            if f.name == index_or_name:
                return f
        raise KeyError(f"{self.key}: no file {index_or_name!r}")


@dataclass
class Link:
    rel: str
    href: str
    type: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Entry:
    loc: str
    lastmod: datetime | None
    md5: str | None
    sha256: str | None
    length: int | None
    type: str | None
    links: list[Link] = field(default_factory=list)

    @property
    def hash(self) -> str | None:
        """The ``rs:md hash`` attribute value."""
        parts = []
        if self.md5:
            parts.append(f"md5:{self.md5}")
        if self.sha256:
            parts.append(f"sha-256:{self.sha256}")
        return " ".join(parts) or None


@dataclass
class ChangeEvent:
    entry: Entry
    change: Literal["created", "updated", "deleted"]
    datetime: datetime


@dataclass
class Expected:
    title: str
    creators: list[str]
    files: dict[str, str]  # name -> md5
    style: str = ""
    key: str = ""


@dataclass
class Served:
    """What the server answers for a resource path."""

    content: bytes
    mime: str
    lastmod: datetime | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Res:
    rid: tuple[str, ...]
    path: str  # relative to base, starts with "/"
    entry: Entry
    served: Served


@dataclass
class _RawEvent:
    item: FixtureItem  # snapshot (post-state; pre-state for deletions)
    rid: tuple[str, ...]
    change: Literal["created", "updated", "deleted"]
    dt: datetime


# --------------------------------------------------------------------------------------------
# metadata documents
# --------------------------------------------------------------------------------------------
def _identifier(item: FixtureItem, base: str) -> str:
    if item.style == "dspace":
        return f"{base}/handle/{item.key}"
    return f"{base}/records/{item.number}.xml"


def render_metadata(item: FixtureItem, prefix: str, base: str) -> bytes:
    """A metadata document for ``item`` in format ``prefix`` (oai_dc, qdc, dim, recipe)."""
    ident = _identifier(item, base)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']

    def el(tag: str, value: str) -> None:
        lines.append(f"  <{tag}>{xesc(value)}</{tag}>")

    if prefix == "oai_dc":
        lines.append(
            '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
            f'xmlns:dc="{DC_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/oai_dc/ '
            'http://www.openarchives.org/OAI/2.0/oai_dc.xsd">'
        )
        el("dc:title", item.title)
        for c in item.creators:
            el("dc:creator", c)
        el("dc:date", item.date)
        el("dc:description", item.description)
        for s in item.subjects:
            el("dc:subject", s)
        el("dc:publisher", item.publisher)
        el("dc:rights", item.rights)
        el("dc:language", item.language)
        el("dc:type", item.type)
        el("dc:identifier", ident)
        lines.append("</oai_dc:dc>")
    elif prefix == "qdc":
        lines.append(
            '<qdc:qualifieddc xmlns:qdc="http://epubs.cclrc.ac.uk/xmlns/qdc/" '
            f'xmlns:dc="{DC_NS}" xmlns:dcterms="{DCTERMS_NS}">'
        )
        el("dc:title", item.title)
        for c in item.creators:
            el("dc:creator", c)
        el("dcterms:issued", item.date)
        el("dcterms:abstract", item.description)
        for s in item.subjects:
            el("dc:subject", s)
        el("dc:publisher", item.publisher)
        el("dc:rights", item.rights)
        el("dc:language", item.language)
        el("dc:type", item.type)
        el("dc:identifier", ident)
        lines.append("</qdc:qualifieddc>")
    elif prefix == "dim":
        lines.append('<dim:dim xmlns:dim="http://www.dspace.org/xmlns/dspace/dim">')

        def fld(element: str, qualifier: str | None, value: str) -> None:
            q = f' qualifier="{qualifier}"' if qualifier else ""
            lines.append(
                f'  <dim:field mdschema="dc" element="{element}"{q}>{xesc(value)}</dim:field>'
            )

        fld("title", None, item.title)
        for c in item.creators:
            fld("contributor", "author", c)
        fld("date", "issued", item.date)
        fld("description", "abstract", item.description)
        for s in item.subjects:
            fld("subject", None, s)
        fld("publisher", None, item.publisher)
        fld("rights", None, item.rights)
        fld("language", "iso", item.language)
        fld("type", None, item.type)
        fld("identifier", "uri", ident)
        lines.append("</dim:dim>")
    elif prefix == "recipe":
        lines.append(f'<metadata xmlns:dcterms="{DCTERMS_NS}">')
        el("dcterms:title", item.title)
        for c in item.creators:
            el("dcterms:creator", c)
        el("dcterms:date", item.date)
        el("dcterms:description", item.description)
        for s in item.subjects:
            el("dcterms:subject", s)
        el("dcterms:publisher", item.publisher)
        el("dcterms:rights", item.rights)
        el("dcterms:language", item.language)
        el("dcterms:type", item.type)
        el("dcterms:identifier", ident)
        lines.append("</metadata>")
    else:
        raise ValueError(f"unknown metadata prefix {prefix!r}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def handle_page(base: str, handle: str, item: FixtureItem | None) -> bytes:
    title = item.title if item else f"Collection {handle}"
    body = f"<h1>{html.escape(title)}</h1>"
    if item:
        links = "".join(
            f'<li><a href="{base}/bitstreams/{f.fid}">{html.escape(f.name)}</a></li>'
            for f in item.files
        )
        body += f"<ul>{links}</ul>"
    doc = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="resourcesync" href="{base}/capabilitylist.xml">'
        f"</head><body>{body}</body></html>\n"
    )
    return doc.encode("utf-8")


# --------------------------------------------------------------------------------------------
# resources per item
# --------------------------------------------------------------------------------------------
def _entry(loc: str, lastmod: datetime | None, content: bytes, mime: str, sha: bool) -> Entry:
    return Entry(
        loc=loc,
        lastmod=lastmod,
        md5=hashlib.md5(content).hexdigest(),
        sha256=hashlib.sha256(content).hexdigest() if sha else None,
        length=len(content),
        type=mime,
    )


def _item_paths(item: FixtureItem) -> dict[tuple[str, ...], str]:
    """rid -> path (relative to base) of every resource of the item."""
    paths: dict[tuple[str, ...], str] = {}
    if item.style == "dspace":
        for p in DSPACE_FORMATS:
            paths[("meta", p)] = f"/resource/{item.key}/{p}"
        for f in item.files:
            paths[("file", f.fid)] = f"/bitstreams/{f.fid}"
    elif item.style == "recipe":
        paths[("record",)] = f"/records/{item.number}.xml"
        for f in item.files:
            paths[("file", f.fid)] = f"/files/{item.number}/{quote(f.name, safe='')}"
    else:
        for f in item.files:
            paths[("file", f.fid)] = f"/plain/{quote(f.name, safe='')}"
    return paths


def _deleted_path(item: FixtureItem, rid: tuple[str, ...]) -> str:
    if item.style == "dspace" and rid[0] == "meta":
        return f"/{item.key}/{rid[1]}"  # the dspace-rs quirk: no /resource/
    return _item_paths(item)[rid]


def item_resources(item: FixtureItem, base: str) -> list[_Res]:
    paths = _item_paths(item)
    out: list[_Res] = []
    if item.style == "dspace":
        meta_urls = {p: base + paths[("meta", p)] for p in DSPACE_FORMATS}
        bit_urls = [base + paths[("file", f.fid)] for f in item.files]
        coll = f"{base}/handle/{item.collection}" if item.collection else None
        for prefix, ns in DSPACE_FORMATS.items():
            doc = render_metadata(item, prefix, base)
            e = _entry(meta_urls[prefix], item.lastmod, doc, XML_TYPE, sha=False)
            e.links.append(Link("profile", ns))
            e.links.extend(Link("describes", u) for u in bit_urls)
            if coll:
                e.links.append(Link("collection", coll))
            e.links.extend(
                Link("alternate", u, XML_TYPE) for p, u in meta_urls.items() if p != prefix
            )
            served = Served(doc, XML_TYPE, item.lastmod)
            out.append(_Res(("meta", prefix), paths[("meta", prefix)], e, served))
        for f in item.files:
            rid = ("file", f.fid)
            e = _entry(base + paths[rid], item.lastmod, f.content, f.mime, sha=False)
            e.links.extend(Link("describedby", u) for u in meta_urls.values())
            if coll:
                e.links.append(Link("collection", coll))
            headers = {"Content-Disposition": content_disposition(f.name)}
            out.append(_Res(rid, paths[rid], e, Served(f.content, f.mime, item.lastmod, headers)))
    elif item.style == "recipe":
        rec_path = paths[("record",)]
        doc = render_metadata(item, "recipe", base)
        e = _entry(base + rec_path, item.lastmod, doc, XML_TYPE, sha=True)
        e.links.extend(Link("describes", base + paths[("file", f.fid)]) for f in item.files)
        e.links.append(Link("describedBy", DCTERMS_NS))
        out.append(_Res(("record",), rec_path, e, Served(doc, XML_TYPE, item.lastmod)))
        for f in item.files:
            rid = ("file", f.fid)
            lm = f.lastmod or item.lastmod
            e = _entry(base + paths[rid], lm, f.content, f.mime, sha=True)
            e.links.append(Link("describedBy", base + rec_path))
            out.append(_Res(rid, paths[rid], e, Served(f.content, f.mime, lm)))
    else:
        for f in item.files:
            rid = ("file", f.fid)
            lm = f.lastmod or item.lastmod
            e = _entry(base + paths[rid], lm, f.content, f.mime, sha=False)
            out.append(_Res(rid, paths[rid], e, Served(f.content, f.mime, lm)))
    return out


# --------------------------------------------------------------------------------------------
# content generation
# --------------------------------------------------------------------------------------------
_TITLE_PARTS = [
    "Fish & Chips in Coastal Towns",
    "Proofs where a < b and b > c",
    "Łódź: Industrial Heritage",
    "Café culture in Vienna",
    "Notes on <unclosed> tags & entities",
    "Ørsted's electromagnetism revisited",
    "Tidal energy survey",
    "Ζήτα functions for beginners",
    "Straße, Fluss und Brücke",
    "Data set of urban trees",
]
_CREATORS = [
    "Müller, Jörg",
    "Smith, John",
    "Kowalska, Łucja",
    "Dupont, Amélie",
    "O'Brien, Seán",
    "Nakamura, Yū",
    "García Márquez, José",
    "Doe, Jane",
]
_SUBJECTS = ["Geology", "History", "Café society", "Mathematics", "R&D", "Ökologie"]
_FILE_NAMES = {
    "application/pdf": ["Łódź café.pdf", "full text.pdf", "résumé final.pdf", "article.pdf"],
    "text/plain": ["readme.txt", "notes & errata.txt", "Überblick.txt"],
    "image/png": ["figure 1.png", "map of Łódź.png", "chart.png"],
    "text/csv": ["data set 1.csv", "measurements (raw).csv", "données.csv"],
}
_MIMES = list(_FILE_NAMES)


def make_png(rng: random.Random, size: int) -> bytes:
    """A valid grayscale PNG of roughly ``size`` bytes (noise compresses badly)."""
    width = 32
    height = max(1, size // (width + 1))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + rng.randbytes(width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def make_content(rng: random.Random, mime: str, size: int) -> bytes:
    if mime == "application/pdf":
        body = rng.randbytes(max(0, size - 20))
        return b"%PDF-1.4\n" + body + b"\n%%EOF\n"
    if mime == "image/png":
        return make_png(rng, size)
    if mime == "text/csv":
        rows = ["id,name,value"]
        while sum(len(r) + 1 for r in rows) < size:
            rows.append(f"{len(rows)},{rng.choice(_CREATORS)!r},{rng.random():.6f}")
        return ("\n".join(rows) + "\n").encode("utf-8")
    if mime == "text/plain":
        words = ["Łódź", "café", "data", "river", "&", "<tag>", "Müller", "lorem", "ipsum"]
        text = ""
        while len(text.encode("utf-8")) < size:
            text += " ".join(rng.choice(words) for _ in range(12)) + "\n"
        return text.encode("utf-8")
    return rng.randbytes(size)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
_MUTABLE_FIELDS = {
    "title",
    "creators",
    "date",
    "description",
    "subjects",
    "publisher",
    "rights",
    "language",
    "type",
    "collection",
}


def descriptive_fields(rng: random.Random, i: int, n: int) -> dict[str, Any]:
    """The descriptive metadata of the ``i``-th generated item, numbered ``n`` (creators,
    then subjects, drawn from ``rng``): the same for every generated source."""
    return {
        "creators": rng.sample(_CREATORS, 1 + i % 3),
        "date": f"{2000 + i % 24}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "description": f"Abstract of item {n}: results & discussion <draft>, naïve approach.",
        "subjects": rng.sample(_SUBJECTS, 1 + i % 2),
        "publisher": "Université de Test & Co.",
        "rights": "CC BY 4.0",
        "language": ["en", "pl", "de", "fr"][i % 4],
        "type": ["Article", "Dataset", "Image", "Text"][i % 4],
    }


class SourceModel:
    """Items of a ResourceSync source, their resources and their change history."""

    def __init__(self, base_url: str = "http://127.0.0.1:0", seed: int = 0) -> None:
        self.base_url = base_url.rstrip("/")
        self.items: dict[str, FixtureItem] = {}
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._next_n = 10  # dspace collection handles are small numbers
        self._file_counter = 0
        self._last_tick: datetime = datetime.now(UTC)
        self.created_at: datetime = self._last_tick
        self._events: list[_RawEvent] = []
        self._tampered: dict[str, tuple[str, bytes]] = {}  # path -> (md5 at tamper, bytes)
        self._version = 0
        self._cache: dict[str, tuple[tuple[int, str], object]] = {}
        self.max_files = 3
        self.file_size = 2048
        self.files_per_item: int | None = None  # None: 0..max_files, varying per item

    # -- clock --------------------------------------------------------------------------------
    def tick(self) -> datetime:
        """A UTC datetime strictly greater than any returned before (real clock, µs)."""
        with self.lock:
            now = datetime.now(UTC)
            if now <= self._last_tick:
                now = self._last_tick + timedelta(microseconds=1)
            self._last_tick = now
            return now

    # -- generation ---------------------------------------------------------------------------
    @classmethod
    def generate(
        cls,
        n_items: int,
        seed: int = 0,
        styles: tuple[str, ...] = STYLES,
        max_files: int = 3,
        file_size: int = 2048,
        files_per_item: int | None = None,
    ) -> SourceModel:
        m = cls(seed=seed)
        m.max_files = max_files
        m.file_size = file_size
        m.files_per_item = files_per_item
        epoch = datetime(2023, 1, 1, tzinfo=UTC)
        for i in range(n_items):
            style: Style = styles[i % len(styles)]  # type: ignore[assignment]
            lastmod = epoch + timedelta(hours=7 * i, seconds=m._rng.randrange(3600))
            item = m._new_item(style, {}, lastmod, index=i)
            m.items[item.key] = item
        m.created_at = m.tick()
        m._version += 1
        return m

    def make_file(
        self, name: str, content: bytes, mime: str = "application/octet-stream"
    ) -> FixtureFile:
        fid = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        return FixtureFile(fid, name, content, mime)

    def _gen_file(self, n: int, k: int, plain: bool) -> FixtureFile:
        mime = _MIMES[(n + k) % len(_MIMES)]
        name = self._rng.choice(_FILE_NAMES[mime])
        if plain:
            name = f"{n:04d} {name}"
        elif k:
            stem, _, ext = name.rpartition(".")
            name = f"{stem} ({k + 1}).{ext}"
        self._file_counter += 1
        if self._file_counter % 7 == 3:
            content = b""
        else:
            size = max(1, int(self.file_size * (0.5 + self._rng.random())))
            content = make_content(self._rng, mime, size)
        return self.make_file(name, content, mime)

    def _new_item(
        self, style: Style, fields: dict[str, object], lastmod: datetime, index: int | None = None
    ) -> FixtureItem:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}")
        n = self._next_n
        self._next_n += 1
        i = n if index is None else index
        rng = self._rng
        key = {"dspace": f"{DSPACE_PREFIX}/{n}", "recipe": f"rec-{n}", "plain": f"plain-{n}"}[style]
        title = f"{_TITLE_PARTS[i % len(_TITLE_PARTS)]} ({n})"
        files: list[FixtureFile]
        if "files" in fields:
            files = list(fields.pop("files"))  # type: ignore[call-overload]
        elif style == "plain":
            files = [self._gen_file(n, 0, plain=True)]
        else:
            count = (i // len(STYLES)) % (self.max_files + 1)
            if self.files_per_item is not None:
                count = self.files_per_item
            files = [self._gen_file(n, k, plain=False) for k in range(count)]
        if style == "plain" and len(files) != 1:
            raise ValueError("a plain item is exactly one file")
        item = FixtureItem(
            key=key,
            style=style,
            title=title,
            **descriptive_fields(rng, i, n),
            collection=DSPACE_COLLECTIONS[i % 2] if style == "dspace" else None,
            files=files,
            lastmod=lastmod,
        )
        for f in files:
            if f.lastmod is None:
                f.lastmod = lastmod
        for k, v in fields.items():
            if k not in _MUTABLE_FIELDS:
                raise ValueError(f"unknown field {k!r}")
            setattr(item, k, v)
        if style == "plain":
            item.title = files[0].name
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise ValueError("file names must be unique within an item")
        return item

    # -- mutations -----------------------------------------------------------------------------
    def _record(
        self,
        item: FixtureItem,
        rids: list[tuple[str, ...]],
        change: Literal["created", "updated", "deleted"],
        first: datetime | None = None,
    ) -> None:
        snap = copy.deepcopy(item)
        for rid in rids:
            dt = first if first is not None else self.tick()
            first = None
            self._events.append(_RawEvent(snap, rid, change, dt))
        self._version += 1

    def _all_rids(self, item: FixtureItem) -> list[tuple[str, ...]]:
        return list(_item_paths(item))

    def _get(self, key: str) -> FixtureItem:
        try:
            return self.items[key]
        except KeyError:
            raise KeyError(f"no item {key!r}") from None

    def create_item(self, style: Style, **fields: object) -> FixtureItem:
        with self.lock:
            t = self.tick()
            item = self._new_item(style, dict(fields), t)
            if style == "plain" and any(
                it.style == "plain" and it.files[0].name == item.files[0].name
                for it in self.items.values()
            ):
                raise ValueError("plain file name already in use")
            self.items[item.key] = item
            change: Literal["created", "updated"] = "updated" if style == "dspace" else "created"
            self._record(item, self._all_rids(item), change, first=t)
            return item

    def update_metadata(self, key: str, **fields: object) -> None:
        with self.lock:
            item = self._get(key)
            if item.style == "plain":
                raise ValueError("plain items have no metadata record")
            for k in fields:
                if k not in _MUTABLE_FIELDS:
                    raise ValueError(f"unknown field {k!r}")
            t = self.tick()
            for k, v in fields.items():
                setattr(item, k, v)
            item.lastmod = t
            if item.style == "dspace":
                for f in item.files:
                    f.lastmod = t
                self._record(item, self._all_rids(item), "updated", first=t)
            else:
                self._record(item, [("record",)], "updated", first=t)

    def replace_file(self, key: str, index_or_name: int | str, content: bytes) -> None:
        with self.lock:
            item = self._get(key)
            f = item.file(index_or_name)
            t = self.tick()
            f.content = content
            f.lastmod = t
            if item.style == "dspace":
                item.lastmod = t
                for g in item.files:
                    g.lastmod = t
                self._record(item, self._all_rids(item), "updated", first=t)
            else:
                if item.style == "plain":
                    item.lastmod = t
                self._record(item, [("file", f.fid)], "updated", first=t)

    def add_file(
        self, key: str, name: str, content: bytes, mime: str = "application/octet-stream"
    ) -> FixtureFile:
        with self.lock:
            item = self._get(key)
            if item.style == "plain":
                raise ValueError("a plain item is exactly one file")
            if any(f.name == name for f in item.files):
                raise ValueError(f"{key}: file {name!r} exists")
            t = self.tick()
            f = self.make_file(name, content, mime)
            f.lastmod = t
            item.files.append(f)
            if item.style == "dspace":
                item.lastmod = t
                for g in item.files:
                    g.lastmod = t
                self._record(item, self._all_rids(item), "updated", first=t)
            else:
                item.lastmod = t  # the record's describes links changed
                self._record(item, [("file", f.fid)], "created", first=t)
                self._record(item, [("record",)], "updated")
            return f

    def remove_file(self, key: str, name: str) -> None:
        with self.lock:
            item = self._get(key)
            if item.style == "plain":
                raise ValueError("a plain item is exactly one file: delete the item")
            f = item.file(name)
            t = self.tick()
            pre = copy.deepcopy(item)
            item.files.remove(f)
            item.lastmod = t
            self._record(pre, [("file", f.fid)], "deleted", first=t)
            if item.style == "dspace":
                for g in item.files:
                    g.lastmod = t
                self._record(item, self._all_rids(item), "updated")
            else:
                self._record(item, [("record",)], "updated")

    def delete_item(self, key: str) -> None:
        with self.lock:
            item = self._get(key)
            del self.items[key]
            for path in [*_item_paths(item).values()]:
                self._tampered.pop(path, None)
            self._record(item, self._all_rids(item), "deleted")

    def tamper(self, loc: str) -> None:
        """Serve different bytes than advertised (same length, one byte flipped; b"x" if empty)."""
        with self.lock:
            path = self._path_of(loc)
            served = self.served(path)
            if served is None:
                raise KeyError(f"no resource at {loc}")
            data = served.content
            if data:
                i = len(data) // 2
                bad = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
            else:
                bad = b"x"
            self._tampered[path] = (hashlib.md5(data).hexdigest(), bad)

    def _path_of(self, loc: str) -> str:
        if loc.startswith(self.base_url):
            loc = loc[len(self.base_url) :]
        return loc

    # -- views ---------------------------------------------------------------------------------
    def _cached(self, name: str, build):  # type: ignore[no-untyped-def]
        key = (self._version, self.base_url)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = build()
        self._cache[name] = (key, value)
        return value

    def _resources(self) -> dict[str, _Res]:
        def build() -> dict[str, _Res]:
            out: dict[str, _Res] = {}
            for item in self.items.values():
                for r in item_resources(item, self.base_url):
                    out[r.path] = r
            return out

        with self.lock:
            return self._cached("resources", build)  # type: ignore[no-any-return]

    def resource_entries(self) -> list[Entry]:
        """What a resource list publishes now, sorted by loc."""
        with self.lock:
            return sorted((r.entry for r in self._resources().values()), key=lambda e: e.loc)

    def served(self, path: str) -> Served | None:
        """The answer for a request path (percent-encoded or not); tampered bytes if tampered."""
        with self.lock:
            res = self._resources()
            r = res.get(path)
            if r is None:
                r = res.get(_requote(path))
            if r is None:
                return None
            t = self._tampered.get(r.path)
            if t is not None and t[0] == r.entry.md5:
                s = r.served
                return Served(t[1], s.mime, s.lastmod, dict(s.headers))
            return r.served

    def item_by_handle(self, handle: str) -> FixtureItem | None:
        item = self.items.get(handle)
        return item if item and item.style == "dspace" else None

    def collections(self) -> set[str]:
        return {it.collection for it in self.items.values() if it.collection}

    def change_events(self) -> list[ChangeEvent]:
        """All change events since creation, in time order."""

        def build() -> list[ChangeEvent]:
            base = self.base_url
            out: list[ChangeEvent] = []
            per_snap: dict[int, dict[tuple[str, ...], Entry]] = {}
            for ev in self._events:
                if ev.change == "deleted":
                    loc = base + _deleted_path(ev.item, ev.rid)
                    entry = Entry(loc, ev.dt, None, None, None, None, [])
                else:
                    m = per_snap.get(id(ev.item))
                    if m is None:
                        m = {r.rid: r.entry for r in item_resources(ev.item, base)}
                        per_snap[id(ev.item)] = m
                    entry = copy.copy(m[ev.rid])
                out.append(ChangeEvent(entry, ev.change, ev.dt))
            return out

        with self.lock:
            return list(self._cached("events", build))  # type: ignore[call-overload]

    def expected(self) -> dict[str, Expected]:
        """What a correct mirror must hold per live item."""
        with self.lock:
            return {
                key: Expected(
                    title=item.title,
                    # a plain resource carries no metadata: the mirror cannot know its creators
                    creators=[] if item.style == "plain" else list(item.creators),
                    files={f.name: f.md5 for f in item.files},
                    style=item.style,
                    key=key,
                )
                for key, item in self.items.items()
            }


def _requote(path: str) -> str:
    """Normalise a request path to the form used in the model (segments quoted with safe='')."""
    return "/".join(quote(unquote(seg), safe="") for seg in path.split("/"))
