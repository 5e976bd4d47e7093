"""The batches under a SAF output folder, read from disk: which items each run wrote, and the
handles the ``dspace import`` runs gave them (``run-NNNN/add.map``).

The folder is the truth: a replay after a crash, or a second process, sees exactly what the
import script would import. Files are written through ``write_atomic`` (temporary name, then
rename), so a killed run never leaves half a file where the script would read it.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ..saf import mapfile

BATCH_NAME = re.compile(r"^run-(\d{4,})$")
EventKind = Literal["add", "replace", "delete"]
ADD: Final = "add"
REPLACE: Final = "replace"
DELETE: Final = "delete"


def batch_name(run_id: int) -> str:
    return f"run-{run_id:04d}"


def write_atomic(path: Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write ``path`` whole or not at all; ``durable``: on disk before it has its name (files
    in a staging folder are not: ``saf_files.sync_folder`` syncs the folder once)."""
    if not durable:
        # a staging folder belongs to the one worker building its item: a fixed temporary
        # name is enough (mkstemp's random names cost more than the write)
        tmp = os.path.join(path.parent, f".tmp-{path.name}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Event:
    """Something a batch does to an item."""

    batch: str
    kind: EventKind
    handle: str | None = None  # replace / delete: the handle the map names


class Batches:
    """Read access to ``OUT_DIR/run-NNNN/`` folders (in run order)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # mapfiles by path, kept while their size and mtime stay the same: every handle look-up
        # reads the maps of all batches
        self._maps: dict[Path, tuple[tuple[int, int], dict[str, str]]] = {}
        self._maps_lock = threading.Lock()

    def names(self) -> list[str]:
        """Batch folder names, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            (int(m.group(1)), p.name)
            for p in self.root.iterdir()
            if p.is_dir() and (m := BATCH_NAME.match(p.name))
        ]
        return [name for _n, name in sorted(found)]

    def dir(self, batch: str) -> Path:
        return self.root / batch

    def read_map(self, batch: str, name: str) -> dict[str, str] | None:
        """A mapfile of a batch (``add.map``, ``replace.map``, ``delete.map``), None if absent."""
        path = self.dir(batch) / name
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._maps_lock:
            cached = self._maps.get(path)
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        mapping = mapfile.parse(text, resource=str(path))
        with self._maps_lock:
            self._maps[path] = (stamp, mapping)
        return dict(mapping)

    def imported(self, batch: str) -> bool:
        """Every step of the batch ran: the add step wrote its mapfile, the replace and delete
        steps their ``.done`` markers (``IMPORT.sh`` writes them); a step the batch does not
        have counts as done."""
        folder = self.dir(batch)
        added = not (folder / ADD).is_dir() or (folder / "add.map").is_file()
        return added and all(
            not (folder / f"{kind}.map").is_file() or (folder / f"{kind}.done").is_file()
            for kind in (REPLACE, DELETE)
        )

    def waiting(self) -> list[str]:
        """Batches not imported yet (a batch of only replacements or deletions too)."""
        return [b for b in self.names() if not self.imported(b)]

    def events(self, item: str) -> Iterator[Event]:
        """What the batches did to one item folder name, oldest first."""
        for batch in self.names():
            if (self.dir(batch) / ADD / item).is_dir():
                yield Event(batch, ADD)
            replaced = self.read_map(batch, "replace.map") or {}
            if item in replaced:
                yield Event(batch, REPLACE, replaced[item])
            deleted = self.read_map(batch, "delete.map") or {}
            if item in deleted:
                yield Event(batch, DELETE, deleted[item])

    def current_folder(self, item: str) -> Path | None:
        """The newest complete folder of a live (not deleted) item."""
        folder: Path | None = None
        for event in self.events(item):
            if event.kind == DELETE:
                folder = None
            else:
                candidate = self.dir(event.batch) / event.kind / item
                folder = candidate if candidate.is_dir() else folder
        return folder

    def last_add(self, item: str) -> str | None:
        """The batch that added the live item (None: never added, or deleted since)."""
        batch: str | None = None
        for event in self.events(item):
            if event.kind == ADD:
                batch = event.batch
            elif event.kind == DELETE:
                batch = None
        return batch

    def set_map_line(self, batch: str, name: str, item: str, handle: str) -> None:
        mapping = self.read_map(batch, name) or {}
        mapping[item] = handle
        write_atomic(self.dir(batch) / name, mapfile.render(mapping).encode("utf-8"))
