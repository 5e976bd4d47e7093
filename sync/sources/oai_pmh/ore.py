"""OAI-ORE resource maps (``metadataPrefix=ore``, an Atom entry) -> file descriptions. Pure.

DSpace lists each bitstream as ``<atom:link rel=".../ore/terms/aggregates" href title type
length>`` and names its bundle in the ``<oreatom:triples>`` block: an ``rdf:Description``
about the bitstream whose ``dcterms:description`` is ORIGINAL, TEXT, THUMBNAIL or LICENSE.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from ...errors import DocumentError
from ...urls import join_url
from .files import FileDesc, parse_length, wanted

ATOM = "{http://www.w3.org/2005/Atom}"
ORE_TERMS = "http://www.openarchives.org/ore/terms/"
OREATOM = "{http://www.openarchives.org/ore/atom/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DCTERMS = "{http://purl.org/dc/terms/}"
AGGREGATES = ORE_TERMS + "aggregates"


def is_resource_map(root: Element) -> bool:
    return root.tag == f"{ATOM}entry"


def _bundles(root: Element) -> dict[str, str]:
    """Bitstream URL -> bundle name, from the triples block."""
    out: dict[str, str] = {}
    for triples in root.iter(f"{OREATOM}triples"):
        for desc in triples.iter(f"{RDF}Description"):
            about = desc.get(f"{RDF}about")
            note = desc.find(f"{DCTERMS}description")
            if about and note is not None and note.text and note.text.strip():
                out[about.strip()] = note.text.strip().upper()
    return out


def parse_resource_map(
    root: Element, *, where: str, bundles: tuple[str, ...] | None = None
) -> list[FileDesc]:
    """The aggregated files of a resource map, in document order; with ``bundles``
    (upper-case), only theirs: the others are neither read nor checked."""
    if not is_resource_map(root):
        raise DocumentError(f"not an ORE Atom resource map (root <{root.tag}>)", resource=where)
    named = _bundles(root)
    files: list[FileDesc] = []
    for link in root.findall(f"{ATOM}link"):
        if (link.get("rel") or "").strip() != AGGREGATES:
            continue
        raw = (link.get("href") or "").strip()
        if not raw:
            raise DocumentError("an ore:aggregates link has no href", resource=where)
        href = join_url(where, raw)
        bundle = named.get(raw) or named.get(href)
        if not wanted(bundle, bundles):
            continue
        files.append(
            FileDesc(
                href=href,
                name=(link.get("title") or "").strip() or None,
                type=(link.get("type") or "").strip() or None,
                length=parse_length(link.get("length"), where=href),
                bundle=bundle,
            )
        )
    return files


def updated(root: Element) -> str | None:
    """``atom:updated``: when the item last changed, to the second (finer than a datestamp)."""
    el = root.find(f"{ATOM}updated")
    return (el.text or "").strip() or None if el is not None else None
