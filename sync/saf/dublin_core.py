"""DC terms <-> SAF metadata files (``dublin_core.xml``, ``metadata_<schema>.xml``). Pure.

DSpace's ``dc`` registry names most DC terms by element and qualifier (``creator`` is
``dc.contributor.author``, ``issued`` is ``dc.date.issued``); terms it has no field for go to
the ``dcterms`` schema under their own name, so nothing is lost on the way to DSpace and back.
Reading maps a refinement to its broader term too (``date.issued`` gives ``issued`` and
``date``), as the crosswalk does for dcterms records; writing therefore leaves out a broader
value that a refinement already carries, so a record survives a round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, tostring

from ..safexml import escape, quoteattr

if TYPE_CHECKING:  # the crosswalk imports this module: no import of it at run time
    from ..crosswalk import DCRecord

DC_SCHEMA = "dc"
DCTERMS_SCHEMA = "dcterms"
ROOT_TAG = "dublin_core"
SET_TAG = "saf_metadata"  # our wrapper: an item's metadata files as one document
VALUE_TAG = "dcvalue"
NO_QUALIFIER = "none"

# term -> (element, qualifier) in DSpace's dc registry.
_TO_DC: dict[str, tuple[str, str | None]] = {
    "title": ("title", None),
    "alternative": ("title", "alternative"),
    "creator": ("contributor", "author"),
    "contributor": ("contributor", None),
    "subject": ("subject", None),
    "description": ("description", None),
    "abstract": ("description", "abstract"),
    "tableOfContents": ("description", "tableofcontents"),
    "publisher": ("publisher", None),
    "date": ("date", None),
    "issued": ("date", "issued"),
    "created": ("date", "created"),
    "available": ("date", "available"),
    "dateSubmitted": ("date", "submitted"),
    "type": ("type", None),
    "format": ("format", None),
    "extent": ("format", "extent"),
    "medium": ("format", "medium"),
    "bibliographicCitation": ("identifier", "citation"),
    "source": ("source", None),
    "language": ("language", "iso"),
    "relation": ("relation", None),
    "isPartOf": ("relation", "ispartof"),
    "hasPart": ("relation", "haspart"),
    "isVersionOf": ("relation", "isversionof"),
    "hasVersion": ("relation", "hasversion"),
    "isFormatOf": ("relation", "isformatof"),
    "hasFormat": ("relation", "hasformat"),
    "isReferencedBy": ("relation", "isreferencedby"),
    "requires": ("relation", "requires"),
    "replaces": ("relation", "replaces"),
    "isReplacedBy": ("relation", "isreplacedby"),
    "coverage": ("coverage", None),
    "spatial": ("coverage", "spatial"),
    "temporal": ("coverage", "temporal"),
    "rights": ("rights", None),
    "license": ("rights", "uri"),
}
# (element, qualifier) -> terms, where reading is not the inverse of the table above.
_FROM_DC_EXTRA: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("date", "issued"): ("issued", "date"),
    ("date", "created"): ("created", "date"),
    ("date", "accessioned"): ("dateAccepted", "date"),
    ("description", "abstract"): ("abstract", "description"),
    ("description", "provenance"): (),  # DSpace internals (submitter e-mail, checksums)
    ("identifier", "uri"): ("identifier",),
    ("identifier", None): ("identifier",),
}
# refinement -> the broader term reading adds (writing leaves those values out).
BROADER: dict[str, str] = {
    "issued": "date",
    "created": "date",
    "dateAccepted": "date",
    "abstract": "description",
}


def _from_dc_table() -> dict[tuple[str, str | None], tuple[str, ...]]:
    table: dict[tuple[str, str | None], tuple[str, ...]] = {
        pair: (term,) for term, pair in _TO_DC.items()
    }
    table.update(_FROM_DC_EXTRA)
    return table


_FROM_DC = _from_dc_table()


def schema_filename(schema: str) -> str:
    """``dublin_core.xml`` for ``dc``, ``metadata_<schema>.xml`` for the others."""
    return "dublin_core.xml" if schema == DC_SCHEMA else f"metadata_{schema}.xml"


def schema_of_filename(name: str) -> str | None:
    """The schema a SAF metadata file holds, or None when the name is not one."""
    if name == "dublin_core.xml":
        return DC_SCHEMA
    if name.startswith("metadata_") and name.endswith(".xml") and len(name) > 13:
        return name[len("metadata_") : -len(".xml")]
    return None


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _placement(term: str, value: str) -> tuple[str, str, str | None]:
    """(schema, element, qualifier) for one value of a term."""
    if term == "identifier":
        return DC_SCHEMA, "identifier", "uri" if _is_url(value) else None
    pair = _TO_DC.get(term)
    if pair is not None:
        return DC_SCHEMA, pair[0], pair[1]
    return DCTERMS_SCHEMA, term, None


def _derived(terms: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """Values of broader terms that reading will add back from their refinements."""
    derived: dict[str, set[str]] = {}
    for term, broader in BROADER.items():
        derived.setdefault(broader, set()).update(terms.get(term, ()))
    return derived


def placed_values(
    terms: Mapping[str, Sequence[str]],
) -> Iterator[tuple[str, str, str | None, str]]:
    """(schema, element, qualifier, value) for every value of a record, in record order."""
    derived = _derived(terms)
    for term, values in terms.items():
        for value in values:
            if value in derived.get(term, ()):
                continue
            schema, element, qualifier = _placement(term, value)
            yield schema, element, qualifier, value


def schema_document(schema: str, values: Iterable[tuple[str, str | None, str]]) -> bytes:
    """One SAF metadata file: ``<dublin_core schema="...">`` with one ``dcvalue`` a value."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{ROOT_TAG} schema={quoteattr(schema)}>"]
    for element, qualifier, value in values:
        lines.append(
            f"  <{VALUE_TAG} element={quoteattr(element)}"
            f" qualifier={quoteattr(qualifier or NO_QUALIFIER)}>{escape(value)}</{VALUE_TAG}>"
        )
    lines.append(f"</{ROOT_TAG}>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def metadata_files(record: DCRecord) -> dict[str, bytes]:
    """File name -> bytes: ``dublin_core.xml`` always, ``metadata_dcterms.xml`` if needed."""
    by_schema: dict[str, list[tuple[str, str | None, str]]] = {DC_SCHEMA: []}
    for schema, element, qualifier, value in placed_values(record.terms):
        by_schema.setdefault(schema, []).append((element, qualifier, value))
    return {
        schema_filename(schema): schema_document(schema, values)
        for schema, values in by_schema.items()
    }


def _qualifier(raw: str | None) -> str | None:
    value = (raw or "").strip()
    return None if value.lower() in ("", NO_QUALIFIER) else value


def is_saf_root(root: Element) -> bool:
    """A SAF metadata file, or an item's files combined by ``combine``."""
    return root.tag in (ROOT_TAG, SET_TAG)


def combine(roots: Sequence[Element]) -> bytes:
    """An item's metadata files (``dublin_core.xml`` first) as one document, so that the
    item is one metadata record: ``<saf_metadata><dublin_core schema=...>...``."""
    wrapper = Element(SET_TAG)
    wrapper.extend(roots)
    data: bytes = tostring(wrapper, encoding="utf-8")
    return data


def read_terms(root: Element) -> list[tuple[str, str]]:
    """(term, value) pairs of a SAF metadata document, in document order. Schemas other than
    ``dc`` and ``dcterms`` (local registries) are not DC and are left out."""
    if root.tag == SET_TAG:
        return [pair for child in root if child.tag == ROOT_TAG for pair in read_terms(child)]
    schema = (root.get("schema") or DC_SCHEMA).strip().lower()
    pairs: list[tuple[str, str]] = []
    if schema not in (DC_SCHEMA, DCTERMS_SCHEMA):
        return pairs
    for el in root.iter(VALUE_TAG):
        element = (el.get("element") or "").strip()
        if not element:
            continue
        value = "".join(el.itertext())
        qualifier = _qualifier(el.get("qualifier"))
        if schema == DCTERMS_SCHEMA:
            names: tuple[str, ...] = (element,)
            if element in BROADER:
                names = (element, BROADER[element])
        else:
            key = (element.lower(), qualifier.lower() if qualifier else None)
            names = _FROM_DC[key] if key in _FROM_DC else (element.lower(),)
        pairs.extend((name, value) for name in names)
    return pairs
