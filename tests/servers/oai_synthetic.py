"""A DSpace 7-like OAI-PMH provider over N synthetic records made on demand (the benchmark).

``OaiProvider`` renders records from a ``SourceModel`` held in memory; 100,000 items with their
files would take gigabytes. Here record ``i`` is computed from ``i`` alone whenever a page
needs it (``SyntheticRecords`` is a lazy sequence), so the server stays small whatever N is.
Every record is an ordinary DSpace item (``oai_documents``: dim / qdc / oai_dc, METS with
MD5s, ORE with bundles; ORIGINAL files plus their TEXT, THUMBNAIL and LICENSE derivatives),
the bitstreams are served, GetRecord finds a record by its index, not by a scan.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import overload

from .fixtures import (
    _FILE_NAMES,
    _MIMES,
    _TITLE_PARTS,
    DSPACE_COLLECTIONS,
    DSPACE_PREFIX,
    FixtureFile,
    FixtureItem,
    SourceModel,
    descriptive_fields,
)
from .oai_documents import ID_PREFIX, Bitstream, OaiRecord, bitstreams, item_sets, set_spec
from .oai_provider import OaiProvider

EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
FIRST_NUMBER = 10  # handles 123456789/10, /11, ... (as SourceModel.generate numbers them)


class SyntheticRecords(Sequence[OaiRecord]):
    """``n`` DSpace items, record ``i`` made from ``i`` alone: one a minute from 2023-01-01,
    ``files_per_item`` ORIGINAL files of about ``file_size`` bytes each."""

    def __init__(self, n: int, *, files_per_item: int = 2, file_size: int = 2048) -> None:
        self.n = n
        self.files_per_item = files_per_item
        self.file_size = file_size

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> OaiRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[OaiRecord]: ...

    def __getitem__(self, index: int | slice) -> OaiRecord | list[OaiRecord]:
        if isinstance(index, slice):
            return [self.record(i) for i in range(*index.indices(self.n))]
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.record(index)

    def record(self, i: int) -> OaiRecord:
        item = self.item(i)
        return OaiRecord(ID_PREFIX + item.key, item.lastmod, item_sets(item), False, item)

    def index_of(self, identifier: str) -> int | None:
        """The index of ``oai:dspace.test:123456789/N``, None if no such record."""
        prefix = f"{ID_PREFIX}{DSPACE_PREFIX}/"
        number = identifier.removeprefix(prefix)
        if number == identifier or not number.isdigit():
            return None
        i = int(number) - FIRST_NUMBER
        return i if 0 <= i < self.n else None

    def item(self, i: int) -> FixtureItem:
        rng = random.Random(i)
        n = FIRST_NUMBER + i
        lastmod = EPOCH + timedelta(minutes=i)
        files = []
        for k in range(self.files_per_item):
            mime = _MIMES[(n + k) % len(_MIMES)]
            name = _FILE_NAMES[mime][(n + k) % len(_FILE_NAMES[mime])]
            if k:
                stem, _, ext = name.rpartition(".")
                name = f"{stem} ({k + 1}).{ext}"
            fid = str(uuid.UUID(int=(n << 16) | k, version=4))
            size = max(1, int(self.file_size * (0.5 + rng.random())))
            files.append(FixtureFile(fid, name, _content(rng, mime, size), mime, lastmod))
        return FixtureItem(
            key=f"{DSPACE_PREFIX}/{n}",
            style="dspace",
            title=f"{_TITLE_PARTS[i % len(_TITLE_PARTS)]} ({n})",
            **descriptive_fields(rng, i, n),
            collection=DSPACE_COLLECTIONS[i % 2],
            files=files,
            lastmod=lastmod,
        )

    def bitstream(self, bitstream_uuid: str) -> Bitstream | None:
        """An ORIGINAL bitstream by its uuid (which carries the item's number and the file's
        position). Derivatives' uuids are hashes and are not served: a mirror never asks."""
        try:
            value = uuid.UUID(bitstream_uuid).int
        except ValueError:
            return None
        number, k = (value >> 16) & ((1 << 40) - 1), value & 0xFFFF  # under the version bits
        i = number - FIRST_NUMBER
        if not (0 <= i < self.n and k < self.files_per_item):
            return None
        return next((b for b in bitstreams(self.item(i)) if b.uuid == bitstream_uuid), None)


def _content(rng: random.Random, mime: str, size: int) -> bytes:
    """Bytes of roughly the announced type, cheap to make (the provider makes them for every
    record it lists, to write their MD5 and size)."""
    if mime == "application/pdf":
        return b"%PDF-1.4\n" + rng.randbytes(max(0, size - 16)) + b"\n%%EOF\n"
    if mime == "image/png":
        return b"\x89PNG\r\n\x1a\n" + rng.randbytes(max(0, size - 8))
    if mime.startswith("text/"):
        return rng.randbytes(size // 2).hex().encode() + b"\n"
    return rng.randbytes(size)


class SyntheticOaiProvider(OaiProvider):
    """``OaiProvider`` serving ``SyntheticRecords`` (pages of ``page_size``, default 100)."""

    def __init__(
        self,
        n: int,
        *,
        files_per_item: int = 2,
        file_size: int = 2048,
        page_size: int = 100,
        latency: float = 0.0,
        formats: Iterable[str] = ("oai_dc", "qdc", "dim", "mets", "ore"),
    ) -> None:
        super().__init__(SourceModel(), page_size=page_size, latency=latency, formats=formats)
        self.synthetic = SyntheticRecords(n, files_per_item=files_per_item, file_size=file_size)
        self.model.created_at = EPOCH

    def records(self) -> Sequence[OaiRecord]:  # type: ignore[override]
        return self.synthetic

    def find_record(self, identifier: str) -> OaiRecord | None:
        i = self.synthetic.index_of(identifier)
        return None if i is None else self.synthetic.record(i)

    def bitstream(self, uuid: str) -> Bitstream | None:
        return self.synthetic.bitstream(uuid)

    def list_sets(self, request: str) -> bytes:
        sets = [(set_spec(f"{DSPACE_PREFIX}/1", "com"), "Test Community")]
        sets += [(set_spec(c), f"Collection {c}") for c in DSPACE_COLLECTIONS]
        parts = [f"<set><setSpec>{s}</setSpec><setName>{n}</setName></set>" for s, n in sets]
        return self.response(f"<ListSets>{''.join(parts)}</ListSets>", request)
