"""Putting files into a SAF item folder cheaply, and making a finished folder durable.

A fetched file that is a temporary copy only this run holds is hard-linked into the staging
folder (no bytes copied); elsewhere (another file system, a source's own file) it is copied
straight to the disk where the file system allows (``filecopy``). Staging files are not
fsynced one by one: a killed process loses nothing the page cache holds, and the staging
folder is never imported. Before an item folder is renamed into its batch, its files and the
folder itself are fsynced once (``sync_folder``), so an item in a batch is on disk also after
a power cut, at one fsync per file instead of one per write.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..contracts import Fetched
from ..filecopy import copy_file

# link(2) errors that mean "copy instead": another file system, links not allowed here
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES})


def place(file: Fetched, target: Path) -> None:
    """``target`` holds ``file``'s bytes: a hard link to a temporary copy, else a copy."""
    target.unlink(missing_ok=True)
    if file.temporary:
        try:
            os.link(file.path, target)
            return
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
    copy_file(file.path, target)


def fsync_path(path: str | Path) -> None:
    """fsync one file or folder (opened read-only: enough for fsync on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """Every file directly in ``folder``, then the folder's own entries, on disk."""
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_file(follow_symlinks=False):
                fsync_path(entry.path)
    fsync_path(folder)
