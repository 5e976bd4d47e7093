"""Read access to a SAF archive (a ``dspace export`` folder or ``.zip``) that never leaves it.

Every read goes through ``open_member(folder, name)``: the name must stay inside the item
folder (no ``..``, no absolute path), and on disk the resolved path too (a symlink leading out
of the item folder is refused); in a zip, members with ``..`` or absolute names (zip slip) and
symlink members are refused and never read.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from ..errors import SyncError
from ..saf.contents import check_member_name

METADATA_MARKER = "dublin_core.xml"


class ArchiveError(SyncError):
    """The archive holds something that would be read from outside it, or lacks a file."""

    code = "saf-archive"


def open_archive(path: Path) -> Archive:
    if path.is_file() and zipfile.is_zipfile(path):
        return ZipArchive(path)
    if path.is_dir():
        return DirArchive(path)
    raise ArchiveError(
        "not a SAF folder or zip", resource=str(path), hint="give a dspace export folder or .zip"
    )


class DirArchive:
    """A ``dspace export`` folder: item folders holding ``dublin_core.xml``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.location = str(root)
        self.problems: list[ArchiveError] = []
        # item folder -> its resolved path. Paths are strings from here on: an item's dozen
        # file look-ups through pathlib cost more than the system calls they make
        self._bases: dict[str, str] = {}

    def folders(self) -> list[str]:
        self.problems = []
        self._bases = {}
        found = []
        for marker in sorted(self.root.glob(f"*/{METADATA_MARKER}")) + sorted(
            self.root.glob(f"*/*/{METADATA_MARKER}")
        ):
            folder = marker.parent
            rel = folder.relative_to(self.root).as_posix()
            if not folder.resolve().is_relative_to(self.root) or folder.is_symlink():
                self.problems.append(
                    ArchiveError("the item folder leads outside the archive", resource=rel)
                )
                continue
            found.append(rel)
        return sorted(set(found))

    def _base(self, folder: str) -> str:
        base = self._bases.get(folder)
        if base is None:
            base = self._bases[folder] = os.path.realpath(os.path.join(self.root, folder))
        return base

    def _path(self, folder: str, name: str) -> str:
        check_member_name(name, resource=f"{folder}/{name}")
        base = self._base(folder)
        path = os.path.join(base, name)
        if not any_symlink(base, name):
            return path  # the name has no '..' and no symlink: it is inside the folder
        resolved = os.path.realpath(path)
        if not resolved.startswith(base + os.sep):
            raise ArchiveError(
                f"{name!r} leads outside the item folder (a symlink)", resource=f"{folder}/{name}"
            )
        return resolved

    def exists(self, folder: str, name: str) -> bool:
        return os.path.isfile(self._path(folder, name))

    def members(self, folder: str) -> list[str]:
        with os.scandir(os.path.join(self.root, folder)) as it:
            return sorted(entry.name for entry in it if entry.is_file())

    @contextmanager
    def open_member(self, folder: str, name: str) -> Iterator[IO[bytes]]:
        path = self._path(folder, name)
        if not os.path.isfile(path):
            raise ArchiveError(f"{name!r} is missing", resource=f"{folder}/{name}")
        # unbuffered: members are read whole or in large blocks (a buffered file asks the
        # kernel whether it is a terminal and where it stands, per open)
        with open(path, "rb", buffering=0) as fh:
            yield fh

    def close(self) -> None:
        return None


def any_symlink(base: str, name: str) -> bool:
    """Whether ``base`` (an item folder swapped for a link since it was resolved) or a
    component of ``name`` under it is a symlink: two ``lstat`` calls for a plain name, much
    cheaper than resolving the whole path, which only a symlink needs."""
    path = base
    if os.path.islink(path):
        return True
    for part in name.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            return True
    return False


def _unsafe_member(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


class ZipArchive:
    """A zipped export; members are read in place, never extracted."""

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        self.problems: list[ArchiveError] = []
        self._zip = zipfile.ZipFile(path)
        self._files: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if _unsafe_member(info.filename):
                self.problems.append(
                    ArchiveError(
                        "zip member with '..' or an absolute name refused (zip slip)",
                        resource=f"{path.name}:{info.filename}",
                    )
                )
            elif stat.S_ISLNK(info.external_attr >> 16):
                self.problems.append(
                    ArchiveError("symlink member refused", resource=f"{path.name}:{info.filename}")
                )
            elif not info.is_dir():
                self._files[info.filename] = info

    def folders(self) -> list[str]:
        found = set()
        for name in self._files:
            head, _, tail = name.rpartition("/")
            if tail == METADATA_MARKER and head and head.count("/") <= 1:
                found.add(head)
        return sorted(found)

    def _key(self, folder: str, name: str) -> str:
        check_member_name(name, resource=f"{folder}/{name}")
        return f"{folder}/{name}"

    def exists(self, folder: str, name: str) -> bool:
        return self._key(folder, name) in self._files

    def members(self, folder: str) -> list[str]:
        prefix = folder + "/"
        return sorted(
            n[len(prefix) :]
            for n in self._files
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        )

    @contextmanager
    def open_member(self, folder: str, name: str) -> Iterator[IO[bytes]]:
        info = self._files.get(self._key(folder, name))
        if info is None:
            raise ArchiveError(f"{name!r} is missing", resource=f"{folder}/{name}")
        with self._zip.open(info) as fh:
            yield fh

    def close(self) -> None:
        self._zip.close()


Archive = DirArchive | ZipArchive
