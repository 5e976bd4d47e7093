"""What a DSpace 7 OAI-PMH data provider says about a ``SourceModel``: records, bundles, sets.

Pure data, stdlib only: the HTTP side is ``oai_provider.py``. DSpace items (``style="dspace"``)
become OAI records ``oai:dspace.test:{handle}``; each ORIGINAL file gets the derivatives
DSpace's media filters make (TEXT ``{name}.txt``, a THUMBNAIL ``{name}.jpg`` for PDFs and
images) and each item with files one LICENSE ``license.txt``; bitstreams live at
``{base}/server/api/core/bitstreams/{uuid}/content``. Metadata documents come from
``fixtures.render_metadata`` (oai_dc, qdc, dim); ``ore`` and ``mets`` are written here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .fixtures import DSPACE_PREFIX, FixtureItem, SourceModel, render_metadata, w3c, xesc

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
ID_PREFIX = "oai:dspace.test:"
BITSTREAMS = "/server/api/core/bitstreams"
COMMUNITY = f"{DSPACE_PREFIX}/1"
FORMATS: dict[str, tuple[str, str]] = {  # prefix -> (namespace, schema)
    "oai_dc": (
        "http://www.openarchives.org/OAI/2.0/oai_dc/",
        "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
    ),
    "qdc": ("http://purl.org/dc/terms/", "http://dublincore.org/schemas/xmls/qdc/dcterms.xsd"),
    "dim": ("http://www.dspace.org/xmlns/dspace/dim", "http://www.dspace.org/schema/dim.xsd"),
    "mods": ("http://www.loc.gov/mods/v3", "http://www.loc.gov/standards/mods/v3/mods-3-1.xsd"),
    "mets": ("http://www.loc.gov/METS/", "http://www.loc.gov/standards/mets/mets.xsd"),
    "ore": (
        "http://www.w3.org/2005/Atom",
        "http://tweety.lanl.gov/public/schemas/2008-06/atom-tron.sch",
    ),
}


@dataclass(frozen=True)
class Bitstream:
    uuid: str
    name: str
    bundle: str  # ORIGINAL | TEXT | THUMBNAIL | LICENSE
    mime: str
    content: bytes

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content).hexdigest()


@dataclass(frozen=True)
class OaiRecord:
    """One record as the provider lists it (a snapshot: rendering needs nothing live)."""

    identifier: str
    datestamp: datetime
    sets: tuple[str, ...]
    deleted: bool
    item: FixtureItem | None  # None for deleted records


def set_spec(handle: str, kind: str = "col") -> str:
    return f"{kind}_{handle.replace('/', '_')}"


def oai_id(handle: str) -> str:
    return ID_PREFIX + handle


def _derived_uuid(fid: str, bundle: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fid}/{bundle}"))


def bitstreams(item: FixtureItem) -> list[Bitstream]:
    """ORIGINAL files, then their derivatives, as DSpace's media filters would make them."""
    out = [Bitstream(f.fid, f.name, "ORIGINAL", f.mime, f.content) for f in item.files]
    for f in item.files:
        text = f"Extracted text of {f.name} ({hashlib.md5(f.content).hexdigest()})\n"
        out.append(
            Bitstream(
                _derived_uuid(f.fid, "TEXT"),
                f"{f.name}.txt",
                "TEXT",
                "text/plain",
                text.encode("utf-8"),
            )
        )
        if f.mime in ("application/pdf", "image/png"):
            thumb = b"\xff\xd8\xff\xe0" + hashlib.sha256(f.content).digest() + b"\xff\xd9"
            out.append(
                Bitstream(
                    _derived_uuid(f.fid, "THUMBNAIL"),
                    f"{f.name}.jpg",
                    "THUMBNAIL",
                    "image/jpeg",
                    thumb,
                )
            )
    if item.files:
        out.append(
            Bitstream(
                _derived_uuid(item.key, "LICENSE"),
                "license.txt",
                "LICENSE",
                "text/plain; charset=utf-8",
                b"NOTICE: deposit licence granted.\n",
            )
        )
    return out


def item_sets(item: FixtureItem) -> tuple[str, ...]:
    """DSpace lists the owning collection and its community (community first, as xoai)."""
    sets = [set_spec(COMMUNITY, "com")]
    if item.collection:
        sets.append(set_spec(item.collection))
    return tuple(sets)


def all_sets(model: SourceModel) -> list[tuple[str, str]]:
    out = [(set_spec(COMMUNITY, "com"), "Test Community")]
    out += [(set_spec(c), f"Collection {c}") for c in sorted(model.collections())]
    return out


def records(model: SourceModel) -> list[OaiRecord]:
    """Live items and deleted ones, in datestamp order (then identifier)."""
    with model.lock:
        out = [
            OaiRecord(oai_id(it.key), it.lastmod, item_sets(it), False, it)
            for it in model.items.values()
            if it.style == "dspace"
        ]
        gone: dict[str, OaiRecord] = {}
        for ev in model._events:
            if (
                ev.change == "deleted"
                and ev.rid == ("meta", "oai_dc")
                and ev.item.key not in model.items
            ):
                gone[ev.item.key] = OaiRecord(
                    oai_id(ev.item.key), ev.dt, item_sets(ev.item), True, None
                )
    out.extend(gone.values())
    out.sort(key=lambda r: (r.datestamp, r.identifier))
    return out


def datestamp(when: datetime, granularity: str) -> str:
    when = when.astimezone(UTC)
    return (
        when.strftime("%Y-%m-%d") if granularity == "day" else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def bitstream_url(base: str, b: Bitstream) -> str:
    return f"{base}{BITSTREAMS}/{b.uuid}/content"


def _strip_declaration(doc: bytes) -> str:
    text = doc.decode("utf-8")
    if text.startswith("<?xml"):
        text = text.split("?>", 1)[1].lstrip()
    return text.rstrip()


def render_ore(item: FixtureItem, base: str) -> str:
    """DSpace's ORE resource map: an Atom entry aggregating every bitstream of every bundle."""
    page = f"{base}/handle/{item.key}"
    bits = bitstreams(item)
    lines = [
        '<atom:entry xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:ore="http://www.openarchives.org/ore/terms/" '
        'xmlns:oreatom="http://www.openarchives.org/ore/atom/" '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">',
        f"  <atom:id>{xesc(page)}/ore.xml</atom:id>",
        f'  <atom:link rel="alternate" href="{xesc(page)}"/>',
        '  <atom:link rel="http://www.openarchives.org/ore/terms/describes" '
        f'href="{xesc(page)}/ore.xml"/>',
        f'  <atom:link rel="edit" href="{xesc(page)}/ore.xml#atom"/>',
        "  <atom:source><atom:generator>DSpace</atom:generator></atom:source>",
        f"  <atom:published>{w3c(item.lastmod)}</atom:published>",
        f"  <atom:updated>{w3c(item.lastmod)}</atom:updated>",
        f"  <atom:title>{xesc(item.title)}</atom:title>",
        *(f"  <atom:author><atom:name>{xesc(c)}</atom:name></atom:author>" for c in item.creators),
        '  <atom:category scheme="http://www.openarchives.org/ore/terms/" '
        'term="http://www.openarchives.org/ore/terms/Aggregation" label="Aggregation"/>',
    ]
    for b in bits:
        lines.append(
            '  <atom:link rel="http://www.openarchives.org/ore/terms/aggregates" '
            f'href="{xesc(bitstream_url(base, b))}" title="{xesc(b.name)}" '
            f'type="{xesc(b.mime)}" length="{len(b.content)}"/>'
        )
    lines.append("  <oreatom:triples>")
    lines.append(
        f'    <rdf:Description rdf:about="{xesc(page)}/ore.xml#atom">'
        '<rdf:type rdf:resource="http://www.dspace.org/objectModel/DSpaceItem"/>'
        f"<dcterms:modified>{w3c(item.lastmod)}</dcterms:modified></rdf:Description>"
    )
    for b in bits:
        lines.append(
            f'    <rdf:Description rdf:about="{xesc(bitstream_url(base, b))}">'
            '<rdf:type rdf:resource="http://www.dspace.org/objectModel/DSpaceBitstream"/>'
            f"<dcterms:description>{b.bundle}</dcterms:description></rdf:Description>"
        )
    lines.append("  </oreatom:triples>")
    lines.append("</atom:entry>")
    return "\n".join(lines)


def render_mets(item: FixtureItem, base: str) -> str:
    """DSpace's METS: a DIM dmdSec and a fileSec with one fileGrp per bundle, MD5 each."""
    dim = _strip_declaration(render_metadata(item, "dim", base))
    lines = [
        '<mets xmlns="http://www.loc.gov/METS/" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'ID="DSpace_ITEM_{item.key.replace("/", "-")}" OBJID="hdl:{xesc(item.key)}" '
        'PROFILE="DSPACE METS SIP Profile 1.0">',
        f'  <metsHdr CREATEDATE="{w3c(item.lastmod)}" LASTMODDATE="{w3c(item.lastmod)}">'
        '<agent ROLE="CUSTODIAN" TYPE="ORGANIZATION"><name>Test Repository</name></agent>'
        "</metsHdr>",
        f'  <dmdSec ID="DMD_{item.key.replace("/", "_")}"><mdWrap MDTYPE="OTHER" '
        f'OTHERMDTYPE="DIM"><xmlData>{dim}</xmlData></mdWrap></dmdSec>',
        "  <fileSec>",
    ]
    bits = bitstreams(item)
    for bundle in ("ORIGINAL", "TEXT", "THUMBNAIL", "LICENSE"):
        group = [b for b in bits if b.bundle == bundle]
        if not group:
            continue
        lines.append(f'    <fileGrp USE="{bundle}">')
        for b in group:
            lines.append(
                f'      <file ID="BITSTREAM_{bundle}_{b.uuid}" MIMETYPE="{xesc(b.mime)}" '
                f'SIZE="{len(b.content)}" CHECKSUM="{b.md5}" CHECKSUMTYPE="MD5">'
                f'<FLocat LOCTYPE="URL" xlink:type="simple" xlink:title="{xesc(b.name)}" '
                f'xlink:href="{xesc(bitstream_url(base, b))}"/></file>'
            )
        lines.append("    </fileGrp>")
    lines.append("  </fileSec>")
    lines.append("</mets>")
    return "\n".join(lines)


def render_record_metadata(item: FixtureItem, prefix: str, base: str) -> str:
    if prefix == "ore":
        return render_ore(item, base)
    if prefix == "mets":
        return render_mets(item, base)
    return _strip_declaration(render_metadata(item, prefix, base))


def render_header(r: OaiRecord, granularity: str) -> str:
    status = ' status="deleted"' if r.deleted else ""
    sets = "".join(f"<setSpec>{xesc(s)}</setSpec>" for s in r.sets)
    return (
        f"<header{status}><identifier>{xesc(r.identifier)}</identifier>"
        f"<datestamp>{datestamp(r.datestamp, granularity)}</datestamp>{sets}</header>"
    )


def render_record(r: OaiRecord, prefix: str, base: str, granularity: str) -> str:
    header = render_header(r, granularity)
    if r.deleted or r.item is None:
        return f"<record>{header}</record>"
    body = render_record_metadata(r.item, prefix, base)
    return f"<record>{header}<metadata>{body}</metadata></record>"
