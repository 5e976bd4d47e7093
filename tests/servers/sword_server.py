"""Local SWORD v2 server (SWORD 2.0 profile subset) for tests, the demo and the benchmark.

It stands in for a repository such as DSpace: service document, Col-IRI (create with an Atom
entry or a binary file, and a feed of the collection), Edit-IRI (receipt, replace/add metadata,
complete, delete), EM-IRI (zip of all files, add one file, replace all, delete all), per-file
IRIs and an Atom statement with ``sword:state``.

Storage is one directory per container, ``root/<collection>/<id>/`` holding ``meta.json``,
``entry.xml`` (the last Atom entry) and ``files/<fid>``. A request reads and writes only the
container it touches, so the store scales to many thousands of containers; writes to a container
are serialised by a per-container lock and ``meta.json`` is replaced atomically. New containers
are staged in a hidden directory and renamed into place, so a reader never sees half of one.
Uploads are streamed to disk with the MD5 computed on the way.

Run it in the foreground with ``python -m tests.servers.sword_server --root DIR``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import traceback
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from .base import FaultPolicy, Handler, LocalHTTPServer, serve_until_signal

ATOM = "http://www.w3.org/2005/Atom"
SWORD = "http://purl.org/net/sword/terms/"
APP = "http://www.w3.org/2007/app"
DCTERMS = "http://purl.org/dc/terms/"
BINARY = "http://purl.org/net/sword/package/Binary"
STATE_BASE = "http://purl.org/net/sword/state/"
ERROR_BASE = "http://purl.org/net/sword/error/"
ENTRY_CT = "application/atom+xml;type=entry"
FEED_CT = "application/atom+xml;type=feed"

STATES = ("in-progress", "archived", "inworkflow", "deleted")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MAX_ENTRY_BYTES = 16 << 20


# -- on-disk store (read side) --------------------------------------------------------------------
@dataclass
class StoredFile:
    id: str
    name: str
    md5: str
    size: int
    path: Path
    iri: str
    content_type: str


@dataclass
class StoredContainer:
    id: str
    collection: str
    state: str
    slug: str | None
    entry_xml: bytes
    dc: dict[str, list[str]]
    files: list[StoredFile] = field(default_factory=list)
    edit_iri: str = ""


class SwordStore:
    """Reads the on-disk store; used by the server and by tests to assert outcomes."""

    def __init__(self, root: Path, base_url: str | None = None) -> None:
        self.root = Path(root)
        self._base_url = base_url

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            try:
                info = json.loads((self.root / ".server.json").read_text("utf-8"))
                return str(info.get("base_url", ""))
            except (OSError, ValueError):
                return ""
        return self._base_url

    def collection_names(self) -> list[str]:
        try:
            return sorted(
                e.name for e in os.scandir(self.root) if e.is_dir() and _SAFE_ID.match(e.name)
            )
        except FileNotFoundError:
            return []

    def locate(self, cid: str) -> Path | None:
        """The directory of container ``cid`` (ids are unique across collections)."""
        if not _SAFE_ID.match(cid):
            return None
        for name in self.collection_names():
            cdir = self.root / name / cid
            if (cdir / "meta.json").is_file():
                return cdir
        return None

    @staticmethod
    def read_meta(cdir: Path) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = json.loads((cdir / "meta.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return meta

    def container_ids(self, collection: str) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.root / collection) if _SAFE_ID.match(e.name)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def to_container(self, cdir: Path, meta: dict[str, Any]) -> StoredContainer:
        base = self.base_url
        cid = cdir.name
        try:
            entry_xml = (cdir / "entry.xml").read_bytes()
        except FileNotFoundError:
            entry_xml = b""
        files = [
            StoredFile(
                id=f["id"],
                name=f["name"],
                md5=f["md5"],
                size=f["size"],
                path=cdir / "files" / f["id"],
                iri=f"{base}/file/{cid}/{f['id']}",
                content_type=f["content_type"],
            )
            for f in meta.get("files", [])
        ]
        return StoredContainer(
            id=cid,
            collection=cdir.parent.name,
            state=meta["state"],
            slug=meta.get("slug"),
            entry_xml=entry_xml,
            dc={k: list(v) for k, v in meta.get("dc", {}).items()},
            files=files,
            edit_iri=f"{base}/edit/{cid}",
        )

    def containers(
        self, collection: str | None = None, include_deleted: bool = False
    ) -> list[StoredContainer]:
        names = [collection] if collection is not None else self.collection_names()
        found: list[tuple[float, StoredContainer]] = []
        for name in names:
            for cid in self.container_ids(name):
                cdir = self.root / name / cid
                meta = self.read_meta(cdir)
                if meta is None or (meta["state"] == "deleted" and not include_deleted):
                    continue
                found.append((meta.get("created_ts", 0.0), self.to_container(cdir, meta)))
        found.sort(key=lambda t: (t[0], t[1].id))
        return [c for _, c in found]

    def get(self, cid: str) -> StoredContainer | None:
        cdir = self.locate(cid)
        if cdir is None:
            return None
        meta = self.read_meta(cdir)
        return None if meta is None else self.to_container(cdir, meta)


# -- helpers --------------------------------------------------------------------------------------
class SwordError(Exception):
    """An HTTP error answer; ``name`` None gives a plain-text body."""

    def __init__(
        self,
        status: int,
        name: str | None = None,
        summary: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {name or ''} {summary}")
        self.status = status
        self.name = name
        self.summary = summary
        self.headers = headers or {}


def _now() -> tuple[str, float]:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), now.timestamp()


def _x(text: str) -> str:
    return escape(_XML_INVALID.sub("", text))


def _qa(text: str) -> str:
    return quoteattr(_XML_INVALID.sub("", text))


def error_document(name: str, summary: str) -> bytes:
    stamp, _ = _now()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<sword:error xmlns="{ATOM}" xmlns:sword="{SWORD}" href="{ERROR_BASE}{name}">'
        f"<title>ERROR</title><updated>{stamp}</updated>"
        '<generator uri="https://example.org/local-sword" version="2.0">local-sword</generator>'
        f"<summary>{_x(summary)}</summary>"
        "<sword:treatment>Processing failed</sword:treatment>"
        f"<sword:verboseDescription>{_x(name)}: {_x(summary)}</sword:verboseDescription>"
        "</sword:error>"
    ).encode()


def parse_entry(data: bytes) -> dict[str, list[str]]:
    """DC terms (local name -> values) of an Atom entry; atom:title stands in for a title."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise SwordError(400, "ErrorBadRequest", f"malformed Atom entry: {exc}") from exc
    if root.tag != f"{{{ATOM}}}entry":
        raise SwordError(400, "ErrorBadRequest", "the body is not an atom:entry")
    dc: dict[str, list[str]] = {}
    prefix = f"{{{DCTERMS}}}"
    for el in root:
        if isinstance(el.tag, str) and el.tag.startswith(prefix):
            dc.setdefault(el.tag[len(prefix) :], []).append("".join(el.itertext()).strip())
    if "title" not in dc:
        title = root.find(f"{{{ATOM}}}title")
        if title is not None:
            dc["title"] = ["".join(title.itertext()).strip()]
    return dc


def _split_params(header: str) -> list[str]:
    parts, buf, quoted, escaped = [], [], False, False
    for ch in header:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            buf.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf).strip())
    return parts


def parse_filename(header: str | None) -> str:
    """Filename from Content-Disposition: RFC 5987 ``filename*`` first, then ``filename``."""
    if not header:
        return "file.bin"
    params: dict[str, str] = {}
    for piece in _split_params(header)[1:]:
        if "=" not in piece:
            continue
        key, value = piece.split("=", 1)
        key, value = key.strip().lower(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(key, value)
    ext = params.get("filename*")
    if ext:
        m = re.match(r"^([^']*)'[^']*'(.*)$", ext)
        try:
            if m:
                name = unquote(m.group(2), encoding=m.group(1) or "utf-8", errors="strict")
            else:
                name = unquote(ext, errors="strict")
        except (LookupError, UnicodeDecodeError):
            name = ""
        if name:
            return name
    name = params.get("filename", "")
    if name:
        # http.server decodes header bytes as Latin-1: recover raw UTF-8 sent by sloppy clients
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            name = name.encode("latin-1").decode("utf-8")
        return name
    return "file.bin"


def reference_name(header: str | None) -> str:
    """The reference server's stored name: ``<deposit time>_<filename=>`` with the ASCII
    ``filename=`` value as sent, quotes included (``filename*`` is ignored)."""
    raw = "file.bin"
    for piece in _split_params(header or "")[1:]:
        key, sep, value = piece.partition("=")
        if sep and key.strip().lower() == "filename":
            raw = value.strip()
            break
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{stamp}_{raw}"


def parse_content_md5(value: str) -> str:
    """Hex MD5 from a Content-MD5 header given as hex or as base64 of the 16 raw bytes."""
    value = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{32}", value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise SwordError(412, "ErrorChecksumMismatch", f"unreadable Content-MD5: {value!r}")
    return raw.hex()


def _safe_disk_name(name: str) -> str:
    cleaned = re.sub(r"[/\\\x00]", "_", name).strip() or "file.bin"
    return "_" + cleaned if cleaned in (".", "..") else cleaned


def _content_disposition(name: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name) or "file.bin"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


# -- the server -----------------------------------------------------------------------------------
class _SwordHTTPServer(LocalHTTPServer):
    def __init__(
        self, app: SwordServer, port: int, latency: float, faults: FaultPolicy | None
    ) -> None:
        super().__init__(_SwordHandler, port=port, latency=latency, faults=faults)
        self.app = app


class SwordServer:
    """A SWORD v2 server on 127.0.0.1 storing containers under ``root``."""

    def __init__(
        self,
        root: Path,
        port: int = 0,
        user: str = "sword",
        password: str = "secret",
        collections: Sequence[str] = ("default", "theses", "articles"),
        max_upload_kb: int | None = None,
        mediation: bool = True,
        archived_readonly: bool = False,
        honour_slug: bool = True,
        complete_state: str = "archived",
        per_file_iris: bool = True,
        latency: float = 0.0,
        faults: FaultPolicy | None = None,
        listing: str = "full",  # full | titles (edit link + title, like DSpace) | none (405)
        reference: bool = False,
    ) -> None:
        """``reference``: behave like the SWORD project's reference server (Simple-Sword-Server)
        as observed: files stored as ``<time>_"<name>"`` from the ASCII ``filename=`` (quotes
        kept, ``filename*`` ignored), statements without MD5 or size, 405 on DELETE of a single
        file IRI, 400 on an empty body, ``maxUploadSize`` advertised in bytes, Slug ignored."""
        if listing not in ("full", "titles", "none"):
            raise ValueError("listing must be 'full', 'titles' or 'none'")
        self.listing = listing
        if complete_state not in ("archived", "inworkflow"):
            raise ValueError("complete_state must be 'archived' or 'inworkflow'")
        for name in collections:
            if not _SAFE_ID.match(name):
                raise ValueError(f"bad collection name {name!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        self.collections = list(collections)
        self.max_upload_kb = max_upload_kb
        self.mediation = mediation
        self.archived_readonly = archived_readonly
        self.reference = reference
        self.honour_slug = honour_slug and not reference
        self.complete_state = complete_state
        self.per_file_iris = per_file_iris
        self.httpd = _SwordHTTPServer(self, port, latency, faults)
        self.store = SwordStore(self.root, base_url=self.base_url)
        for name in self.collections:
            (self.root / name).mkdir(exist_ok=True)
        tmp = self.root / f".server.json.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps({"base_url": self.base_url}), "utf-8")
        os.replace(tmp, self.root / ".server.json")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._create_lock = threading.Lock()
        # collection feed: cid -> ((inode, mtime) of meta.json, created_ts, entry or None)
        self._feed_cache: dict[str, tuple[tuple[int, int], float, bytes | None]] = {}

    # -- lifecycle and plumbing -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.httpd.base_url

    @property
    def sd_iri(self) -> str:
        return self.base_url + "/sd"

    def col_iri(self, name: str) -> str:
        return f"{self.base_url}/col/{name}"

    @property
    def stats(self) -> Counter[str]:
        return self.httpd.stats

    def reset_stats(self) -> None:
        self.httpd.reset_stats()

    @property
    def latency(self) -> float:
        return self.httpd.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.httpd.latency = value

    @property
    def faults(self) -> FaultPolicy:
        return self.httpd.faults

    @faults.setter
    def faults(self, value: FaultPolicy) -> None:
        self.httpd.faults = value

    def start(self) -> SwordServer:
        # like LocalHTTPServer.start, with a short poll interval so that stop() is quick
        thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.httpd._thread = thread
        thread.start()
        return self

    def stop(self) -> None:
        self.httpd.stop()

    def __enter__(self) -> SwordServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def max_upload_bytes(self) -> int | None:
        return None if self.max_upload_kb is None else self.max_upload_kb * 1024

    # -- IRIs ------------------------------------------------------------------------------------
    def edit_iri(self, cid: str) -> str:
        return f"{self.base_url}/edit/{cid}"

    def em_iri(self, cid: str) -> str:
        return f"{self.base_url}/em/{cid}"

    def statement_iri(self, cid: str) -> str:
        return f"{self.base_url}/statement/{cid}"

    def file_iri(self, cid: str, fid: str) -> str:
        return f"{self.base_url}/file/{cid}/{fid}"

    # -- container access ------------------------------------------------------------------------
    def _lock(self, cid: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(cid)
            if lock is None:
                lock = self._locks[cid] = threading.Lock()
            return lock

    def load(self, cid: str) -> tuple[Path, dict[str, Any]]:
        """The directory and meta of a live container, else 404."""
        cdir = self.store.locate(cid)
        meta = SwordStore.read_meta(cdir) if cdir is not None else None
        if cdir is None or meta is None or meta["state"] == "deleted":
            raise SwordError(404, None, "no such container")
        return cdir, meta

    def check_writable(self, meta: dict[str, Any]) -> None:
        if self.archived_readonly and meta["state"] in ("archived", "inworkflow"):
            raise SwordError(
                405, "MethodNotAllowed", f"the item is {meta['state']} and can no longer change"
            )

    def _save_meta(self, cdir: Path, meta: dict[str, Any]) -> None:
        meta["updated"], _ = _now()
        tmp = cdir / f".meta.{uuid.uuid4().hex}.tmp"
        tmp.write_bytes(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        os.replace(tmp, cdir / "meta.json")

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _refuse_empty(self, part: Path, size: int) -> None:
        if self.reference and size == 0:
            part.unlink(missing_ok=True)
            raise SwordError(400, "ErrorBadRequest", "No content sent to the server")

    def _receive(
        self, dest_dir: Path, chunks: Iterable[bytes], expected_md5: str | None
    ) -> tuple[Path, str, int]:
        """Stream a body into a part file in ``dest_dir``; verify the MD5 if given."""
        part = dest_dir / f".{uuid.uuid4().hex}.part"
        digest = hashlib.md5()
        size = 0
        try:
            with part.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        md5 = digest.hexdigest()
        if expected_md5 is not None and md5 != expected_md5:
            part.unlink(missing_ok=True)
            raise SwordError(
                412,
                "ErrorChecksumMismatch",
                f"Content-MD5 {expected_md5} does not match the received {md5}",
            )
        return part, md5, size

    @staticmethod
    def _file_record(name: str, md5: str, size: int, content_type: str) -> dict[str, Any]:
        stamp, _ = _now()
        return {
            "id": uuid.uuid4().hex[:16],
            "name": name,
            "disk_name": _safe_disk_name(name),
            "md5": md5,
            "size": size,
            "content_type": content_type,
            "deposited": stamp,
        }

    # -- operations ------------------------------------------------------------------------------
    def create(
        self,
        collection: str,
        slug: str | None,
        on_behalf_of: str | None,
        in_progress: bool,
        entry: bytes | None,
        dc: dict[str, list[str]],
        upload: tuple[Iterable[bytes], str, str, str | None] | None = None,
    ) -> tuple[Path, dict[str, Any]]:
        """Create a container from an entry or from one file (chunks, name, type, md5)."""
        if collection not in self.collections:
            raise SwordError(404, None, "no such collection")
        coldir = self.root / collection
        staging = coldir / f".new-{uuid.uuid4().hex}"
        (staging / "files").mkdir(parents=True)
        try:
            stamp, ts = _now()
            meta: dict[str, Any] = {
                "state": "in-progress" if in_progress else self.complete_state,
                "slug": slug,
                "on_behalf_of": on_behalf_of,
                "created": stamp,
                "created_ts": ts,
                "dc": dc,
                "files": [],
            }
            if entry is not None:
                (staging / "entry.xml").write_bytes(entry)
            if upload is not None:
                chunks, name, ctype, expected = upload
                part, md5, size = self._receive(staging / "files", chunks, expected)
                self._refuse_empty(part, size)
                rec = self._file_record(name, md5, size, ctype)
                os.replace(part, staging / "files" / rec["id"])
                meta["files"].append(rec)
                meta["dc"] = dc or {"title": [name]}
            meta["updated"] = stamp
            (staging / "meta.json").write_bytes(json.dumps(meta, ensure_ascii=False).encode())
            with self._create_lock:
                cid = None
                if (
                    self.honour_slug
                    and slug
                    and _SAFE_ID.match(slug)
                    and self.store.locate(slug) is None
                    and not any((self.root / c / slug).exists() for c in self.collections)
                ):
                    cid = slug
                cid = cid or uuid.uuid4().hex
                os.rename(staging, coldir / cid)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return coldir / cid, meta

    def set_metadata(
        self, cid: str, entry: bytes, dc: dict[str, list[str]], complete: bool
    ) -> tuple[Path, dict[str, Any]]:
        with self._lock(cid):
            cdir, meta = self.load(cid)
            self.check_writable(meta)
            self._write_atomic(cdir / "entry.xml", entry)
            meta["dc"] = dc
            if complete and meta["state"] == "in-progress":
                meta["state"] = self.complete_state
            self._save_meta(cdir, meta)
            return cdir, meta

    def complete(self, cid: str, in_progress: bool) -> tuple[Path, dict[str, Any]]:
        with self._lock(cid):
            cdir, meta = self.load(cid)
            self.check_writable(meta)
            if not in_progress and meta["state"] == "in-progress":
                meta["state"] = self.complete_state
            self._save_meta(cdir, meta)
            return cdir, meta

    def delete_container(self, cid: str) -> None:
        with self._lock(cid):
            cdir, meta = self.load(cid)
            self.check_writable(meta)
            meta["state"] = "deleted"
            meta["deleted"], _ = _now()
            self._save_meta(cdir, meta)

    def add_file(
        self,
        cid: str,
        chunks: Iterable[bytes],
        name: str,
        content_type: str,
        expected_md5: str | None,
        replace_all: bool = False,
    ) -> tuple[Path, dict[str, Any], dict[str, Any]]:
        cdir, meta = self.load(cid)
        self.check_writable(meta)
        files_dir = cdir / "files"
        files_dir.mkdir(exist_ok=True)
        part, md5, size = self._receive(files_dir, chunks, expected_md5)
        self._refuse_empty(part, size)
        try:
            with self._lock(cid):
                cdir, meta = self.load(cid)
                self.check_writable(meta)
                rec = self._file_record(name, md5, size, content_type)
                os.replace(part, files_dir / rec["id"])
                old = meta["files"] if replace_all else []
                meta["files"] = [rec] if replace_all else [*meta["files"], rec]
                self._save_meta(cdir, meta)
                for f in old:
                    (files_dir / f["id"]).unlink(missing_ok=True)
                return cdir, meta, rec
        finally:
            part.unlink(missing_ok=True)

    def delete_files(self, cid: str, fid: str | None = None) -> None:
        with self._lock(cid):
            cdir, meta = self.load(cid)
            self.check_writable(meta)
            if fid is None:
                gone, meta["files"] = meta["files"], []
            else:
                gone = [f for f in meta["files"] if f["id"] == fid]
                if not gone:
                    raise SwordError(404, None, "no such file")
                meta["files"] = [f for f in meta["files"] if f["id"] != fid]
            self._save_meta(cdir, meta)
            for f in gone:
                (cdir / "files" / f["id"]).unlink(missing_ok=True)

    # -- documents -------------------------------------------------------------------------------
    def service_document(self) -> bytes:
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<service xmlns="{APP}" xmlns:atom="{ATOM}" xmlns:sword="{SWORD}"'
            f' xmlns:dcterms="{DCTERMS}">',
            "<sword:version>2.0</sword:version>",
        ]
        if self.max_upload_kb is not None:
            # SWORD 2.0 says kilobytes; the reference server advertises bytes
            advertised = self.max_upload_kb * 1024 if self.reference else self.max_upload_kb
            out.append(f"<sword:maxUploadSize>{advertised}</sword:maxUploadSize>")
        out.append("<workspace><atom:title>Local SWORD repository</atom:title>")
        mediation = "true" if self.mediation else "false"
        for name in self.collections:
            out.append(
                f"<collection href={_qa(self.col_iri(name))}>"
                f"<atom:title>{_x(name)}</atom:title>"
                "<accept>*/*</accept>"
                '<accept alternate="multipart-related">*/*</accept>'
                "<sword:collectionPolicy>Test collection.</sword:collectionPolicy>"
                f"<sword:mediation>{mediation}</sword:mediation>"
                "<sword:treatment>Stored as is.</sword:treatment>"
                f"<sword:acceptPackaging>{BINARY}</sword:acceptPackaging>"
                "</collection>"
            )
        out.append("</workspace></service>")
        return "".join(out).encode("utf-8")

    @staticmethod
    def _title(meta: dict[str, Any]) -> str:
        titles = meta.get("dc", {}).get("title") or ["Untitled"]
        return str(titles[0])

    @staticmethod
    def _dc_xml(meta: dict[str, Any]) -> str:
        return "".join(
            f"<dcterms:{k}>{_x(v)}</dcterms:{k}>"
            for k, values in meta.get("dc", {}).items()
            for v in values
        )

    def receipt(self, cdir: Path, meta: dict[str, Any]) -> bytes:
        cid = cdir.name
        edit, em = self.edit_iri(cid), self.em_iri(cid)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<entry xmlns="{ATOM}" xmlns:sword="{SWORD}" xmlns:dcterms="{DCTERMS}">'
            f"<id>{_x(edit)}</id>"
            f"<title>{_x(self._title(meta))}</title>"
            f"<updated>{meta.get('updated', meta['created'])}</updated>"
            "<author><name>local-sword</name></author>"
            f"{self._dc_xml(meta)}"
            f'<content type="application/zip" src={_qa(em)}/>'
            f'<link rel="edit" href={_qa(edit)}/>'
            f'<link rel="edit-media" href={_qa(em)}/>'
            f'<link rel="edit-media" type="{FEED_CT}" href={_qa(em + ".atom")}/>'
            f'<link rel="{SWORD}add" href={_qa(edit)}/>'
            f'<link rel="{SWORD}statement" type="{FEED_CT}"'
            f" href={_qa(self.statement_iri(cid))}/>"
            f"<sword:packaging>{BINARY}</sword:packaging>"
            "<sword:treatment>Stored as is; the item enters the repository on completion."
            "</sword:treatment>"
            "</entry>"
        ).encode()

    def _feed_entry(self, cid: str, meta: dict[str, Any]) -> bytes:
        edit = self.edit_iri(cid)
        full = self.listing == "full"
        slug = meta.get("slug") if full else None
        return (
            f"<entry><id>{_x(edit)}</id><title>{_x(self._title(meta))}</title>"
            f"<updated>{meta.get('updated', meta['created'])}</updated>"
            f'<link rel="edit" href={_qa(edit)}/>'
            f"{self._dc_xml(meta) if full else ''}"
            + (f"<sword:slug>{_x(slug)}</sword:slug>" if slug else "")
            + f'<sword:state href="{STATE_BASE}{meta["state"]}"/>'
            "</entry>"
        ).encode("utf-8")

    def collection_feed(self, collection: str) -> bytes:
        if collection not in self.collections:
            raise SwordError(404, None, "no such collection")
        if self.listing == "none":
            raise SwordError(405, "MethodNotAllowed", "this server does not list collections")
        rows: list[tuple[float, str, bytes]] = []
        coldir = self.root / collection
        for cid in self.store.container_ids(collection):
            meta_path = coldir / cid / "meta.json"
            try:
                st = meta_path.stat()
            except (FileNotFoundError, NotADirectoryError):
                continue
            key = (st.st_ino, st.st_mtime_ns)
            cached = self._feed_cache.get(cid)
            if cached is None or cached[0] != key:
                meta = SwordStore.read_meta(coldir / cid)
                if meta is None:
                    continue
                body = None if meta["state"] == "deleted" else self._feed_entry(cid, meta)
                cached = (key, float(meta.get("created_ts", 0.0)), body)
                self._feed_cache[cid] = cached
            if cached[2] is not None:
                rows.append((cached[1], cid, cached[2]))
        rows.sort()
        stamp, _ = _now()
        col = self.col_iri(collection)
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<feed xmlns="{ATOM}" xmlns:sword="{SWORD}" xmlns:dcterms="{DCTERMS}">'
            f"<id>{_x(col)}</id><title>{_x(collection)}</title><updated>{stamp}</updated>"
            f'<link rel="self" href={_qa(col)}/>'
        ).encode()
        return head + b"".join(r[2] for r in rows) + b"</feed>"

    def statement(self, cdir: Path, meta: dict[str, Any]) -> bytes:
        cid = cdir.name
        st = self.statement_iri(cid)
        state = meta["state"]
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<feed xmlns="{ATOM}" xmlns:sword="{SWORD}">',
            f"<id>{_x(st)}</id><title>Statement of {_x(self._title(meta))}</title>",
            f"<updated>{meta.get('updated', meta['created'])}</updated>",
            "<author><name>local-sword</name></author>",
            f'<link rel="self" href={_qa(st)}/>',
            f'<category scheme="{SWORD}state" term="{STATE_BASE}{state}" label="State">'
            f"The item is {state}</category>",
            f'<sword:state href="{STATE_BASE}{state}">'
            f"<sword:stateDescription>The item is {state}</sword:stateDescription></sword:state>",
        ]
        for f in meta["files"]:
            common = (
                f"<title>{_x(f['name'])}</title><updated>{f['deposited']}</updated>"
                f"<sword:depositedOn>{f['deposited']}</sword:depositedOn>"
                f"<sword:depositedBy>{_x(self.user)}</sword:depositedBy>"
                f"<sword:packaging>{BINARY}</sword:packaging>"
            )
            if self.per_file_iris:
                iri = self.file_iri(cid, f["id"])
                out.append(
                    f"<entry><id>{_x(iri)}</id>{common}"
                    f'<summary type="text">{_x(f["name"])}</summary>'
                    f"<content type={_qa(f['content_type'])} src={_qa(iri)}/>"
                    f'<category scheme="{SWORD}" term="{SWORD}originalDeposit"'
                    ' label="Original Deposit"/>'
                    f"<sword:originalDeposit href={_qa(iri)}/></entry>"
                )
            else:
                # no addressable per-file IRIs: the files exist only inside the EM-IRI zip
                out.append(f"<entry><id>urn:uuid:{f['id']}</id>{common}</entry>")
        out.append("</feed>")
        return "".join(out).encode("utf-8")

    def zip_of(self, cdir: Path, meta: dict[str, Any]) -> BinaryIO:
        tmp = cast(BinaryIO, tempfile.TemporaryFile())  # noqa: SIM115 - reply() closes it
        used: set[str] = set()
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for f in meta["files"]:
                arc = f.get("disk_name") or _safe_disk_name(f["name"])
                stem, n = arc, 1
                while arc in used:
                    n += 1
                    arc = f"{n}-{stem}"
                used.add(arc)
                zf.write(cdir / "files" / f["id"], arcname=arc)
        return tmp


# -- request handling -----------------------------------------------------------------------------
class _SwordHandler(Handler):
    server: _SwordHTTPServer
    _body_started = False
    _body_done = False

    @property
    def app(self) -> SwordServer:
        return self.server.app

    def route(self, method: str) -> None:
        self._body_started = False
        self._body_done = False
        try:
            self._route("GET" if method == "HEAD" else method)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except SwordError as exc:
            self._send_error(exc)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self._send_error(SwordError(500, "ErrorBadRequest", f"server error: {exc!r}"))

    # -- body ------------------------------------------------------------------------------------
    def body_chunks(self) -> Iterator[bytes]:
        """The request body in chunks, enforcing maxUploadSize (413) while streaming."""
        limit = self.app.max_upload_bytes
        self._body_started = True
        total = 0
        it = iter(self.iter_body())
        for chunk in it:
            total += len(chunk)
            if limit is not None and total > limit:
                for _ in it:
                    pass
                self._body_done = True
                raise SwordError(
                    413, "MaxUploadSizeExceeded", f"the body exceeds {self.app.max_upload_kb} kB"
                )
            yield chunk
        self._body_done = True

    def read_small_body(self) -> bytes:
        parts, size = [], 0
        for chunk in self.body_chunks():
            size += len(chunk)
            if size > _MAX_ENTRY_BYTES:
                raise SwordError(413, "MaxUploadSizeExceeded", "Atom entry too large")
            parts.append(chunk)
        return b"".join(parts)

    def check_declared_size(self) -> None:
        limit = self.app.max_upload_bytes
        length = self.headers.get("Content-Length")
        if limit is not None and length and length.strip().isdigit() and int(length) > limit:
            raise SwordError(
                413, "MaxUploadSizeExceeded", f"the body exceeds {self.app.max_upload_kb} kB"
            )

    def has_body(self) -> bool:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return True
        return int(self.headers.get("Content-Length") or 0) > 0

    # -- answers ---------------------------------------------------------------------------------
    def _send_error(self, exc: SwordError) -> None:
        headers = dict(exc.headers)
        if not self._body_done:
            if self._body_started:
                self.close_connection = True
                headers["Connection"] = "close"
            else:
                try:
                    self.discard_body()
                except (ValueError, OSError):
                    self.close_connection = True
                    headers["Connection"] = "close"
        if exc.name is None:
            body = f"{exc.status} {exc.summary}\n".encode()
            self.reply(exc.status, body, "text/plain; charset=utf-8", headers)
        else:
            self.reply(
                exc.status, error_document(exc.name, exc.summary), "application/xml", headers
            )

    def _receipt(self, status: int, cdir: Path, meta: dict[str, Any], location: str = "") -> None:
        headers = {"Location": location} if location else {}
        self.reply(status, self.app.receipt(cdir, meta), ENTRY_CT, headers)

    # -- request checks --------------------------------------------------------------------------
    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(":")
        ok_user = hmac.compare_digest(user.encode(), self.app.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), self.app.password.encode())
        return ok_user and ok_pass

    def _in_progress(self) -> bool | None:
        value = self.headers.get("In-Progress")
        if value is None:
            return None
        return value.strip().lower() == "true"

    def _is_entry(self) -> bool:
        ctype = self.headers.get("Content-Type", "")
        return ctype.split(";")[0].strip().lower() == "application/atom+xml"

    def _expected_md5(self) -> str | None:
        value = self.headers.get("Content-MD5")
        return parse_content_md5(value) if value else None

    def _check_packaging(self) -> None:
        packaging = self.headers.get("Packaging")
        if packaging and packaging.strip() != BINARY:
            raise SwordError(415, "ErrorContent", f"unsupported packaging {packaging!r}")
        ctype = self.headers.get("Content-Type", "").lower()
        if ctype.startswith("multipart/"):
            raise SwordError(415, "ErrorContent", "multipart deposit is not supported here")

    def _upload_args(self) -> tuple[str, str, str | None]:
        self._check_packaging()
        self.check_declared_size()
        expected = self._expected_md5()
        header = self.headers.get("Content-Disposition")
        name = reference_name(header) if self.app.reference else parse_filename(header)
        ctype = self.headers.get("Content-Type") or "application/octet-stream"
        return name, ctype.strip(), expected

    def _entry(self) -> tuple[bytes, dict[str, list[str]]]:
        if not self._is_entry():
            raise SwordError(415, "ErrorContent", "expected application/atom+xml;type=entry")
        self.check_declared_size()
        body = self.read_small_body()
        return body, parse_entry(body)

    # -- routing ---------------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        if not self._authorised():
            raise SwordError(
                401, None, "authentication required", {"WWW-Authenticate": 'Basic realm="SWORD"'}
            )
        obo = self.headers.get("On-Behalf-Of")
        if obo and not self.app.mediation:
            raise SwordError(412, "MediationNotAllowed", "mediated deposit is not allowed")
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) >= 2 and not all(_SAFE_ID.match(p) for p in parts[1:]):
            raise SwordError(404, None, "not found")
        match parts:
            case ["sd"]:
                self._only(method, "GET")
                self.reply(200, self.app.service_document(), "application/atomsvc+xml")
            case ["col", name]:
                self._collection(method, name, obo)
            case ["edit", cid]:
                self._edit(method, cid)
            case ["em", cid] if cid.endswith(".atom"):
                # the typed edit-media link of the receipt: an Atom feed of the files
                self._only(method, "GET")
                cdir, meta = self.app.load(cid.removesuffix(".atom"))
                self.reply(200, self.app.statement(cdir, meta), FEED_CT)
            case ["em", cid]:
                self._em(method, cid)
            case ["file", cid, fid]:
                self._file(method, cid, fid)
            case ["statement", cid]:
                self._only(method, "GET")
                cdir, meta = self.app.load(cid)
                self.reply(200, self.app.statement(cdir, meta), FEED_CT)
            case _:
                raise SwordError(404, None, "not found")

    @staticmethod
    def _only(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise SwordError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _collection(self, method: str, name: str, obo: str | None) -> None:
        if name not in self.app.collections:
            raise SwordError(404, None, "no such collection")
        self._only(method, "GET", "POST")
        if method == "GET":
            self.reply(200, self.app.collection_feed(name), FEED_CT)
            return
        slug_header = self.headers.get("Slug")
        slug = (unquote(slug_header).strip() or None) if slug_header else None
        in_progress = self._in_progress() or False
        if self._is_entry():
            entry, dc = self._entry()
            cdir, meta = self.app.create(name, slug, obo, in_progress, entry, dc)
        else:
            fname, ctype, expected = self._upload_args()
            upload = (self.body_chunks(), fname, ctype, expected)
            cdir, meta = self.app.create(name, slug, obo, in_progress, None, {}, upload)
        self._receipt(201, cdir, meta, self.app.edit_iri(cdir.name))

    def _edit(self, method: str, cid: str) -> None:
        self._only(method, "GET", "PUT", "POST", "DELETE")
        if method == "GET":
            cdir, meta = self.app.load(cid)
            self._receipt(200, cdir, meta)
        elif method == "DELETE":
            self.app.delete_container(cid)
            self.reply(204)
        elif method == "PUT":
            self.app.check_writable(self.app.load(cid)[1])
            entry, dc = self._entry()
            cdir, meta = self.app.set_metadata(cid, entry, dc, self._in_progress() is False)
            self._receipt(200, cdir, meta)
        else:  # POST to the SE-IRI
            in_progress = bool(self._in_progress())
            if self.has_body():
                self.app.check_writable(self.app.load(cid)[1])
                entry, dc = self._entry()
                cdir, meta = self.app.set_metadata(cid, entry, dc, not in_progress)
            else:
                cdir, meta = self.app.complete(cid, in_progress)
            self._receipt(200, cdir, meta)

    def _em(self, method: str, cid: str) -> None:
        self._only(method, "GET", "PUT", "POST", "DELETE")
        if method == "GET":
            cdir, meta = self.app.load(cid)
            stream = self.app.zip_of(cdir, meta)
            self.reply(200, stream, "application/zip")
        elif method == "DELETE":
            self.app.delete_files(cid)
            self.reply(204)
        else:
            self.app.check_writable(self.app.load(cid)[1])
            name, ctype, expected = self._upload_args()
            cdir, meta, rec = self.app.add_file(
                cid, self.body_chunks(), name, ctype, expected, replace_all=method == "PUT"
            )
            if method == "PUT":
                self.reply(204)
            else:
                self._receipt(201, cdir, meta, self.app.file_iri(cid, rec["id"]))

    def _file(self, method: str, cid: str, fid: str) -> None:
        self._only(method, "GET", "DELETE")
        cdir, meta = self.app.load(cid)
        rec = next((f for f in meta["files"] if f["id"] == fid), None)
        if rec is None:
            raise SwordError(404, None, "no such file")
        if method == "GET":
            path = cdir / "files" / fid
            if not path.is_file():
                raise SwordError(404, None, "no such file")
            headers = {"Content-Disposition": _content_disposition(rec["name"])}
            self.reply(200, path, rec["content_type"], headers)
            return
        if not self.app.per_file_iris or self.app.reference:
            raise SwordError(405, "MethodNotAllowed", "files cannot be deleted one by one")
        self.app.delete_files(cid, fid)
        self.reply(204)


# -- command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local SWORD v2 server (foreground).")
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="sword")
    parser.add_argument("--collections", default="default,theses,articles")
    parser.add_argument("--max-upload-kb", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--archived-readonly", action="store_true")
    parser.add_argument("--no-mediation", action="store_true")
    parser.add_argument("--ignore-slug", action="store_true")
    parser.add_argument("--complete-state", choices=("archived", "inworkflow"), default="archived")
    parser.add_argument("--no-per-file-iris", action="store_true")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = SwordServer(
        args.root,
        port=args.port,
        user=args.user,
        password=os.environ.get("SWORD_PASSWORD", "secret"),
        collections=[c for c in args.collections.split(",") if c],
        max_upload_kb=args.max_upload_kb,
        mediation=not args.no_mediation,
        archived_readonly=args.archived_readonly,
        honour_slug=not args.ignore_slug,
        complete_state=args.complete_state,
        per_file_iris=not args.no_per_file_iris,
        latency=args.latency,
        faults=FaultPolicy(rate=args.fault_rate) if args.fault_rate else None,
    )
    return serve_until_signal(server.start, server.stop, lambda: server.sd_iri)


if __name__ == "__main__":
    sys.exit(main())
