"""DSpace Simple Archive Format as a source: a ``dspace export`` folder or ``.zip``.

Each item folder becomes a metadata entry (``saf:<key>/metadata``, its fingerprint the MD5 of
the item's metadata files) that ``describes`` the item's files (``saf:<key>/files/<name>``,
with MD5 and length), so the linker makes one item per folder, as for any other source. The
key is the item's handle (its ``handle`` file), else the folder name: an export taken again
elsewhere gives the same locs, and an incremental run compares a fresh listing by fingerprints.
Anything that would read outside the archive, a listed file that is missing, and malformed or
hostile XML make that item fail (an error of the listing); the other items are read.
"""

from __future__ import annotations

import hashlib
import itertools
import mimetypes
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote
from xml.etree.ElementTree import Element

from ..contracts import Changes, Fetched, Listing
from ..crosswalk import parse_metadata_root
from ..errors import IntegrityError, SyncError
from ..filenames import safe_filename
from ..model import Entry, Item, Link
from ..saf import contents as saf_contents
from ..saf import dublin_core, handles
from .saf_archive import Archive, ArchiveError, open_archive
from .saf_hashing import Hashed, HashMemo, copy_unchanged, hash_stream, ordered_map

HASH_THREADS = min(4, os.cpu_count() or 1)  # item folders read and hashed at once by a listing

SCHEME = "saf:"
METADATA = "metadata"
FILES = "files"
PROFILE = "saf:dublin_core"  # marks the record as metadata, also when it describes no file


def metadata_loc(key: str) -> str:
    return f"{SCHEME}{key}/{METADATA}"


def file_loc(key: str, name: str) -> str:
    return f"{SCHEME}{key}/{FILES}/{quote(name, safe='')}"


@dataclass(frozen=True)
class ParsedLoc:
    key: str
    name: str | None  # None: the metadata entry


def parse_loc(loc: str) -> ParsedLoc | None:
    if not loc.startswith(SCHEME):
        return None
    rest = loc[len(SCHEME) :]
    if rest.endswith("/" + METADATA):
        return ParsedLoc(rest[: -len(METADATA) - 1], None)
    key, sep, name = rest.rpartition(f"/{FILES}/")
    if not sep or not key or not name:
        return None
    return ParsedLoc(key, unquote(name))


def _digest(fh: IO[bytes], copy_to: IO[bytes] | None = None) -> tuple[str, int]:
    """MD5 and size of a stream, read in blocks (optionally copied on the way)."""
    digest, size = hashlib.md5(), 0
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
        if copy_to is not None:
            copy_to.write(block)
    return digest.hexdigest(), size


class SafSource:
    """Items of a SAF export (see the module docstring)."""

    type_name = "saf"
    remote = False  # a folder or zip on this machine

    def __init__(self, path: Path, *, bundles: Sequence[str] = ("ORIGINAL",)) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.bundles = tuple(b.upper() for b in bundles)
        self._archive: Archive | None = None
        self._folders: dict[str, str] | None = None  # key -> folder
        self._tmp: Path | None = None
        self._numbers = itertools.count()  # temporary file names (next() is atomic)
        self._tmp_lock = threading.Lock()  # workers fetch at once: one temporary folder
        self._hashed = HashMemo()  # files the listing hashed, copied unhashed by the fetch

    # -- the archive -------------------------------------------------------------------------
    @property
    def archive(self) -> Archive:
        if self._archive is None:
            self._archive = open_archive(self.path)
        return self._archive

    def _read(self, folder: str, name: str) -> bytes:
        with self.archive.open_member(folder, name) as fh:
            return fh.read()

    def _key(self, folder: str) -> str:
        if self.archive.exists(folder, "handle"):
            text = self._read(folder, "handle").decode("utf-8", errors="replace").strip()
            if handles.is_handle(text):
                return text
        return folder.rsplit("/", 1)[-1]

    def _index(self) -> dict[str, str]:
        if self._folders is None:
            self._folders = {}
            for folder in self.archive.folders():
                try:
                    self._folders.setdefault(self._key(folder), folder)
                except SyncError:
                    continue  # a hostile handle file: the listing reports it; nothing to fetch
        return self._folders

    def _metadata_files(self, folder: str) -> list[str]:
        names = [n for n in self.archive.members(folder) if dublin_core.schema_of_filename(n)]
        names.sort(key=lambda n: (n != "dublin_core.xml", n))
        return names

    def _metadata_roots(self, folder: str, loc: str) -> tuple[list[Element], str]:
        """The parsed metadata files of an item and the MD5 over them (its fingerprint)."""
        digest = hashlib.md5()
        roots = []
        for name in self._metadata_files(folder):
            data = self._read(folder, name)
            digest.update(name.encode("utf-8") + b"\0" + hashlib.md5(data).digest())
            roots.append(parse_metadata_root(data, url=f"{loc} ({folder}/{name})"))
        return roots, digest.hexdigest()

    # -- listing -----------------------------------------------------------------------------
    def listing(self) -> Listing:
        return Listing(lambda listing: self._entries(listing.errors))

    def _entries(self, errors: list[SyncError]) -> Iterator[Entry]:
        try:
            folders = self.archive.folders()
        except OSError as exc:
            errors.append(ArchiveError(f"cannot read the archive ({exc})", resource=self.location))
            return
        seen: dict[str, str] = {}

        def keyed() -> Iterator[tuple[str, str]]:
            for folder in folders:
                try:
                    key = self._key(folder)
                    if key in seen:
                        raise ArchiveError(
                            f"handle {key} is also the handle of {seen[key]}", resource=folder
                        )
                except (SyncError, OSError) as exc:
                    errors.append(_item_error(exc, folder))
                    continue
                seen[key] = folder
                yield folder, key

        # item folders are read and hashed a few at a time in threads, given out in order
        for (folder, _key), future in ordered_map(
            lambda pair: self._item_entries(*pair), keyed(), workers=HASH_THREADS
        ):
            try:
                entries = future.result()
            except (SyncError, OSError) as exc:
                errors.append(_item_error(exc, folder))
                continue
            yield from entries
        errors.extend(self.archive.problems)
        self._folders = {key: folder for key, folder in seen.items()}

    def _item_entries(self, folder: str, key: str) -> list[Entry]:
        """The entries of one item folder, all checked before any is given out."""
        record = metadata_loc(key)
        _roots, fingerprint = self._metadata_roots(folder, record)
        lines: list[saf_contents.ContentsLine] = []
        if self.archive.exists(folder, "contents"):
            text = self._read(folder, "contents").decode("utf-8")
            lines = saf_contents.parse(text, resource=f"{folder}/contents")
        collection: tuple[Link, ...] = ()
        if self.archive.exists(folder, "collections"):
            owning = self._read(folder, "collections").decode("utf-8").split()[:1]
            collection = tuple(Link(rel="collection", href=h) for h in owning)
        files = []
        for line in lines:
            if line.effective_bundle.upper() not in self.bundles:
                continue
            if not self.archive.exists(folder, line.name):
                raise ArchiveError(
                    f"contents lists {line.name!r}, which is missing",
                    resource=f"{folder}/{line.name}",
                )
            with self.archive.open_member(folder, line.name) as fh:
                md5, size, stamp = hash_stream(fh)
            if stamp is not None:
                self._hashed.remember(folder, line.name, Hashed(stamp, md5, size))
            files.append(
                Entry(
                    loc=file_loc(key, line.name),
                    hashes=(("md5", md5),),
                    length=size,
                    type=mimetypes.guess_type(line.name)[0],
                    links=(Link(rel="describedby", href=record),),
                )
            )
        describes = tuple(Link(rel="describes", href=f.loc) for f in files)
        meta = Entry(
            loc=record,
            hashes=(("md5", fingerprint),),
            type="application/xml",
            links=(Link(rel="profile", href=PROFILE), *describes, *collection),
        )
        return [meta, *files]

    def changes(
        self, since: datetime | None, memo: Mapping[str, Any] | None = None
    ) -> Changes | None:
        return None  # no change feed: incremental compares a fresh listing

    # -- fetch -------------------------------------------------------------------------------
    def _tmpdir(self) -> Path:
        with self._tmp_lock:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="resync-saf-"))
            return self._tmp

    def fetch(self, entry: Entry) -> Fetched:
        parsed = parse_loc(entry.loc)
        folder = self._index().get(parsed.key) if parsed else None
        if parsed is None or folder is None:
            raise ArchiveError("no such item in the archive", resource=entry.loc)
        if parsed.name is None:
            return self._fetch_metadata(entry, folder)
        return self._fetch_file(entry, folder, parsed.name)

    def _temp_file(self, suffix: str) -> Path:
        """A new name in this source's private temporary folder (numbered: cheaper than
        mkstemp's random names; the folder is ours alone, so the name is free)."""
        return self._tmpdir() / f"{next(self._numbers)}{suffix}"

    def _fetch_metadata(self, entry: Entry, folder: str) -> Fetched:
        roots, fingerprint = self._metadata_roots(folder, entry.loc)
        expected = entry.hash("md5")
        if expected and expected != fingerprint:
            raise IntegrityError(
                "the item's metadata files changed since the archive was listed",
                resource=entry.loc,
                hint="run again: the next listing sees the new version",
            )
        data = dublin_core.combine(roots)
        # a few KiB read back at once by the depositor: held in memory, no temporary file
        return Fetched(
            entry=entry,
            path=Path(folder, "metadata.xml"),
            size=len(data),
            md5=hashlib.md5(data).hexdigest(),
            filename="metadata.xml",
            content_type="application/xml",
            data=data,
        )

    def _fetch_file(self, entry: Entry, folder: str, name: str) -> Fetched:
        path = self._temp_file(".bin")
        hashed = self._hashed.take(folder, name)
        if hashed is not None and entry.hash("md5") not in (None, hashed.md5):
            hashed = None  # listed by another pass: hash it again
        try:
            with self.archive.open_member(folder, name) as src:
                if hashed is not None and copy_unchanged(src, path, hashed):
                    md5, size = hashed.md5, hashed.size
                else:
                    if hashed is not None:
                        src.seek(0)  # it changed, or the copy broke off: copy and hash it
                    with path.open("wb") as dst:
                        md5, size = _digest(src, dst)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        expected = entry.hash("md5")
        if (expected and expected != md5) or (entry.length is not None and entry.length != size):
            path.unlink(missing_ok=True)
            raise IntegrityError(
                f"{name!r} changed since the archive was listed (MD5 {md5}, {size} bytes)",
                resource=entry.loc,
                hint="run again: the next listing sees the new version",
            )
        return Fetched(
            entry=entry,
            path=path,
            size=size,
            md5=md5,
            filename=safe_filename(name),
            content_type=entry.type or "application/octet-stream",
            discard_fn=lambda: path.unlink(missing_ok=True),
            temporary=True,
        )

    # -- identity ----------------------------------------------------------------------------
    def identifiers(self, item: Item) -> list[str]:
        """The handle (as a URL) and the folder name of an item."""
        record = item.primary.loc if item.primary else item.key
        parsed = parse_loc(record)
        if parsed is None:
            return []
        ids = []
        if handles.is_handle(parsed.key):
            ids.append(handles.handle_url(parsed.key))
        folder = self._index().get(parsed.key)
        if folder is not None:
            ids.append(folder.rsplit("/", 1)[-1])
        return ids

    def resolve_deleted(self, loc: str, known: Callable[[str], list[str]]) -> str | None:
        return None

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _item_error(exc: SyncError | OSError, folder: str) -> SyncError:
    """An item folder that cannot be listed: its own error, or why it cannot be read."""
    if isinstance(exc, SyncError):
        return exc
    return ArchiveError(f"cannot read the item ({exc})", resource=folder)
