"""METS records (``metadataPrefix=mets``) -> file descriptions, from ``fileSec``. Pure.

DSpace writes ``<fileGrp USE="ORIGINAL"><file MIMETYPE SIZE CHECKSUM CHECKSUMTYPE="MD5">
<FLocat xlink:href xlink:title/></file></fileGrp>``; the checksums make METS the better file
listing when a repository offers both METS and ORE.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from ...errors import DocumentError
from ...urls import join_url
from .files import FileDesc, parse_length, parse_md5, wanted

METS = "{http://www.loc.gov/METS/}"
XLINK = "{http://www.w3.org/1999/xlink}"
_ROOT, _GROUP, _FILE, _FLOCAT = f"{METS}mets", f"{METS}fileGrp", f"{METS}file", f"{METS}FLocat"
_HREF, _TITLE = f"{XLINK}href", f"{XLINK}title"


def is_mets(root: Element) -> bool:
    return root.tag == _ROOT


def _file(el: Element, bundle: str | None, where: str) -> FileDesc:
    loc = el.find(_FLOCAT)
    raw = (loc.get(_HREF) or "").strip() if loc is not None else ""
    if not raw:
        raise DocumentError("a METS file has no FLocat href", resource=where)
    href = join_url(where, raw)
    algorithm = (el.get("CHECKSUMTYPE") or "").strip().upper()
    checksum = el.get("CHECKSUM")
    if checksum and algorithm not in ("MD5", ""):
        checksum = None  # only MD5 is verified here; other algorithms are not refused
    title = (loc.get(_TITLE) or "").strip() if loc is not None else ""
    return FileDesc(
        href=href,
        name=title or None,
        type=(el.get("MIMETYPE") or "").strip() or None,
        length=parse_length(el.get("SIZE"), where=href),
        md5=parse_md5(checksum, where=href),
        bundle=bundle,
    )


def parse_mets(
    root: Element, *, where: str, bundles: tuple[str, ...] | None = None
) -> list[FileDesc]:
    """Every file of every ``fileGrp`` (its ``USE`` is the bundle), in document order; with
    ``bundles`` (upper-case), only theirs: the others are neither read nor checked."""
    if not is_mets(root):
        raise DocumentError(f"not a METS document (root <{root.tag}>)", resource=where)
    files: list[FileDesc] = []
    for group in root.iter(_GROUP):
        bundle = (group.get("USE") or "").strip().upper() or None
        if not wanted(bundle, bundles):
            continue
        for el in group.findall(_FILE):
            files.append(_file(el, bundle, where))
    return files


def last_modified(root: Element) -> str | None:
    """``metsHdr/@LASTMODDATE`` (else ``CREATEDATE``): when the item last changed."""
    header = root.find(f"{METS}metsHdr")
    if header is None:
        return None
    value = (header.get("LASTMODDATE") or header.get("CREATEDATE") or "").strip()
    return value or None
