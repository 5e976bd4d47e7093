"""OaiPmhSource against the local DSpace-like OAI-PMH provider, over HTTP.

Outcomes asserted: which records and files the source lists, the bytes ``fetch`` gives (names
and MD5s against the fixture model), what the crosswalk reads from the metadata, and what a
refused or broken answer leaves behind (a partial pass, never a crash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sync.contracts import Source
from sync.crosswalk import read_metadata
from sync.errors import DocumentError, IntegrityError, MetadataError, OutsideSourceError
from sync.fetcher import Fetcher
from sync.http import Http, HttpSettings, host_key
from sync.linker import link as link_items
from sync.model import Entry, Item
from sync.sources.oai_pmh.protocol import ListingLoopError, OaiError
from sync.sources.oai_pmh.source import OaiPmhSource, detect
from tests.servers.base import FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.oai_documents import bitstreams, oai_id, records, render_record
from tests.servers.oai_provider import OaiProvider

Factory = Callable[..., OaiProvider]


@pytest.fixture
def provider() -> Iterator[Factory]:
    started: list[OaiProvider] = []

    def start(model: SourceModel, **kw: object) -> OaiProvider:
        p = OaiProvider(model, **kw).start()  # type: ignore[arg-type]
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def model(n: int = 12, seed: int = 5) -> SourceModel:
    return SourceModel.generate(n, seed=seed, styles=("dspace",))


def source(
    p: OaiProvider, tmp_path: Path, sleeps: list[float] | None = None, **kw: object
) -> OaiPmhSource:
    settings = HttpSettings(backoff_initial=0.01, backoff_max=5, attempts=4)
    http = Http(
        settings=settings,
        allowed_hosts={host_key(p.base_url)},
        sleep=sleeps.append if sleeps is not None else (lambda _s: None),
    )
    fetcher = Fetcher(http, max_file_size=10 << 20, tmpdir=str(tmp_path))
    return OaiPmhSource(p.base_url, http=http, fetcher=fetcher, tmpdir=str(tmp_path), **kw)  # type: ignore[arg-type]


def is_meta(e: Entry) -> bool:
    return "verb=GetRecord" in e.loc


def identifier(e: Entry) -> str:
    return parse_qs(urlsplit(e.loc).query)["identifier"][0]


def harvest(src: OaiPmhSource) -> tuple[dict[str, Entry], dict[str, Entry], list[object]]:
    listing = src.listing()
    metas: dict[str, Entry] = {}
    files: dict[str, Entry] = {}
    for e in listing:
        target = metas if is_meta(e) else files
        assert e.loc not in target, f"{e.loc} listed twice"
        target[e.loc] = e
    return metas, files, list(listing.errors)


def fetched_files(src: OaiPmhSource, meta: Entry, files: dict[str, Entry]) -> dict[str, str]:
    out: dict[str, str] = {}
    for link in meta.links_with("describes"):
        got = src.fetch(files[link.href])
        try:
            out[got.filename] = hashlib.md5(got.path.read_bytes()).hexdigest()
        finally:
            got.discard()
    return out


# -- listing -----------------------------------------------------------------------------------
def test_listing_gives_every_record_with_only_its_original_files(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(14)
    p = provider(m, page_size=4)
    src = source(p, tmp_path)
    metas, files, errors = harvest(src)
    assert errors == []
    assert src.metadata_prefix == "dim" and src.files_prefix == "mets"
    assert {identifier(e) for e in metas.values()} == {oai_id(k) for k in m.items}
    assert p.stats["GET"] >= 4  # several pages were read
    derived = {b.uuid for it in m.items.values() for b in bitstreams(it) if b.bundle != "ORIGINAL"}
    assert not any(u in loc for u in derived for loc in files)
    some_files = 0
    for meta in metas.values():
        item = m.items[identifier(meta).removeprefix("oai:dspace.test:")]
        got = fetched_files(src, meta, files)
        assert got == {f.name: f.md5 for f in item.files}
        some_files += len(got)
        for link in meta.links_with("describes"):
            entry = files[link.href]
            assert entry.hash("md5") == next(f.md5 for f in item.files if f.fid in link.href)
            assert entry.links_with("describedby")[0].href == meta.loc
    assert some_files > 5


def test_listing_streams_page_by_page(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(12), page_size=3)
    src = source(p, tmp_path)
    listing = src.listing()
    first = next(iter(listing))
    assert is_meta(first)
    lists = [path for path in p.requests if "verb=ListRecords" in path]
    # streamed: the first page, and at most the next one read ahead while it is used up
    assert 1 <= len(lists) <= 2
    rest = list(listing)
    assert len([path for path in p.requests if "verb=ListRecords" in path]) == 4
    assert listing.complete and listing.cursor and rest


def test_metadata_is_fetched_in_the_richest_format_and_crosswalked(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(4)
    p = provider(m)
    src = source(p, tmp_path)
    metas, _files, _ = harvest(src)
    for meta in metas.values():
        item = m.items[identifier(meta).removeprefix("oai:dspace.test:")]
        got = src.fetch(meta)
        try:
            fmt, record = read_metadata(got.path.read_bytes(), url=meta.loc)
        finally:
            got.discard()
        assert fmt == "dim"
        assert record.title == item.title
        assert record.get("creator") == item.creators


def test_configured_metadata_prefix_wins(provider: Factory, tmp_path: Path) -> None:
    m = model(3)
    src = source(provider(m), tmp_path, metadata_prefix="oai_dc")
    metas, _files, _ = harvest(src)
    meta = next(iter(metas.values()))
    assert "metadataPrefix=oai_dc" in meta.loc
    got = src.fetch(meta)
    fmt, record = read_metadata(got.path.read_bytes(), url=meta.loc)
    got.discard()
    assert fmt == "oai_dc" and record.title


def test_identifiers_are_the_handle_uri_and_the_oai_identifier(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(3)
    src = source(provider(m), tmp_path)
    metas, _files, _ = harvest(src)
    meta = next(iter(metas.values()))
    handle = identifier(meta).removeprefix("oai:dspace.test:")
    ids = src.identifiers(Item(key="k", metadata=[meta]))
    assert ids == [f"http://hdl.handle.net/{handle}", f"oai:dspace.test:{handle}"]


def test_ore_gives_the_files_where_mets_is_not_offered(provider: Factory, tmp_path: Path) -> None:
    m = model(9)
    p = provider(m, formats=("oai_dc", "qdc", "ore"))
    src = source(p, tmp_path)
    metas, files, errors = harvest(src)
    assert errors == [] and src.files_prefix == "ore" and src.metadata_prefix == "qdc"
    assert all(not e.hashes and e.length is not None for e in files.values())
    for meta in metas.values():
        item = m.items[identifier(meta).removeprefix("oai:dspace.test:")]
        assert fetched_files(src, meta, files) == {f.name: f.md5 for f in item.files}


def test_link_title_names_a_file_when_the_server_sends_no_disposition(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(9)
    p = provider(m, formats=("oai_dc", "ore"))
    p.content_disposition = False
    src = source(p, tmp_path)
    metas, files, _ = harvest(src)
    names = set()
    for meta in metas.values():
        names |= set(fetched_files(src, meta, files))
    assert names == {f.name for it in m.items.values() for f in it.files}
    assert not any(n == "content" for n in names)


def test_a_repository_without_ore_or_mets_gives_metadata_only_items(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(5)
    src = source(provider(m, formats=("oai_dc",)), tmp_path)
    metas, files, errors = harvest(src)
    assert errors == [] and files == {} and len(metas) == 5
    assert all(not e.links_with("describes") for e in metas.values())
    assert all(e.links_with("profile") for e in metas.values())  # the linker: a record


def test_bundles_choose_what_is_mirrored(provider: Factory, tmp_path: Path) -> None:
    m = model(9)
    src = source(provider(m), tmp_path, bundles=("ORIGINAL", "TEXT"))
    metas, files, _ = harvest(src)
    names: set[str] = set()
    for meta in metas.values():
        names |= set(fetched_files(src, meta, files))
    originals = {f.name for it in m.items.values() for f in it.files}
    assert names == originals | {f"{n}.txt" for n in originals}


# -- incremental -------------------------------------------------------------------------------
def _since(cursor: str | None) -> datetime:
    assert cursor is not None
    return datetime.strptime(cursor, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - timedelta(
        seconds=1
    )


def test_changes_after_creates_updates_and_deletes(provider: Factory, tmp_path: Path) -> None:
    m = model(8)
    p = provider(m, page_size=3)
    src = source(p, tmp_path)
    listing = src.listing()
    list(listing)
    keys = sorted(m.items)
    with_files = [k for k in keys if m.items[k].files]
    new = m.create_item(
        "dspace", files=[m.make_file("new.pdf", b"%PDF-1.4 new", "application/pdf")]
    )
    m.update_metadata(keys[0], title="A new title")
    m.replace_file(with_files[0], 0, b"replaced bytes")
    m.delete_item(keys[1])
    changes = src.changes(_since(listing.cursor))
    assert changes is not None and changes.complete and changes.cursor
    by_id = {identifier(e): e for e in changes.changes if is_meta(e)}
    assert set(by_id) == {oai_id(k) for k in (new.key, keys[0], with_files[0], keys[1])}
    assert by_id[oai_id(keys[1])].change == "deleted"
    assert {by_id[oai_id(k)].change for k in (new.key, keys[0], with_files[0])} == {"updated"}
    replaced = m.items[with_files[0]].files[0]
    file_entry = next(e for e in changes.changes if replaced.fid in e.loc)
    assert file_entry.hash("md5") == hashlib.md5(b"replaced bytes").hexdigest()
    got = src.fetch(file_entry)
    assert got.path.read_bytes() == b"replaced bytes" and got.filename == replaced.name
    got.discard()
    assert [e.change_time for e in changes.changes] == sorted(
        e.change_time for e in changes.changes
    )  # type: ignore[type-var]


def test_day_granularity_asks_from_a_day_and_still_sees_a_second_change_that_day(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(6)
    p = provider(m, granularity="day")
    src = source(p, tmp_path)
    key = sorted(m.items)[2]
    m.update_metadata(key, title="first change today")
    first = src.changes(datetime.now(UTC) - timedelta(minutes=5))
    assert first is not None
    assert any("from=" + datetime.now(UTC).strftime("%Y-%m-%d") in r for r in p.requests)
    assert all("T" not in parse_qs(urlsplit(r).query).get("from", [""])[0] for r in p.requests)
    before = next(e for e in first.changes if is_meta(e) and identifier(e) == oai_id(key))
    assert {identifier(e) for e in first.changes if is_meta(e)} == {oai_id(key)}
    m.update_metadata(key, title="second change today")
    second = src.changes(datetime.now(UTC) - timedelta(minutes=5))
    assert second is not None
    after = next(e for e in second.changes if is_meta(e) and identifier(e) == oai_id(key))
    assert after.fingerprint != before.fingerprint  # the same datestamp, a different version


def test_a_repository_without_deletions_asks_for_a_full_comparison(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(5)
    gone = sorted(m.items)[0]
    m.delete_item(gone)
    p = provider(m, deleted_record="no")
    src = source(p, tmp_path)
    assert src.changes(datetime.now(UTC)) is None
    metas, _files, _ = harvest(src)
    assert oai_id(gone) not in {identifier(e) for e in metas.values()} and len(metas) == 4


def test_deleted_records_are_not_listed_as_present(provider: Factory, tmp_path: Path) -> None:
    m = model(5)
    gone = sorted(m.items)[0]
    m.delete_item(gone)
    src = source(provider(m, deleted_record="persistent"), tmp_path)
    metas, _files, errors = harvest(src)
    assert (
        errors == []
        and len(metas) == 4
        and oai_id(gone) not in {identifier(e) for e in metas.values()}
    )


# -- flow control and broken lists ---------------------------------------------------------------
def test_a_busy_server_is_waited_out_as_it_asks(provider: Factory, tmp_path: Path) -> None:
    m = model(7)
    p = provider(m, page_size=3)
    p.busy, p.retry_after = 2, "3"
    sleeps: list[float] = []
    src = source(p, tmp_path, sleeps=sleeps)
    metas, _files, errors = harvest(src)
    assert errors == [] and len(metas) == 7
    assert len([s for s in sleeps if s >= 3]) == 2  # Retry-After honoured, then repeated
    assert p.stats["busy"] == 2


def test_an_expired_token_restarts_from_the_last_datestamp_without_loss_or_repeat(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(11)
    p = provider(m, page_size=3)
    p.expire_on_page = 3
    src = source(p, tmp_path)
    listing = src.listing()
    metas = [e for e in listing if is_meta(e)]
    assert listing.complete
    ids = [identifier(e) for e in metas]
    assert sorted(ids) == sorted(oai_id(k) for k in m.items)  # nothing lost, nothing twice
    restart = [r for r in p.requests if "verb=ListRecords" in r and "from=" in r]
    assert len(restart) == 1
    sixth = sorted(m.items.values(), key=lambda it: it.lastmod)[5]
    assert parse_qs(urlsplit(restart[0]).query)["from"] == [
        sixth.lastmod.strftime("%Y-%m-%dT%H:%M:%SZ")
    ]


def test_a_token_that_never_changes_stops_the_listing_with_an_error(
    provider: Factory, tmp_path: Path
) -> None:
    p = provider(model(9), page_size=3)
    p.token_loop = True
    src = source(p, tmp_path)
    listing = src.listing()
    entries = list(listing)  # ends: the repeated token is caught on the second page
    assert entries and not listing.complete
    assert len(listing.errors) == 1 and isinstance(listing.errors[0], ListingLoopError)
    assert "came back a second time" in str(listing.errors[0])
    assert len([r for r in p.requests if "verb=ListRecords" in r]) == 2


def test_a_list_that_never_ends_is_stopped(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(4), page_size=2)
    p.endless = True
    src = source(p, tmp_path)
    src.client.max_pages = 6
    listing = src.listing()
    list(listing)
    assert not listing.complete and isinstance(listing.errors[0], ListingLoopError)
    assert len([r for r in p.requests if "verb=ListRecords" in r]) == 6


def test_oai_errors_are_reported_with_their_code_and_text(
    provider: Factory, tmp_path: Path
) -> None:
    p = provider(model(3))
    body = p.error("cannotDisseminateFormat", "mets is switched off", "<request/>")
    p.set_override("ListRecords", body)
    metas, _files, errors = harvest(source(p, tmp_path))
    assert metas == {} and len(errors) == 1 and isinstance(errors[0], OaiError)
    assert errors[0].oai_code == "cannotDisseminateFormat"
    assert "mets is switched off" in str(errors[0])


def test_no_records_match_is_an_empty_result(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(3))
    src = source(p, tmp_path, sets=("col_999_9",))
    listing = src.listing()
    assert list(listing) == [] and listing.complete


# -- sets --------------------------------------------------------------------------------------
def test_sets_select_records_and_name_the_owning_collection_first(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(10)
    src = source(provider(m), tmp_path, sets=("col_123456789_2",))
    metas, _files, _ = harvest(src)
    wanted = {oai_id(k) for k, it in m.items.items() if it.collection == "123456789/2"}
    assert {identifier(e) for e in metas.values()} == wanted
    assert all(e.links_with("collection")[0].href == "col_123456789_2" for e in metas.values())


def test_overlapping_sets_give_each_record_once(provider: Factory, tmp_path: Path) -> None:
    m = model(10)
    src = source(provider(m), tmp_path, sets=("col_123456789_2", "com_123456789_1"))
    metas, _files, errors = harvest(src)  # harvest() fails on a loc listed twice
    assert errors == [] and {identifier(e) for e in metas.values()} == {oai_id(k) for k in m.items}


# -- hostile and broken answers ---------------------------------------------------------------
DTD_PAGE = b"""<?xml version="1.0"?>
<!DOCTYPE OAI-PMH [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-01-01T00:00:00Z</responseDate>
<request>x</request><ListRecords><record><header><identifier>&xxe;</identifier>
<datestamp>2024-01-01T00:00:00Z</datestamp></header></record></ListRecords></OAI-PMH>"""
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Login</body></html>"


def test_dtds_and_entities_are_refused(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(3))
    p.set_override("ListRecords", DTD_PAGE)
    metas, _files, errors = harvest(source(p, tmp_path))
    assert metas == {} and len(errors) == 1 and isinstance(errors[0], DocumentError)
    assert "passwd" not in str(errors[0]).replace("file:///etc/passwd", "")
    assert "DTD" in str(errors[0])


def test_html_and_non_oai_answers_are_refused(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(3))
    p.set_override("Identify", HTML_PAGE, "text/html")
    assert not detect(p.base_url, source(p, tmp_path).http)
    p.set_override("ListRecords", HTML_PAGE, "text/html")
    _m, _f, errors = harvest(source(p, tmp_path))
    assert len(errors) == 1 and "HTML page" in str(errors[0])
    p.set_override("ListRecords", b'<?xml version="1.0"?><rss><channel/></rss>')
    _m, _f, errors = harvest(source(p, tmp_path))
    assert len(errors) == 1 and "not an OAI-PMH response" in str(errors[0])


def test_detect_knows_an_oai_pmh_base_url(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(2))
    http = source(p, tmp_path).http
    assert detect(p.base_url, http)
    assert not detect(p.base_url.replace("/oai/request", "/nothing"), http)


def test_a_file_on_another_host_refuses_its_record_only(provider: Factory, tmp_path: Path) -> None:
    m = model(6)
    p = provider(m)
    victim = sorted(m.items)[1]
    rec = next(r for r in records(m) if r.identifier == oai_id(victim))
    body = render_record(rec, "mets", m.base_url, "seconds")
    body = body.replace('xlink:href="http://127.0.0.1', 'xlink:href="http://203.0.113.9', 1)
    if 'xlink:href="http://203.0.113.9' not in body:  # an item without files: give it one
        body = body.replace(
            "<fileSec>",
            '<fileSec><fileGrp USE="ORIGINAL"><file SIZE="1"><FLocat xlink:href="http://203.0.113.9/x.pdf"/></file></fileGrp>',
        )
    p.record_overrides[oai_id(victim)] = body
    metas, _files, errors = harvest(source(p, tmp_path))
    assert len(errors) == 1 and isinstance(errors[0], OutsideSourceError)
    assert {identifier(e) for e in metas.values()} == {oai_id(k) for k in m.items if k != victim}


def test_tampered_bytes_are_refused_by_the_mets_checksum(provider: Factory, tmp_path: Path) -> None:
    m = model(9)
    p = provider(m)
    item = next(it for it in m.items.values() if any(f.content for f in it.files))
    f = next(f for f in item.files if f.content)
    p.tampered[f.fid] = bytes([f.content[0] ^ 1]) + f.content[1:]
    src = source(p, tmp_path)
    _metas, files, _ = harvest(src)
    entry = next(e for loc, e in files.items() if f.fid in loc)
    with pytest.raises(IntegrityError, match="md5 mismatch"):
        src.fetch(entry)
    assert not list(tmp_path.glob("rsw-*"))  # the bad bytes were discarded


def test_a_record_with_a_bad_checksum_or_length_is_refused(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(6)
    p = provider(m)
    key = next(k for k, it in m.items.items() if it.files)
    rec = next(r for r in records(m) if r.identifier == oai_id(key))
    body = render_record(rec, "mets", m.base_url, "seconds")
    start = body.index('SIZE="') + len('SIZE="')
    body = body[:start] + "-5" + body[body.index('"', start) :]
    p.record_overrides[oai_id(key)] = body
    metas, _files, errors = harvest(source(p, tmp_path))
    assert len(errors) == 1 and "negative file length" in str(errors[0])
    assert oai_id(key) not in {identifier(e) for e in metas.values()}


# -- what the linker makes of it ---------------------------------------------------------------
def test_the_linker_groups_each_record_with_its_files_into_one_item(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(10)
    src = source(provider(m), tmp_path)
    items = link_items(src.listing())
    assert len(items) == len(m.items)
    for item in items:
        assert len(item.metadata) == 1
        handle = identifier(item.metadata[0]).removeprefix("oai:dspace.test:")
        fixture = m.items[handle]
        assert {e.hash("md5") for e in item.files} == {f.md5 for f in fixture.files}
        assert len(item.files) == len(fixture.files)
        assert item.collection == "col_" + (fixture.collection or "").replace("/", "_")


def test_metadata_only_records_are_fingerprinted_by_their_bytes(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(3)
    p = provider(m, formats=("oai_dc",), granularity="day")
    src = source(p, tmp_path)
    items = link_items(src.listing())
    assert len(items) == 3 and all(it.files == [] for it in items)
    meta = items[0].metadata[0]
    got = src.fetch(meta)
    assert meta.hash("md5") == got.md5  # the listed record is the fetched document
    got.discard()
    m.update_metadata(
        identifier(meta).removeprefix("oai:dspace.test:"), title="Same day, new title"
    )
    again = {e.loc: e for e in src.listing()}
    assert again[meta.loc].fingerprint != meta.fingerprint


def test_a_list_of_empty_pages_with_tokens_is_stopped(provider: Factory, tmp_path: Path) -> None:
    p = provider(model(4), page_size=2)
    p.endless = p.empty_pages = True
    listing = source(p, tmp_path).listing()
    entries = list(listing)
    assert entries and isinstance(listing.errors[0], ListingLoopError)
    assert "empty pages" in str(listing.errors[0])


def test_server_faults_are_retried_and_the_mirror_listing_is_whole(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(12)
    faults = FaultPolicy(rate=0.3, kinds=("500", "503", "reset", "truncate"), seed=7)
    p = provider(m, page_size=3, faults=faults)
    src = source(p, tmp_path)
    src.http.settings.attempts = 8
    metas, files, errors = harvest(src)
    assert errors == [] and len(metas) == 12
    for meta in metas.values():
        item = m.items[identifier(meta).removeprefix("oai:dspace.test:")]
        assert fetched_files(src, meta, files) == {f.name: f.md5 for f in item.files}
    assert sum(faults.served.values()) >= 5  # the faults happened, and were absorbed by retries


def test_the_source_meets_the_contract(provider: Factory, tmp_path: Path) -> None:
    src = source(provider(model(2)), tmp_path)
    assert isinstance(src, Source)
    assert src.type_name == "oai-pmh" and src.location.endswith("/server/oai/request")
    assert src.resolve_deleted("anything", lambda _suffix: ["x"]) is None


@pytest.mark.parametrize("policy", ["transient", "persistent"])
def test_deleted_records_delete_their_item_under_both_policies(
    provider: Factory, tmp_path: Path, policy: str
) -> None:
    m = model(5)
    p = provider(m, deleted_record=policy)
    src = source(p, tmp_path)
    start = datetime.now(UTC) - timedelta(seconds=2)
    gone = sorted(m.items)[3]
    m.delete_item(gone)
    changes = src.changes(start)
    assert changes is not None and changes.complete
    assert [(identifier(e), e.change) for e in changes.changes] == [(oai_id(gone), "deleted")]
    assert changes.deleted[0].loc == src.metadata_loc(oai_id(gone))  # the loc the listing gave


def test_a_repository_offering_no_readable_format_is_one_clear_error(
    provider: Factory, tmp_path: Path
) -> None:
    p = provider(model(4), formats=("mods", "mets"))
    listing = source(p, tmp_path).listing()
    assert list(listing) == [] and len(listing.errors) == 1
    assert "offers mods, mets" in str(listing.errors[0])


def test_a_files_record_of_the_wrong_kind_is_refused(provider: Factory, tmp_path: Path) -> None:
    m = model(4)
    p = provider(m)
    victim = sorted(m.items)[0]
    rec = next(r for r in records(m) if r.identifier == oai_id(victim))
    p.record_overrides[oai_id(victim)] = render_record(rec, "oai_dc", m.base_url, "seconds")
    metas, _files, errors = harvest(source(p, tmp_path))
    assert len(errors) == 1 and "is not a METS document" in str(errors[0])
    assert len(metas) == 3


def test_a_hostile_or_missing_metadata_record_fails_its_fetch_only(
    provider: Factory, tmp_path: Path
) -> None:
    m = model(3)
    p = provider(m)
    src = source(p, tmp_path)
    metas, _files, _ = harvest(src)
    meta = next(iter(metas.values()))
    p.set_override("GetRecord", DTD_PAGE.replace(b"ListRecords", b"GetRecord"))
    with pytest.raises(MetadataError, match="DTDs and entities"):
        src.fetch(meta)
    p.clear_overrides()
    m.delete_item(identifier(meta).removeprefix("oai:dspace.test:"))
    with pytest.raises(MetadataError, match="without metadata"):
        src.fetch(meta)  # a deleted record answers with a header only
    assert not list(tmp_path.glob("rsw-*"))


def test_no_changes_is_a_complete_empty_answer_with_a_cursor(
    provider: Factory, tmp_path: Path
) -> None:
    src = source(provider(model(3)), tmp_path)
    changes = src.changes(datetime.now(UTC) + timedelta(days=1))
    assert changes is not None and changes.changes == [] and changes.complete
    assert changes.cursor and changes.cursor.startswith(str(datetime.now(UTC).year))
