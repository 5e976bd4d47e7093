"""What an ORE resource map or a METS ``fileSec`` says about one file of a record."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import DocumentError

DEFAULT_BUNDLES: tuple[str, ...] = ("ORIGINAL",)
"""DSpace's deposited files; TEXT, THUMBNAIL and LICENSE are derivatives the mirror rebuilds."""


@dataclass(frozen=True)
class FileDesc:
    """One file of a record. ``bundle`` is upper-case (DSpace names: ORIGINAL, TEXT, ...)."""

    href: str
    name: str | None = None
    type: str | None = None
    length: int | None = None
    md5: str | None = None
    bundle: str | None = None


def select_bundles(files: list[FileDesc], bundles: tuple[str, ...]) -> list[FileDesc]:
    """The files of the wanted bundles; a file with no bundle named counts as ORIGINAL."""
    names = {b.upper() for b in bundles}
    return [f for f in files if (f.bundle or "ORIGINAL") in names]


def wanted(bundle: str | None, bundles: tuple[str, ...] | None) -> bool:
    """Is a file of ``bundle`` among ``bundles`` (upper-case; None: every bundle)? A file with
    no bundle named counts as ORIGINAL."""
    return bundles is None or (bundle or "ORIGINAL") in bundles


def parse_length(value: str | None, *, where: str) -> int | None:
    """A non-negative byte count; a bad one refuses the record (lengths are checked)."""
    if value is None or not value.strip():
        return None
    try:
        number = int(value.strip())
    except ValueError:
        raise DocumentError(f"bad file length {value!r}", resource=where) from None
    if number < 0:
        raise DocumentError(f"negative file length {value!r}", resource=where)
    return number


_MD5 = re.compile(r"[0-9a-f]{32}")


def parse_md5(value: str | None, *, where: str) -> str | None:
    """A 32-digit hex MD5 (lower-cased); anything else refuses the record."""
    if value is None or not value.strip():
        return None
    digest = value.strip().lower()
    if _MD5.fullmatch(digest) is None:
        raise DocumentError(f"bad MD5 checksum {value!r}", resource=where)
    return digest
