"""Metadata crosswalk: read a source record (oai_dc, qualified DC, DSpace DIM, dcterms) into DC.

Pure: bytes in, ``DCRecord`` out. Every record is untrusted XML and is parsed with
defusedxml's defences (``safexml``: no DTDs, no entities); anything unreadable becomes a
``MetadataError`` naming the record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

from .errors import MetadataError
from .model import Entry
from .saf import dublin_core as saf_dc
from .safexml import parse_untrusted

DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
QDC = "http://epubs.cclrc.ac.uk/xmlns/qdc/"
DIM = "http://www.dspace.org/xmlns/dspace/dim"

FORMATS: tuple[str, ...] = ("qdc", "dcterms", "oai_dc", "dim")
"""Known format names, in the default order of preference for the primary record."""

# dcterms refinements that also feed a broader term.
_ALSO: dict[str, tuple[str, ...]] = {
    "issued": ("date",),
    "created": ("date",),
    "dateAccepted": ("date",),
    "abstract": ("description",),
}
# Terms whose whitespace is significant (paragraphs); the others are collapsed to one line.
_KEEP_WHITESPACE = frozenset({"description", "abstract", "tableOfContents"})
# DIM (element, qualifier) -> terms. Unlisted pairs map by element name.
_DIM_QUALIFIED: dict[tuple[str, str], tuple[str, ...]] = {
    ("contributor", "author"): ("creator",),
    ("date", "issued"): ("date", "issued"),
    ("date", "created"): ("date", "created"),
    ("date", "accessioned"): ("dateAccepted",),
    ("date", "available"): ("available",),
    ("description", "abstract"): ("description", "abstract"),
    ("description", "tableofcontents"): ("tableOfContents",),
    ("description", "provenance"): (),  # DSpace internals (submitter e-mail, checksums)
    ("identifier", "citation"): ("bibliographicCitation",),
    ("title", "alternative"): ("alternative",),
    ("relation", "ispartof"): ("isPartOf",),
    ("format", "extent"): ("extent",),
    ("format", "mimetype"): ("format",),
}
_PROFILE_NAMES: dict[str, str] = {
    OAI_DC: "oai_dc",
    "http://www.openarchives.org/OAI/2.0/oai_dc.xsd": "oai_dc",
    DC: "oai_dc",
    QDC: "qdc",
    DIM: "dim",
    "http://www.dspace.org/schema/dim.xsd": "dim",
    DCTERMS: "dcterms",
}
_NAME_ALIASES = {"oai_dc": "oai_dc", "qdc": "qdc", "dim": "dim", "dcterms": "dcterms"}
_SPACES = re.compile(r"\s+")


@dataclass
class DCRecord:
    """DC terms by dcterms local name; values stripped, de-duplicated, in document order."""

    terms: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, value: str | None) -> None:
        if value is None:
            return
        text = value.strip() if name in _KEEP_WHITESPACE else _SPACES.sub(" ", value).strip()
        if not text:
            return
        values = self.terms.setdefault(name, [])
        if text not in values:
            values.append(text)

    def get(self, name: str) -> list[str]:
        return list(self.terms.get(name, ()))

    def first(self, name: str) -> str | None:
        values = self.terms.get(name)
        return values[0] if values else None

    @property
    def title(self) -> str | None:
        return self.first("title")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def detect_format(root: Element) -> str | None:
    """``oai_dc`` / ``qdc`` / ``dim`` / ``saf`` (a SAF ``dublin_core.xml``) by root element,
    ``dcterms`` by DC children, else None."""
    ns, local = _split(root.tag)
    if (ns, local) == (OAI_DC, "dc"):
        return "oai_dc"
    if (ns, local) == (QDC, "qualifieddc"):
        return "qdc"
    if (ns, local) == (DIM, "dim"):
        return "dim"
    if saf_dc.is_saf_root(root):
        return "saf"
    if any(isinstance(child.tag, str) and _split(child.tag)[0] in (DC, DCTERMS) for child in root):
        return "dcterms"
    return None


def _text(el: Element) -> str:
    return "".join(el.itertext())


def _read_dc(root: Element, record: DCRecord) -> None:
    for child in root:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        ns, local = _split(child.tag)
        if ns not in (DC, DCTERMS):
            continue
        value = _text(child)
        record.add(local, value)
        for also in _ALSO.get(local, ()):
            record.add(also, value)


def _read_dim(root: Element, record: DCRecord) -> None:
    for child in root.iter(f"{{{DIM}}}field"):
        schema = (child.get("mdschema") or "dc").strip().lower()
        if schema not in ("dc", "dcterms"):
            continue
        element = (child.get("element") or "").strip()
        if not element:
            continue
        qualifier = (child.get("qualifier") or "").strip().lower()
        names = _DIM_QUALIFIED.get((element.lower(), qualifier))
        if names is None:
            names = ("creator",) if element.lower() == "creator" else (element,)
        value = _text(child)
        for name in names:
            record.add(name, value)


class UnreadableRecordError(MetadataError):
    """The record is empty, not well-formed, or refused for safety (DTD, entities): not a
    record without a title, so no fallback title may stand in for it."""


def parse_metadata_root(data: bytes, *, url: str) -> Element:
    """Parse untrusted XML safely; ``MetadataError`` for malformed or hostile documents."""
    return parse_untrusted(
        data,
        what="metadata record",
        url=url,
        error=UnreadableRecordError,
        refused=" (DTDs and entities are not accepted)",
    )


def read_metadata(data: bytes, *, url: str) -> tuple[str, DCRecord]:
    """Detect the format of a record and crosswalk it to DC terms."""
    root = parse_metadata_root(data, url=url)
    fmt = detect_format(root)
    record = DCRecord()
    if fmt == "dim":
        _read_dim(root, record)
    elif fmt == "saf":
        for name, value in saf_dc.read_terms(root):
            record.add(name, value)
    elif fmt is not None:
        _read_dc(root, record)
    else:
        ns, local = _split(root.tag)
        found = f"{{{ns}}}{local}" if ns else local
        raise MetadataError(
            f"unknown metadata format: root element <{found}>",
            resource=url,
            hint="supported: oai_dc, qualified DC (qdc), DSpace DIM, DC/dcterms elements, "
            "or a SAF dublin_core.xml",
        )
    return fmt, record


def format_hint(entry: Entry) -> str | None:
    """The format an entry announces: its ``rel="profile"`` link, else its URL."""
    for link in entry.links_with("profile"):
        href = link.href.strip()
        name = _PROFILE_NAMES.get(href) or _PROFILE_NAMES.get(href.rstrip("/") + "/")
        if name is None:
            name = _NAME_ALIASES.get(href.lower())  # older DSpace: the bare format name
        if name:
            return name
    try:
        parts = urlsplit(entry.loc)
    except ValueError:
        return None
    for value in parse_qs(parts.query).get("format", []):
        name = _NAME_ALIASES.get(value.strip().lower())
        if name:
            return name
    segments = [seg for seg in parts.path.split("/") if seg]
    if segments:
        last = segments[-1].lower()
        if last.endswith(".xml"):
            last = last[:-4]
        return _NAME_ALIASES.get(last)
    return None


def choose_primary(candidates: Sequence[str | None], preference: Sequence[str]) -> list[int]:
    """Indices of ``candidates`` ordered by ``preference``; unknown formats last, order kept."""
    rank = {name: i for i, name in enumerate(preference)}
    worst = len(rank)
    return sorted(
        range(len(candidates)),
        key=lambda i: (rank.get(candidates[i] or "", worst), i),
    )


__all__ = [
    "DC",
    "DCTERMS",
    "DIM",
    "FORMATS",
    "OAI_DC",
    "QDC",
    "DCRecord",
    "choose_primary",
    "detect_format",
    "format_hint",
    "parse_metadata_root",
    "read_metadata",
]
