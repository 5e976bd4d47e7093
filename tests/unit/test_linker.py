"""Linker: grouping a source's resources into items (records + files), pure."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.crosswalk import DCTERMS, DIM, OAI_DC, QDC
from sync.linker import LinkGraph, build_item, link, order_metadata
from sync.model import Entry, Link

BASE = "https://src.example/rs"
COLL = "https://src.example/handle/123456789/1"
PROFILES = {"qdc": QDC, "oai_dc": OAI_DC, "dim": DIM}


def ln(rel: str, href: str, type: str | None = None) -> Link:
    return Link(rel=rel, href=href, type=type)


def dspace_item(
    handle: str, bitstreams: Iterable[str], formats: Iterable[str] = ("dim", "oai_dc", "qdc")
) -> list[Entry]:
    """The DSpace 7 module's layout for one item."""
    formats = list(formats)
    bitstreams = list(bitstreams)
    records = {f: f"{BASE}/resource/{handle}/{f}" for f in formats}
    out = []
    for fmt, loc in records.items():
        links = [ln("profile", PROFILES[fmt]), ln("collection", COLL)]
        links += [ln("describes", f"{BASE}/bitstreams/{b}") for b in bitstreams]
        links += [ln("alternate", other, "application/xml") for other in records.values()]
        out.append(Entry(loc=loc, type="application/xml", links=tuple(links)))
    for b in bitstreams:
        links = [ln("describedby", r) for r in records.values()] + [ln("collection", COLL)]
        out.append(
            Entry(
                loc=f"{BASE}/bitstreams/{b}",
                type="application/pdf",
                hashes=(("md5", "0" * 32),),
                links=tuple(links),
            )
        )
    return out


def test_dspace_layout_one_item_per_handle_with_primary_by_preference() -> None:
    entries = dspace_item("123456789/7", ["b1", "b2"]) + dspace_item("123456789/8", ["b3"])
    items = link(entries)
    assert len(items) == 2
    first, second = items
    assert first.key == f"{BASE}/resource/123456789/7/qdc"
    assert [e.loc for e in first.metadata] == [
        f"{BASE}/resource/123456789/7/qdc",
        f"{BASE}/resource/123456789/7/oai_dc",
        f"{BASE}/resource/123456789/7/dim",
    ]
    assert sorted(e.loc for e in first.files) == [f"{BASE}/bitstreams/b1", f"{BASE}/bitstreams/b2"]
    assert first.collection == COLL
    assert [e.loc for e in second.files] == [f"{BASE}/bitstreams/b3"]
    assert second.primary is not None
    assert second.primary.loc == f"{BASE}/resource/123456789/8/qdc"


def test_custom_preference_changes_the_primary() -> None:
    items = link(dspace_item("123456789/7", ["b1"]), preference=("dim", "oai_dc"))
    assert len(items) == 1
    assert items[0].primary is not None
    assert items[0].primary.loc.endswith("/dim")
    assert items[0].metadata[1].loc.endswith("/oai_dc")
    # a format absent from the preference comes last
    assert items[0].metadata[2].loc.endswith("/qdc")


def test_dspace_item_without_bitstreams_is_one_item_via_alternate() -> None:
    items = link(dspace_item("123456789/9", []))
    assert len(items) == 1
    assert len(items[0].metadata) == 3
    assert items[0].files == []


def test_recipe_layout_schema_link_makes_no_file() -> None:
    rec = Entry(
        loc="https://src.example/md/1.xml",
        links=(ln("describes", "https://src.example/files/1.pdf"), ln("describedBy", DCTERMS)),
    )
    pdf = Entry(
        loc="https://src.example/files/1.pdf",
        links=(ln("describedBy", "https://src.example/md/1.xml"),),
    )
    items = link([pdf, rec])
    assert len(items) == 1
    item = items[0]
    assert [e.loc for e in item.metadata] == ["https://src.example/md/1.xml"]
    assert [e.loc for e in item.files] == ["https://src.example/files/1.pdf"]
    assert all(e.loc != DCTERMS for e in item.members)


def test_record_describedby_schema_alone_is_a_metadata_only_item() -> None:
    rec = Entry(loc="https://src.example/md/2.xml", links=(ln("describedby", DCTERMS),))
    items = link([rec])
    assert len(items) == 1
    assert [e.loc for e in items[0].metadata] == [rec.loc]
    assert items[0].files == []


def test_plain_resources_are_standalone_items_and_can_be_excluded() -> None:
    a = Entry(loc="https://src.example/a.pdf")
    b = Entry(loc="https://src.example/b.pdf", links=(ln("via", "https://elsewhere/x"),))
    items = link([b, a])
    assert [(i.key, [f.loc for f in i.files], i.metadata) for i in items] == [
        (a.loc, [a.loc], []),
        (b.loc, [b.loc], []),
    ]
    assert link([a, b], include_standalone=False) == []


def test_file_of_a_deleted_record_is_an_orphan() -> None:
    record = "https://src.example/md/gone.xml"
    pdf = Entry(loc="https://src.example/files/gone.pdf", links=(ln("describedby", record),))
    assert link([pdf], known=lambda loc: loc == record) == []
    graph = LinkGraph(lambda loc: loc == record)
    graph.add(pdf.loc, pdf.links)
    groups = list(graph.groups())
    assert [(g.kind, g.metadata, g.files) for g in groups] == [("orphan", (), (pdf.loc,))]


def test_file_with_one_deleted_and_one_present_record_stays_with_the_present_one() -> None:
    gone, rec = "https://src.example/md/gone.xml", "https://src.example/md/here.xml"
    pdf = Entry(
        loc="https://src.example/f.pdf", links=(ln("describedby", gone), ln("describedby", rec))
    )
    record = Entry(loc=rec, links=(ln("describes", pdf.loc), ln("profile", QDC)))
    items = link([pdf, record], known=lambda loc: loc == gone)
    assert len(items) == 1
    assert [e.loc for e in items[0].metadata] == [rec]
    assert [e.loc for e in items[0].files] == [pdf.loc]


def test_describedby_an_unknown_url_marks_a_record_not_an_orphan() -> None:
    # never known: a schema, so the resource is itself a record
    pdf = Entry(loc="https://src.example/x.xml", links=(ln("describedby", "https://nowhere/x"),))
    items = link([pdf], known=lambda loc: False)
    assert len(items) == 1
    assert [e.loc for e in items[0].metadata] == [pdf.loc]


def test_two_records_describing_the_same_file_are_one_item() -> None:
    f = "https://src.example/f.bin"
    r1 = Entry(loc="https://src.example/r1", links=(ln("describes", f),))
    r2 = Entry(loc="https://src.example/r2", links=(ln("describes", f),))
    items = link([r1, r2, Entry(loc=f)])
    assert len(items) == 1
    assert sorted(e.loc for e in items[0].metadata) == [r1.loc, r2.loc]
    assert [e.loc for e in items[0].files] == [f]


def test_alternate_between_records_without_files_is_one_item() -> None:
    r1 = Entry(
        loc="https://src.example/r/qdc",
        links=(ln("profile", QDC), ln("alternate", "https://src.example/r/oai_dc")),
    )
    r2 = Entry(
        loc="https://src.example/r/oai_dc",
        links=(ln("profile", OAI_DC), ln("alternate", "https://src.example/r/qdc")),
    )
    items = link([r2, r1])
    assert len(items) == 1
    assert [e.loc for e in items[0].metadata] == [r1.loc, r2.loc]


def test_alternate_between_two_plain_files_does_not_merge_them() -> None:
    a = Entry(
        loc="https://src.example/a.pdf", links=(ln("alternate", "https://src.example/a.txt"),)
    )
    b = Entry(loc="https://src.example/a.txt")
    items = link([a, b])
    assert len(items) == 2


def test_alternate_from_a_record_to_a_plain_resource_does_not_make_it_a_file() -> None:
    rec = Entry(
        loc="https://src.example/r/qdc",
        links=(ln("profile", QDC), ln("alternate", "https://src.example/r.html")),
    )
    page = Entry(loc="https://src.example/r.html")
    items = link([rec, page])
    assert [(i.key, len(i.metadata), len(i.files)) for i in items] == [
        (page.loc, 0, 1),
        (rec.loc, 1, 0),
    ]


def test_rel_values_are_case_insensitive() -> None:
    f = "https://src.example/f.pdf"
    rec = Entry(loc="https://src.example/rec", links=(Link("DESCRIBES", f), Link("Profile", QDC)))
    pdf = Entry(loc=f, links=(Link("DescribedBy", rec.loc),))
    items = link([rec, pdf])
    assert len(items) == 1
    assert [e.loc for e in items[0].metadata] == [rec.loc]
    assert [e.loc for e in items[0].files] == [f]


def test_collection_comes_from_rel_collection() -> None:
    rec = Entry(
        loc="https://src.example/rec",
        links=(
            ln("profile", QDC),
            ln("up", "https://src.example/capabilitylist.xml"),
            ln("collection", "https://src.example/handle/1/42"),
        ),
    )
    items = link([rec])
    assert items[0].collection == "https://src.example/handle/1/42"
    assert link([Entry(loc="https://src.example/x")])[0].collection is None


def test_collection_from_a_file_when_records_have_none() -> None:
    f = "https://src.example/f.pdf"
    rec = Entry(loc="https://src.example/rec", links=(ln("describes", f),))
    pdf = Entry(loc=f, links=(ln("collection", "https://src.example/handle/1/9"),))
    assert link([rec, pdf])[0].collection == "https://src.example/handle/1/9"


def test_self_links_are_ignored() -> None:
    a = Entry(loc="https://src.example/a", links=(ln("describes", "https://src.example/a"),))
    items = link([a])
    assert len(items) == 1
    assert [e.loc for e in items[0].files] == [a.loc]


def test_order_metadata_by_format_then_url() -> None:
    e_dim = Entry(loc="https://s/x/dim")
    e_qdc = Entry(loc="https://s/x/qdc")
    e_unknown = Entry(loc="https://s/x/mods")
    e_old = Entry(loc="https://s/123?format=oai_dc")
    ordered = order_metadata([e_unknown, e_dim, e_old, e_qdc], ("qdc", "dcterms", "oai_dc", "dim"))
    assert [e.loc for e in ordered] == [e_qdc.loc, e_old.loc, e_dim.loc, e_unknown.loc]


def test_build_item_uses_a_given_key() -> None:
    entries = {e.loc: e for e in dspace_item("1/2", ["b"])}
    graph = LinkGraph()
    for e in entries.values():
        graph.add(e.loc, e.links)
    (group,) = list(graph.groups())
    assert group.kind == "item"
    assert set(group.locs) == set(entries)
    item = build_item(group, entries, key="stable-key")
    assert item.key == "stable-key"
    assert item.primary is not None and item.primary.loc.endswith("/qdc")


# -- property: groups partition the present resources ---------------------------------------

RELS = ["describes", "describedby", "describedBy", "alternate", "profile", "collection", "via"]
N_LOCS = 8


@st.composite
def graphs(draw: st.DrawFn) -> tuple[set[int], list[tuple[int, str, int]], set[int]]:
    present = draw(st.sets(st.integers(0, N_LOCS - 1), max_size=N_LOCS))
    edges = draw(
        st.lists(
            st.tuples(
                st.integers(0, N_LOCS - 1), st.sampled_from(RELS), st.integers(0, N_LOCS + 1)
            ),
            max_size=30,
        )
    )
    known = draw(st.sets(st.integers(0, N_LOCS + 1)))
    return present, edges, known


def _loc(i: int) -> str:
    return f"https://src.example/r/{i}"


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_groups_are_disjoint_and_cover_only_present_resources(
    g: tuple[set[int], list[tuple[int, str, int]], set[int]],
) -> None:
    present, edges, known = g
    known_locs = {_loc(i) for i in known}
    graph = LinkGraph(lambda loc: loc in known_locs)
    for i in sorted(present):
        graph.add(_loc(i), [Link(rel, _loc(d)) for s, rel, d in edges if s == i])
    seen: list[str] = []
    for group in graph.groups():
        assert group.kind in ("item", "standalone", "orphan")
        assert group.locs, "empty group"
        if group.kind == "item":
            assert group.metadata
        else:
            assert not group.metadata
        if group.kind == "standalone":
            assert len(group.files) == 1
        seen.extend(group.locs)
    assert len(seen) == len(set(seen)), "a resource landed in two groups"
    present_locs = {_loc(i) for i in present}
    assert set(seen) <= present_locs
    # every present resource is placed somewhere (items, standalone or orphan)
    assert set(seen) == present_locs
    # and link() builds one item per non-orphan group without duplicating members
    entries = [
        Entry(loc=_loc(i), links=tuple(Link(rel, _loc(d)) for s, rel, d in edges if s == i))
        for i in sorted(present)
    ]
    members = [
        e.loc for item in link(entries, known=lambda loc: loc in known_locs) for e in item.members
    ]
    assert len(members) == len(set(members))


def test_older_dspace_records_by_format_query_make_one_item() -> None:
    """DSpace 5/6 module: records at {base}/{handle}?format={prefix}, describedby the bare
    format name; an item without bitstreams has nothing else tying its formats together."""
    from sync.linker import link, record_family
    from sync.model import Entry, Link

    base = "http://old.example/rs/123456789/7"
    records = [
        Entry(
            loc=f"{base}?format={fmt}",
            links=(Link("describedby", f"http://old.example/rs/123456789/{fmt}"),),
        )
        for fmt in ("oai_dc", "qdc")
    ]
    other = Entry(
        loc="http://old.example/rs/123456789/8?format=oai_dc",
        links=(Link("describedby", "http://old.example/rs/123456789/oai_dc"),),
    )
    items = link([*records, other])
    assert len(items) == 2
    seven = next(it for it in items if "/7" in it.key)
    assert [e.loc for e in seven.metadata] == [f"{base}?format=qdc", f"{base}?format=oai_dc"]
    assert not seven.files
    assert record_family(f"{base}?format=dim") == base
    assert record_family("http://x/resource/1/2/oai_dc") == "http://x/resource/1/2"
    assert record_family("http://x/files/report.pdf") is None
