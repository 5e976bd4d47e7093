"""SWORD v2 documents: build the Atom entry we deposit, parse what the server answers.

Pure: no I/O. Everything a server sends is untrusted and parsed with defusedxml's defences
(``safexml``: no DTDs, no entities); a document that cannot be read becomes a
``DepositError``.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

from ...contracts import HeldFile
from ...crosswalk import DCTERMS, DCRecord
from ...errors import DepositError
from ...safexml import parse_untrusted
from ...urls import join_url

ATOM = "http://www.w3.org/2005/Atom"
SWORD = "http://purl.org/net/sword/terms/"
APP = "http://www.w3.org/2007/app"
ORE = "http://www.openarchives.org/ore/terms/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

REL_ADD = SWORD + "add"
REL_STATEMENT = SWORD + "statement"
REL_ORIGINAL_DEPOSIT = SWORD + "originalDeposit"
ENTRY_CONTENT_TYPE = "application/atom+xml;type=entry;charset=utf-8"
DEFAULT_AUTHOR = "resync-sword"

ET.register_namespace("dcterms", DCTERMS)

_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Characters XML 1.0 cannot carry at all (even escaped).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _a(local: str) -> str:
    return f"{{{ATOM}}}{local}"


def _s(local: str) -> str:
    return f"{{{SWORD}}}{local}"


# -- building ----------------------------------------------------------------------------------
def container_id(source_id: str) -> str:
    """A stable ``urn:uuid`` for the item: the same source identifier gives the same id."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, source_id)}"


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def build_entry(
    record: DCRecord,
    *,
    title: str,
    source_ids: Sequence[str],
    updated: datetime | None = None,
) -> bytes:
    """The Atom entry to create or replace a container: Atom basics plus every DC term.

    ``source_ids`` (the item's URLs at the source) are added as ``dcterms:identifier`` unless
    the record already has them; the first one fixes ``atom:id``.
    """
    root = Element(_a("entry"))
    ET.SubElement(root, _a("title")).text = _xml_text(title)
    ET.SubElement(root, _a("id")).text = container_id(source_ids[0] if source_ids else title)
    when = (updated or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    ET.SubElement(root, _a("updated")).text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in record.get("creator") or [DEFAULT_AUTHOR]:
        author = ET.SubElement(root, _a("author"))
        ET.SubElement(author, _a("name")).text = _xml_text(name)
    summary = record.first("description")
    if summary:
        # type="text" is Atom's default; attributes cannot be serialised with default_namespace
        ET.SubElement(root, _a("summary")).text = _xml_text(summary)
    terms = {name: list(values) for name, values in record.terms.items()}
    if not terms.get("title"):
        terms = {"title": [title], **terms}
    identifiers = terms.setdefault("identifier", [])
    for source_id in source_ids:
        if source_id not in identifiers:
            identifiers.append(source_id)
    for name, values in terms.items():
        if not _XML_NAME.match(name):
            continue
        for value in values:
            ET.SubElement(root, f"{{{DCTERMS}}}{name}").text = _xml_text(value)
    body = ET.tostring(root, encoding="unicode", default_namespace=ATOM)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n").encode("utf-8")


# -- parsing -----------------------------------------------------------------------------------
def _parse(data: bytes, what: str, url: str | None) -> Element:
    return parse_untrusted(data, what=what, url=url, error=DepositError)


def _child_text(el: Element, tag: str) -> str | None:
    child = el.find(tag)
    if child is None:
        return None
    text = "".join(child.itertext()).strip()
    return text or None


def _join(base: str | None, href: str) -> str:
    href = href.strip()
    return join_url(base, href) if base else href


def _last_segment(href: str) -> str:
    path = urlsplit(href).path if "://" in href else href
    segments = [seg for seg in path.split("/") if seg]
    return unquote(segments[-1], errors="replace") if segments else href


@dataclass(frozen=True)
class CollectionInfo:
    href: str
    title: str | None
    accept: list[str] = field(default_factory=list)
    accept_packaging: list[str] = field(default_factory=list)
    mediation: bool | None = None


@dataclass(frozen=True)
class ServiceDocument:
    collections: dict[str, CollectionInfo]  # by Col-IRI
    max_upload_kb: int | None = None
    version: str | None = None

    def find(self, name: str) -> CollectionInfo | None:
        """A collection by its Col-IRI, else by its title (exact, then case-insensitive)."""
        if name in self.collections:
            return self.collections[name]
        for info in self.collections.values():
            if info.title == name:
                return info
        folded = name.casefold()
        for info in self.collections.values():
            if info.title and info.title.casefold() == folded:
                return info
        return None


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    return True if value == "true" else False if value == "false" else None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def parse_service_document(data: bytes, *, url: str | None = None) -> ServiceDocument:
    """Collections (Col-IRI, title, accept, acceptPackaging, mediation), maxUploadSize, version."""
    root = _parse(data, "service document", url)
    if root.tag != f"{{{APP}}}service":
        raise DepositError(f"not a service document (root element {root.tag})", resource=url)
    collections: dict[str, CollectionInfo] = {}
    for coll in root.iter(f"{{{APP}}}collection"):
        href = coll.get("href")
        if not href:
            continue
        href = _join(url, href)
        accept = [
            (el.text or "").strip()
            for el in coll.findall(f"{{{APP}}}accept")
            if (el.text or "").strip()
        ]
        packaging = [
            (el.text or "").strip()
            for el in coll.findall(_s("acceptPackaging"))
            if (el.text or "").strip()
        ]
        collections[href] = CollectionInfo(
            href=href,
            title=_child_text(coll, _a("title")),
            accept=accept,
            accept_packaging=packaging,
            mediation=_bool(_child_text(coll, _s("mediation"))),
        )
    return ServiceDocument(
        collections=collections,
        max_upload_kb=_int(_child_text(root, _s("maxUploadSize"))),
        version=_child_text(root, _s("version")),
    )


@dataclass(frozen=True)
class Receipt:
    edit_iri: str | None
    em_iri: str | None
    se_iri: str | None
    statement_atom: str | None
    statement_ore: str | None
    content_src: str | None
    state: str | None = None  # sword:state in the receipt, if the server puts one there
    treatment: str | None = None
    identifiers: tuple[str, ...] = ()  # dcterms:identifier values the server echoes


def parse_receipt(data: bytes, location: str | None, *, url: str | None = None) -> Receipt:
    """The IRIs of a deposit receipt; ``location`` (Location header) is the Edit-IRI fallback."""
    root = _parse(data, "deposit receipt", url or location)
    if root.tag != _a("entry"):
        raise DepositError(
            f"not a deposit receipt (root element {root.tag})", resource=url or location
        )
    base = location or url
    edit_iri: str | None = None
    em_links: list[tuple[str | None, str]] = []
    se_iri: str | None = None
    st_atom: str | None = None
    st_ore: str | None = None
    for link in root.findall(_a("link")):
        rel = (link.get("rel") or "").strip()
        href = link.get("href")
        if not href:
            continue
        href = _join(base, href)
        ltype = link.get("type")
        if rel == "edit" and edit_iri is None:
            edit_iri = href
        elif rel == "edit-media":
            em_links.append((ltype, href))
        elif rel == REL_ADD and se_iri is None:
            se_iri = href
        elif rel == REL_STATEMENT:
            kind = (ltype or "").lower()
            if "rdf" in kind:
                st_ore = st_ore or href
            elif "atom" in kind or st_atom is None:
                st_atom = st_atom or href
            else:
                st_ore = st_ore or href
    untyped = [href for ltype, href in em_links if not ltype]
    em_iri = untyped[0] if untyped else (em_links[0][1] if em_links else None)
    edit_iri = edit_iri or location
    content = root.find(_a("content"))
    content_src = content.get("src") if content is not None else None
    state_el = root.find(_s("state"))
    state_href = state_el.get("href") if state_el is not None else None
    return Receipt(
        edit_iri=edit_iri,
        em_iri=em_iri,
        se_iri=se_iri or edit_iri,
        statement_atom=st_atom,
        statement_ore=st_ore,
        content_src=_join(base, content_src) if content_src else None,
        state=_last_segment(state_href) if state_href else None,
        treatment=_child_text(root, _s("treatment")),
        identifiers=tuple(
            dict.fromkeys(
                text
                for el in root.findall(f"{{{DCTERMS}}}identifier")
                if (text := "".join(el.itertext()).strip())
            )
        ),
    )


@dataclass(frozen=True)
class StatementFile:
    iri: str
    name: str
    content_type: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Statement:
    state: str | None
    files: list[StatementFile] = field(default_factory=list)
    state_description: str | None = None


_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def _entry_md5(entry: Element) -> str | None:
    """An MD5 if the server gives one (non-standard; some put it in an extension element)."""
    for el in entry.iter():
        if not isinstance(el.tag, str):
            continue
        local = el.tag.rpartition("}")[2].lower()
        if local in ("md5", "checksum", "contentmd5"):
            text = (el.text or "").strip()
            if _MD5.match(text):
                return text.lower()
    return None


def parse_statement(data: bytes, *, url: str | None = None) -> Statement:
    """State and files of a container, from an Atom feed statement or an OAI-ORE one."""
    root = _parse(data, "statement", url)
    if root.tag == f"{{{RDF}}}RDF":
        return _parse_ore_statement(root, url)
    if root.tag != _a("feed"):
        raise DepositError(f"not a statement (root element {root.tag})", resource=url)
    state: str | None = None
    description: str | None = None
    state_el = root.find(f".//{_s('state')}")
    if state_el is not None and state_el.get("href"):
        state = _last_segment(state_el.get("href") or "")
        description = _child_text(state_el, _s("stateDescription"))
    files: list[StatementFile] = []
    for entry in root.findall(_a("entry")):
        content = entry.find(_a("content"))
        src = content.get("src") if content is not None else None
        if not src:
            continue
        iri = _join(url, src)
        ctype = content.get("type") if content is not None else None
        name = _child_text(entry, _a("title")) or _last_segment(iri)
        files.append(StatementFile(iri=iri, name=name, content_type=ctype, md5=_entry_md5(entry)))
    return Statement(state=state, files=files, state_description=description)


def held_files(statement: Statement) -> list[HeldFile]:
    """The statement's files as the contracts name them (no size: statements give none)."""
    return [HeldFile(ref=f.iri or None, name=f.name, md5=f.md5) for f in statement.files]


def _parse_ore_statement(root: Element, url: str | None) -> Statement:
    about = f"{{{RDF}}}about"
    resource = f"{{{RDF}}}resource"
    aggregated: list[str] = []
    state: str | None = None
    description: str | None = None
    formats: dict[str, str] = {}
    for desc in root:
        subject = desc.get(about)
        for prop in desc:
            if prop.tag == f"{{{ORE}}}aggregates" and prop.get(resource):
                aggregated.append(_join(url, prop.get(resource) or ""))
            elif prop.tag == _s("state") and prop.get(resource) and state is None:
                state = _last_segment(prop.get(resource) or "")
                description = _child_text(desc, _s("stateDescription"))
            elif prop.tag == f"{{{DCTERMS}}}format" and subject and prop.text:
                formats[_join(url, subject)] = prop.text.strip()
    files: list[StatementFile] = []
    seen: set[str] = set()
    for iri in aggregated:
        if iri in seen:
            continue
        seen.add(iri)
        files.append(StatementFile(iri=iri, name=_last_segment(iri), content_type=formats.get(iri)))
    return Statement(state=state, files=files, state_description=description)


@dataclass(frozen=True)
class CollectionEntry:
    edit_iri: str
    slug: str | None
    identifiers: list[str]
    title: str | None


def parse_collection_feed(data: bytes, *, url: str | None = None) -> list[CollectionEntry]:
    """The containers listed in a collection feed; entries without an Edit-IRI are skipped."""
    root = _parse(data, "collection feed", url)
    if root.tag != _a("feed"):
        raise DepositError(f"not a collection feed (root element {root.tag})", resource=url)
    result: list[CollectionEntry] = []
    for entry in root.findall(_a("entry")):
        edit = None
        for link in entry.findall(_a("link")):
            if (link.get("rel") or "").strip() == "edit" and link.get("href"):
                edit = _join(url, link.get("href") or "")
                break
        if edit is None:
            continue
        identifiers: list[str] = []
        for el in entry.findall(f"{{{DCTERMS}}}identifier"):
            text = "".join(el.itertext()).strip()
            if text and text not in identifiers:
                identifiers.append(text)
        result.append(
            CollectionEntry(
                edit_iri=edit,
                slug=_child_text(entry, _s("slug")),
                identifiers=identifiers,
                title=_child_text(entry, _a("title")),
            )
        )
    return result


def feed_next_link(data: bytes, *, url: str | None = None) -> str | None:
    """The ``rel="next"`` page of a paged feed, if any."""
    root = _parse(data, "collection feed", url)
    for link in root.findall(_a("link")):
        if (link.get("rel") or "").strip() == "next" and link.get("href"):
            return _join(url, link.get("href") or "")
    return None


_TAGS = re.compile(r"<[^>]*>")


def parse_error(status: int, data: bytes, content_type: str | None) -> tuple[str | None, str]:
    """``(sword:error href, readable message)`` of an error answer; never raises."""
    looks_xml = "xml" in (content_type or "").lower() or data.lstrip()[:1] == b"<"
    if data and looks_xml:
        root: Element | None
        try:
            root = _parse(data, "error document", None)
        except DepositError:  # any refusal or parse failure: fall back to plain text
            root = None
        if root is not None and root.tag == _s("error"):
            href = root.get("href")
            title, summary, verbose = (
                _SPACE_RUN.sub(" ", _child_text(root, tag) or "")
                for tag in (_a("title"), _a("summary"), _s("verboseDescription"))
            )
            # the summary says it best; a title is often just "ERROR"
            parts = [summary or title]
            if verbose and verbose not in parts[0] and parts[0] not in verbose:
                parts.append(verbose)
            message = ": ".join(p for p in parts if p) or _error_name(href) or f"HTTP {status}"
            return href, _cap(message, 500)
    text = data.decode("utf-8", errors="replace")
    if "html" in (content_type or "").lower() or text.lstrip().startswith("<"):
        text = _TAGS.sub(" ", text)
    text = _SPACE_RUN.sub(" ", text).strip()
    return None, _cap(text, 200) if text else f"HTTP {status}"


_SPACE_RUN = re.compile(r"\s+")


def _error_name(href: str | None) -> str | None:
    return _last_segment(href) if href else None


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "APP",
    "ATOM",
    "ENTRY_CONTENT_TYPE",
    "REL_ADD",
    "REL_STATEMENT",
    "SWORD",
    "CollectionEntry",
    "CollectionInfo",
    "Receipt",
    "ServiceDocument",
    "Statement",
    "StatementFile",
    "build_entry",
    "container_id",
    "feed_next_link",
    "parse_collection_feed",
    "parse_error",
    "parse_receipt",
    "parse_service_document",
    "parse_statement",
]
