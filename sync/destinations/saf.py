"""DSpace Simple Archive Format as a destination: each run writes a batch for ``dspace import``.

``OUT_DIR/run-NNNN/`` holds ``add/`` (one item folder per created item), ``replace/`` with
``replace.map`` (updated items), ``delete.map`` (deleted items) and ``IMPORT.sh``. An item is
built in ``OUT_DIR/.staging/<item>/`` (with ``<item>.json`` beside it saying what it is) and
renamed into its batch when complete, so the import script never sees half an item, and a
replay finds what a killed run had staged. Updates and deletes name the item's handle: from the
``add.map`` that ``dspace import`` wrote for the batch that added it (or the source's handle
with ``keep_handles``); while that batch is not imported the change waits (``DeferredError``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts import (
    Capabilities,
    Container,
    DeferredError,
    Fetched,
    HeldFile,
    Metadata,
)
from ..crosswalk import DCRecord
from ..errors import ConfigError, DepositError
from ..filenames import safe_filename
from ..saf import contents as saf_contents
from ..saf import dublin_core, handles
from ..saf.script import Step, import_script
from .saf_batches import ADD, REPLACE, Batches, batch_name, write_atomic
from .saf_files import fsync_path, place, sync_folder

STAGING = ".staging"
RESERVED = frozenset({"contents", "collections", "handle", "relationships", "dublin_core.xml"})


def item_name(key: str) -> str:
    """The stable folder name of an item: the same key always gives the same name."""
    return "item_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


@dataclass
class StagedFile:
    name: str
    md5: str
    size: int


@dataclass
class Staged:
    """An item being built (``<item>.json`` beside its staging folder): a header line saying
    what it is, then one line per file placed. Placing a file appends its line (no rewrite of
    the note, no new file); a line cut short by a kill is not a file held."""

    kind: str  # add | replace
    collection: str
    handle: str | None = None  # replace: the handle DSpace knows; add: a kept source handle
    files: list[StagedFile] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: bytes) -> tuple[Staged, bool]:
        """The note and whether it is whole (False: a line was cut short by a kill)."""
        lines = data.split(b"\n")
        raw = json.loads(lines[0])
        files = [StagedFile(**f) for f in raw.pop("files", [])]  # a note of 0.x: one object
        staged = cls(files=files, **raw)
        whole = len(lines) > 1 and lines[-1] == b""
        for line in lines[1:-1]:
            try:
                staged.files.append(StagedFile(**json.loads(line)))
            except (ValueError, TypeError):
                return staged, False
        return staged, whole

    def to_json(self) -> bytes:
        head = {"kind": self.kind, "collection": self.collection, "handle": self.handle}
        return b"".join([_line(head), *(file_line(f) for f in self.files)])


def file_line(f: StagedFile) -> bytes:
    return _line({"name": f.name, "md5": f.md5, "size": f.size})


def _line(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n"


class SafDestination:
    """Writes items as SAF batches under ``path`` (see the module docstring)."""

    type_name = "saf"

    def __init__(
        self,
        path: Path,
        *,
        collection: str | None = None,
        keep_handles: bool = False,
        zip: bool = False,
    ) -> None:
        self.root = Path(path)
        self.location = str(self.root)
        self.collection = collection
        self.keep_handles = keep_handles
        self.zip = zip
        self.batches = Batches(self.root)
        self._batch: str | None = None
        self._lock = threading.Lock()
        # the notes of the items this process is building, as last written: the disk is read
        # once (a replay), not at every file (one worker builds an item at a time)
        self._notes: dict[str, Staged] = {}

    # -- what it can do ----------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            single_file_delete=False,
            listing=True,
            checksums_in_listing=True,
            whole_item_updates=True,
        )

    def check(self, collections: Iterable[str]) -> None:
        """The output folder can be written; collections are handles."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the SAF output folder ({exc.strerror})",
                resource=self.location,
                hint="choose a folder this user can write",
            ) from None
        for col in [*collections, *([self.collection] if self.collection else [])]:
            if col and not handles.is_handle(col):
                raise ConfigError(
                    f"{col!r} is not a DSpace collection handle",
                    resource=self.location,
                    hint="give the collection as a handle, e.g. 123456789/2",
                )

    # -- runs --------------------------------------------------------------------------------
    def open_run(self, run_id: int) -> None:
        """A run begins; batches a killed run left without an import script get theirs."""
        self._batch = batch_name(run_id)
        for batch in self.batches.names():
            if batch != self._batch and not (self.batches.dir(batch) / "IMPORT.sh").exists():
                self._finish_batch(batch)

    def close_run(self) -> None:
        """Write the run's ``IMPORT.sh`` (and zips) if the run wrote anything."""
        batch = self._run_batch()
        if self.batches.dir(batch).is_dir():
            self._finish_batch(batch)
        self._remove_done_notes()
        self._batch = None

    def waiting(self) -> list[str]:
        return self.batches.waiting()

    def close(self) -> None:
        return None

    # -- items -------------------------------------------------------------------------------
    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        name = item_name(metadata.key)
        col = self._collection(collection, metadata.key)
        batch = self._run_batch()
        earlier = self.batches.last_add(name)
        if earlier is not None and earlier != batch:
            # a second add would make a duplicate in DSpace
            raise DepositError(
                f"the item is already in batch {earlier} ({name}) and not deleted since",
                resource=metadata.key,
                hint="sync with the state DB that wrote this folder, or remove the item there",
            )
        handle = self._source_handle(metadata) if self.keep_handles else None
        self._discard_staging(name)
        staging = self._staging(name)
        staging.mkdir(parents=True)
        self._write_metadata(staging, metadata)
        self._save(name, Staged(ADD, col, handle))
        return self._container(name, batch, col)

    def find(
        self, collection: str, metadata: Metadata, *, slug: str, owned: Callable[[str], bool]
    ) -> Container | None:
        name = item_name(metadata.key)
        if owned(name):
            return None
        staged = self._load(name)
        if staged is not None and staged.kind == ADD:
            return self._container(name, self._run_batch(), staged.collection)
        batch = self.batches.last_add(name)
        if batch is None:
            return None
        return self._container(name, batch, self._collection(collection, metadata.key))

    def add_file(self, container: Container, file: Fetched) -> str | None:
        name = container.id
        staged = self._staged(container)
        staging = self._staging(name)
        filename = self._file_name(file.filename, staged)
        # the note's line makes the file held: a file placed in part by a killed run is not
        # in the note, and is placed again (the same name) by the replay
        place(file, staging / filename)
        held = StagedFile(filename, file.md5, file.size)
        staged.files.append(held)
        with self._json(name).open("ab") as note:
            note.write(file_line(held))
        return filename

    def replace_metadata(self, container: Container, metadata: Metadata) -> None:
        self._staged(container, fresh=True)
        self._write_metadata(self._staging(container.id), metadata)

    def replace_files(self, container: Container, first: Fetched | None) -> str | None:
        staged = self._staged(container)
        for held in staged.files:
            (self._staging(container.id) / held.name).unlink(missing_ok=True)
        staged.files.clear()
        self._save(container.id, staged)
        return self.add_file(container, first) if first is not None else None

    def remove_file(self, container: Container, ref: str) -> None:
        staged = self._staged(container)
        staged.files = [f for f in staged.files if f.name != ref]
        (self._staging(container.id) / ref).unlink(missing_ok=True)
        self._save(container.id, staged)

    def complete(self, container: Container) -> str | None:
        """Move the staged item into the run's batch (one rename) and map it."""
        name = container.id
        staged = self._load(name)
        if staged is None:
            if self.batches.current_folder(name) is not None:
                return "batched"  # completed before (its answer was lost)
            raise DepositError("nothing staged to complete", resource=name)
        staging = self._staging(name)
        lines = [saf_contents.ContentsLine(f.name, bundle="ORIGINAL") for f in staged.files]
        # written in place: a kill before the rename below leaves the note, and the replay
        # writes them again
        (staging / "contents").write_bytes(saf_contents.render(lines).encode("utf-8"))
        (staging / "collections").write_bytes(f"{staged.collection}\n".encode())
        if staged.kind == ADD and staged.handle:
            (staging / "handle").write_bytes(f"{staged.handle}\n".encode())
        sync_folder(staging)  # the whole item on disk before it enters the batch
        batch = self._run_batch()
        target = self.batches.dir(batch) / staged.kind / name
        with self._lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            self._notes.pop(name, None)
            if staged.kind == REPLACE and staged.handle:
                self.batches.set_map_line(batch, "replace.map", name, staged.handle)
        # the note stays until the run closes (a note without its folder is read as done):
        # deleting files while creating others makes ext4 skip the freed inodes one by one
        # on every create (without a journal, for five minutes), a cost that grows with the run
        return "batched"

    def delete(self, container: Container) -> None:
        name = container.id
        if self.batches.last_add(name) is None:  # never added, or deleted already
            self._discard_staging(name)
            return
        handle = self._handle(name)
        self._discard_staging(name)
        with self._lock:
            self.batches.set_map_line(self._run_batch(), "delete.map", name, handle)

    def contents(self, container: Container) -> list[HeldFile]:
        staged = self._load(container.id)
        if staged is not None:  # a file lost from staging (a power cut) is not held
            staging = self._staging(container.id)
            return [
                HeldFile(f.name, f.name, f.md5, f.size)
                for f in staged.files
                if _size(staging / f.name) == f.size
            ]
        folder = self.batches.current_folder(container.id)
        if folder is None:
            return []
        text = (folder / "contents").read_text(encoding="utf-8")
        held = []
        for line in saf_contents.parse(text, resource=str(folder)):
            path = folder / line.name
            if path.is_file():  # a file removed from the batch by hand is not held
                held.append(HeldFile(line.name, line.name, _md5(path), path.stat().st_size))
        return held

    def file_md5(self, container: Container, held: HeldFile) -> str:
        staged = self._load(container.id)
        folder = (
            self._staging(container.id) if staged else self.batches.current_folder(container.id)
        )
        if folder is None or not held.name:
            raise DepositError("the item holds no such file", resource=container.id)
        return _md5(folder / held.name)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _container(name: str, batch: str, collection: str) -> Container:
        """What the state keeps: where the item was added (informative: the folder is read
        from disk each time, so a replay that completes it in a later batch is fine)."""
        return Container(
            name, {"batch": batch, "folder": f"{batch}/{ADD}/{name}", "collection": collection}
        )

    def _run_batch(self) -> str:
        if self._batch is None:
            raise DepositError("no run is open (open_run first)", resource=self.location)
        return self._batch

    def _collection(self, collection: str, key: str) -> str:
        col = collection or self.collection
        if not col:
            raise ConfigError(
                "no DSpace collection for the item",
                resource=key,
                hint="give the SAF destination a collection handle (--saf-collection)",
            )
        return col

    @staticmethod
    def _source_handle(metadata: Metadata) -> str | None:
        for identifier in metadata.identifiers:
            handle = handles.handle_from_identifier(identifier)
            if handle:
                return handle
        return None

    def _handle(self, name: str) -> str:
        """The handle DSpace knows the live item by; ``DeferredError`` while the batch that
        added it is not imported."""
        batch = self.batches.last_add(name)
        if batch is None:
            raise DepositError("the item is in no batch of the SAF output folder", resource=name)
        kept = self.batches.dir(batch) / ADD / name / "handle"
        if kept.is_file():
            return kept.read_text(encoding="utf-8").strip()
        mapping = self.batches.read_map(batch, "add.map")
        if mapping is None:
            raise DeferredError(
                f"waiting for batch {batch} to be imported (no {batch}/add.map yet)",
                resource=name,
                hint=f"run {self.root / batch / 'IMPORT.sh'}; the next run writes this change",
            )
        handle = mapping.get(name)
        if handle is None:
            raise DepositError(
                f"{batch}/add.map gives this item no handle: its import failed",
                resource=name,
                hint=f"import {batch} again (dspace import --resume)",
            )
        return handle

    def _staging(self, name: str) -> Path:
        return self.root / STAGING / name

    def _json(self, name: str) -> Path:
        return self.root / STAGING / f"{name}.json"

    def _load(self, name: str) -> Staged | None:
        staged = self._notes.get(name)
        if staged is not None:
            return staged
        try:
            data = self._json(name).read_bytes()
        except FileNotFoundError:
            return None
        if not self._staging(name).is_dir():  # the rename was done, the note not removed
            self._json(name).unlink(missing_ok=True)
            return None
        staged, whole = Staged.from_json(data)
        if not whole:  # cut short by a kill: the files it names in full are held
            self._save(name, staged)
        self._notes[name] = staged
        return staged

    def _remove_done_notes(self) -> None:
        """The notes of items that entered a batch (their staging folder is gone)."""
        try:
            with os.scandir(self.root / STAGING) as it:
                names = {entry.name for entry in it}
        except FileNotFoundError:
            return
        for name in names:
            item, dot, ext = name.rpartition(".")
            if dot and ext == "json" and item not in names:
                self._json(item).unlink(missing_ok=True)

    def _save(self, name: str, staged: Staged) -> None:
        write_atomic(self._json(name), staged.to_json(), durable=False)
        self._notes[name] = staged

    def _discard_staging(self, name: str) -> None:
        self._notes.pop(name, None)
        self._json(name).unlink(missing_ok=True)
        shutil.rmtree(self._staging(name), ignore_errors=True)

    def _staged(self, container: Container, *, fresh: bool = False) -> Staged:
        """The item being built; an update starts from the live item's folder (so a whole-item
        update that sends every file again rebuilds it exactly)."""
        name = container.id
        staged = self._load(name)
        if staged is not None and (staged.kind == ADD or not fresh):
            return staged  # a create being built, or an update under way (resumed)
        handle = self._handle(name)
        folder = self.batches.current_folder(name)
        col = container.data.get("collection") or self.collection or ""
        self._discard_staging(name)
        staging = self._staging(name)
        staging.mkdir(parents=True)
        if folder is not None:
            for meta in folder.iterdir():
                if dublin_core.schema_of_filename(meta.name):
                    shutil.copyfile(meta, staging / meta.name)
            if (folder / "collections").is_file():
                col = (folder / "collections").read_text(encoding="utf-8").split()[0]
        staged = Staged(REPLACE, col, handle)
        self._save(name, staged)
        return staged

    @staticmethod
    def _file_name(filename: str, staged: Staged) -> str:
        """Safe as for SWORD; not one of SAF's own file names; unique in the item."""
        name = safe_filename(filename)
        if name in RESERVED or dublin_core.schema_of_filename(name) or name.startswith("."):
            name = "file-" + name.lstrip(".")
        taken = {f.name for f in staged.files}
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        n = 2
        while name in taken:
            name = f"{stem}-{n}.{ext}" if dot else f"{stem}-{n}"
            n += 1
        return name

    @staticmethod
    def _write_metadata(folder: Path, metadata: Metadata) -> None:
        record = DCRecord({k: list(v) for k, v in metadata.dc.terms.items()})
        if not record.title and metadata.title:
            record.add("title", metadata.title)
        for identifier in metadata.identifiers:
            if identifier.startswith(("http://", "https://")):
                record.add("identifier", identifier)
        for old in folder.iterdir():
            if dublin_core.schema_of_filename(old.name):
                old.unlink()
        # written in place: a create writes its note after them, an update has its note say
        # it is a replacement (a killed one is rebuilt from the live item): a file cut short
        # by a kill never reaches a batch
        for filename, data in dublin_core.metadata_files(record).items():
            (folder / filename).write_bytes(data)

    def _finish_batch(self, batch: str) -> None:
        """Write ``IMPORT.sh`` (and the zips) of a batch from what its folder holds."""
        folder = self.batches.dir(batch)
        names = self.batches.names()
        earlier = [b for b in names[: names.index(batch)] if (self.batches.dir(b) / ADD).is_dir()]
        add = replace = None
        if (folder / ADD).is_dir():
            add = Step(self._batch_collection(folder / ADD, uniform=True), self.zip)
        if (folder / "replace.map").is_file():
            replace = Step(self._batch_collection(folder / REPLACE, uniform=False), self.zip)
        if self.zip:
            for kind in (ADD, REPLACE):
                if (folder / kind).is_dir():
                    self._zip(folder, kind)
        for kind in (ADD, REPLACE):  # the renames of its item folders on disk, then the script
            if (folder / kind).is_dir():
                fsync_path(folder / kind)
        script = import_script(
            batch,
            earlier_adds=earlier,
            add=add,
            replace=replace,
            delete=(folder / "delete.map").is_file(),
        )
        write_atomic(folder / "IMPORT.sh", script.encode("utf-8"), mode=0o755)

    def _batch_collection(self, folder: Path, *, uniform: bool) -> str | None:
        """``--collection`` for a step: the one collection all items share; else for an add
        none (each item's ``collections`` file decides), for a replace the default (DSpace 7's
        replace needs one and only uses it to look the items up)."""
        found: set[str] = set()
        if folder.is_dir():
            for item in folder.iterdir():
                path = item / "collections"
                if path.is_file():
                    found.update(path.read_text(encoding="utf-8").split()[:1])
        if len(found) == 1:
            return found.pop()
        if uniform:
            return None
        return self.collection or (sorted(found)[0] if found else None)

    @staticmethod
    def _zip(folder: Path, kind: str) -> None:
        """``<kind>.zip`` with the items under one top folder, as ``dspace import --zip``
        expects (it takes the zip's top folder as the source)."""
        target = folder / f"{kind}.zip"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".zip", dir=folder)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted((folder / kind).rglob("*")):
                    if path.is_file():
                        zf.write(path, path.relative_to(folder).as_posix())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
