"""OAI-PMH through the real CLI (issue #10): the local DSpace-7-like provider mirrored into
the local SWORD v2 server by ``resync-sword`` in a subprocess.

What is asserted is what the SWORD server holds, item by item: the title and creators read
from the metadata record, the ORIGINAL bundle's files by name and MD5 (no TEXT, THUMBNAIL or
LICENSE derivative), the handle URI and the OAI identifier in ``dcterms:identifier``, one
container per record and no other; then the exit codes, ``status --json`` / ``runs --json``,
the cursor in the state DB and the requests the provider saw.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import PASSWORD, Cli
from tests.servers.base import FAULT_KINDS, FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.oai_documents import ID_PREFIX, bitstreams, set_spec
from tests.servers.oai_provider import OaiProvider
from tests.servers.sword_server import StoredContainer, SwordServer

Factory = Callable[..., OaiProvider]
COLLECTION_2 = "123456789/2"
SET_2 = set_spec(COLLECTION_2)  # col_123456789_2
# quick retries for the fault tests (the SWORD server stalls 1.5 s, longer than read_timeout)
FAST_RETRIES = (
    "read_timeout = 1.0\nconnect_timeout = 2.0\nbackoff_initial = 0.05\n"
    "attempts = 5\nmax_retry_seconds = 20\n"
)
DTD_RECORD = b"""<?xml version="1.0"?>
<!DOCTYPE OAI-PMH [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-01-01T00:00:00Z</responseDate>
<request>x</request><GetRecord><record><header><identifier>IDENT</identifier>
<datestamp>2024-01-01T00:00:00Z</datestamp></header><metadata>
<dim:dim xmlns:dim="http://www.dspace.org/xmlns/dspace/dim">
<dim:field mdschema="dc" element="title">&xxe;</dim:field></dim:dim>
</metadata></record></GetRecord></OAI-PMH>"""
ENTITY_RECORD = DTD_RECORD.replace(
    b'<!DOCTYPE OAI-PMH [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n', b""
)
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Login</body></html>"


class HostileProvider(OaiProvider):
    """Answers GetRecord for some identifiers with a hostile document (DTD, entity); the
    listing stays well-formed, as a repository with a few poisoned records would serve it."""

    hostile: dict[str, bytes]

    def answer(self, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        body = getattr(self, "hostile", {}).get(query.get("identifier", ""))
        if query.get("verb") == "GetRecord" and body is not None:
            return 200, body.replace(b"IDENT", query["identifier"].encode()), {}
        return super().answer(query)


@pytest.fixture
def provider() -> Iterator[Factory]:
    started: list[OaiProvider] = []

    def start(
        model: SourceModel, cls: type[OaiProvider] = OaiProvider, **kw: object
    ) -> OaiProvider:
        p = cls(model, **kw).start()  # type: ignore[arg-type]
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


# -- what the destination holds ------------------------------------------------------------------
def dspace_model(n: int, seed: int) -> SourceModel:
    return SourceModel.generate(n, seed=seed, styles=("dspace",))


def by_record(containers: list[StoredContainer]) -> dict[str, StoredContainer]:
    """Handle -> its container; every container carries exactly one OAI identifier and the
    matching handle URI, and no record has two containers."""
    out: dict[str, StoredContainer] = {}
    for c in containers:
        ids = c.dc.get("identifier", [])
        oai = [i for i in ids if i.startswith(ID_PREFIX)]
        assert len(oai) == 1, f"{c.id}: identifiers {ids}"
        handle = oai[0].removeprefix(ID_PREFIX)
        assert f"http://hdl.handle.net/{handle}" in ids, f"{c.id}: no handle URI in {ids}"
        assert handle not in out, f"{handle} deposited twice ({out[handle].id}, {c.id})"
        out[handle] = c
    return out


def assert_mirror(
    sword: SwordServer,
    model: SourceModel,
    keys: set[str] | None = None,
    collection: str | None = None,
) -> dict[str, StoredContainer]:
    """The destination (or one collection) holds exactly the items ``keys`` (default: all),
    each with its title, creators and ORIGINAL files byte for byte, nothing else."""
    held = by_record(sword.store.containers(collection))
    want = set(model.items) if keys is None else keys
    assert set(held) == want
    for key in want:
        item, c = model.items[key], held[key]
        assert c.state == "archived"
        assert c.dc.get("title") == [item.title], key
        assert c.dc.get("creator", []) == item.creators, key
        files = {f.name: hashlib.md5(f.path.read_bytes()).hexdigest() for f in c.files}
        assert files == {f.name: f.md5 for f in item.files}, key
        derived = {(b.name, b.md5) for b in bitstreams(item) if b.bundle != "ORIGINAL"}
        assert not derived & set(files.items()), f"{key}: a derivative was mirrored"
    return held


def writes(sword: SwordServer) -> int:
    return sum(sword.stats.get(m, 0) for m in ("POST", "PUT", "DELETE"))


def status_json(cli: Cli) -> dict:
    result = cli("status", "--state", str(cli.state), "--json")
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)


def runs_json(cli: Cli) -> list[dict]:
    return json.loads(cli("runs", "--state", str(cli.state), "--json").stdout)


def cursors(state: Path) -> list[str | None]:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT cursor FROM runs ORDER BY id")]
    finally:
        db.close()


def list_requests(p: OaiProvider) -> list[dict[str, str]]:
    """The arguments of every ListRecords request the provider answered, in order."""
    out = []
    for path in list(p.requests):
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        if query.get("verb") == "ListRecords":
            out.append(query)
    return out


def incremental(cli: Cli, *extra: str) -> object:
    return cli("incremental", "--state", str(cli.state), "--rate", "0", *extra)


def pipeline_file(
    path: Path, p: OaiProvider, sword: SwordServer, state: Path, extra: str = ""
) -> Path:
    path.write_text(
        f'state = "{state}"\n'
        "[source]\n"
        'type = "oai-pmh"\n'
        f'base_url = "{p.base_url}"\n'
        'bundles = ["ORIGINAL"]\n'
        "[destination]\n"
        'type = "sword"\n'
        f'service_document = "{sword.sd_iri}"\n'
        f'collection = "{sword.col_iri("default")}"\n'
        'username = "sword"\n'
        'password_env = "SWORD_PASSWORD"\n' + extra,
        encoding="utf-8",
    )
    return path


# -- 1. baseline ---------------------------------------------------------------------------------
def test_baseline_detects_oai_pmh_mirrors_original_files_and_a_rerun_is_a_noop(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(12, seed=5)
    p = provider(model, page_size=5)
    first = cli.baseline(p.base_url, sword)
    assert first.returncode == 0, first.output
    held = assert_mirror(sword, model)
    assert sum(len(c.files) for c in held.values()) > 5
    assert any(not f.path.read_bytes() for c in held.values() for f in c.files)  # empty file
    assert len(list_requests(p)) == 3  # 12 records, 5 a page: the listing followed tokens
    assert "verb=Identify" in p.requests[0]  # detected
    saved = json.loads(
        sqlite3.connect(f"file:{cli.state}?mode=ro", uri=True)
        .execute("SELECT value FROM meta WHERE key = 'pipeline'")
        .fetchone()[0]
    )
    assert saved["source_type"] == "oai-pmh"
    status = status_json(cli)
    assert status["items"] == {"complete": 12} and status["not_synced"] == []
    assert status["runs"][-1]["created"] == 12 and status["runs"][-1]["status"] == "ok"

    # again, the type named: nothing is sent to the destination, nothing changes
    sword.reset_stats()
    second = cli.baseline(p.base_url, sword, "--source-type", "oai-pmh")
    assert second.returncode == 0, second.output
    assert writes(sword) == 0
    assert assert_mirror(sword, model).keys() == held.keys()
    assert {c.id for c in sword.store.containers()} == {c.id for c in held.values()}
    assert [(r["created"], r["unchanged"]) for r in runs_json(cli)] == [(12, 0), (0, 12)]

    audit = cli("audit", "--state", str(cli.state))
    assert audit.returncode == 0, audit.output


def test_baseline_with_the_type_named_and_a_metadata_prefix(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(6, seed=8)
    p = provider(model, page_size=5)
    result = cli.baseline(
        p.base_url, sword, "--source-type", "oai-pmh", "--metadata-prefix", "oai_dc"
    )
    assert result.returncode == 0, result.output
    assert not any("verb=Identify" in path for path in p.requests)  # nothing to detect
    assert any("metadataPrefix=oai_dc" in path for path in p.requests if "GetRecord" in path)
    assert_mirror(sword, model)


# -- 2. incremental --------------------------------------------------------------------------------
def _a_day_of_changes(model: SourceModel) -> dict[str, int]:
    """Two new records, a metadata update, a file replaced, a file added, a file removed
    (from an item with two, and the only file of another), a record deleted (each on its own
    item)."""
    keys = sorted(model.items)
    one_file = [k for k in keys if len(model.items[k].files) == 1]
    several = [k for k in keys if len(model.items[k].files) >= 2]
    replace, remove, emptied = several[0], several[1], one_file[0]
    rest = [k for k in keys if k not in (replace, remove, emptied)]
    meta, add, gone = rest[0], rest[1], rest[2]
    model.update_metadata(meta, title="Revised title & more", creators=["Nowak, Zoë"])
    model.replace_file(replace, 0, b"new content\n" * 40)
    model.add_file(add, "supplement – données.csv", b"a,b\n1,2\n", "text/csv")
    model.remove_file(remove, model.items[remove].files[-1].name)
    model.remove_file(emptied, model.items[emptied].files[0].name)
    model.delete_item(gone)
    model.create_item("dspace", title="A new thesis (Łódź)")
    model.create_item("dspace")
    return {"created": 2, "updated": 5, "deleted": 1}


@pytest.mark.parametrize("deleted_record", ["persistent", "transient"])
def test_incremental_applies_creates_updates_file_changes_and_deletions(
    cli: Cli, sword: SwordServer, provider: Factory, deleted_record: str
) -> None:
    model = dspace_model(12, seed=11)
    p = provider(model, page_size=5, deleted_record=deleted_record)
    assert cli.baseline(p.base_url, sword).returncode == 0
    before = {k: c.id for k, c in by_record(sword.store.containers()).items()}
    want = _a_day_of_changes(model)
    p.requests.clear()

    result = incremental(cli)
    assert result.returncode == 0, result.output
    held = assert_mirror(sword, model)
    # updated in place: the same containers; the deleted one is gone, two are new
    assert {k: held[k].id for k in before if k in held} == {
        k: v for k, v in before.items() if k in model.items
    }
    last = runs_json(cli)[-1]
    assert last["kind"] == "incremental" and last["status"] == "ok"
    assert {k: last[k] for k in want} == want and last["failed"] == 0
    # the harvest asked for changes only (a `from` argument), not the whole repository
    lists = list_requests(p)
    assert lists and all("from" in q for q in lists if "resumptionToken" not in q)

    # nothing changed since: nothing is sent to the destination
    sword.reset_stats()
    again = incremental(cli)
    assert again.returncode == 0, again.output
    assert writes(sword) == 0
    audit = cli("audit", "--state", str(cli.state))
    assert audit.returncode == 0, audit.output

    # undo of the incremental run removes the two containers it created, nothing else
    run_id = runs_json(cli)[-2]["id"]
    undone = cli("undo", str(run_id), "--state", str(cli.state), "--yes")
    assert undone.returncode == 0, undone.output
    created = {k for k in model.items if k not in before}
    assert len(created) == 2
    assert_mirror(sword, model, set(model.items) - created)


def test_without_deleted_records_the_full_comparison_finds_deletions_under_the_guard(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(10, seed=12)
    p = provider(model, page_size=5, deleted_record="no")
    assert cli.baseline(p.base_url, sword).returncode == 0
    keys = sorted(model.items)
    model.delete_item(keys[0])
    model.update_metadata(keys[1], title="Changed while no deletions are kept")
    p.requests.clear()
    result = incremental(cli)
    assert result.returncode == 0, result.output
    assert_mirror(sword, model)
    assert all("from" not in q for q in list_requests(p))  # a full listing, compared
    last = runs_json(cli)[-1]
    assert (last["deleted"], last["updated"]) == (1, 1)

    # most of the repository vanishes: the mass-deletion guard stops before deleting
    for key in keys[2:8]:
        model.delete_item(key)
    stopped = incremental(cli)
    assert stopped.returncode == 1
    assert "mass-deletion" in stopped.stderr and "--force-delete" in stopped.stderr
    assert len(sword.store.containers()) == 9  # nothing deleted
    forced = incremental(cli, "--force-delete")
    assert forced.returncode == 0, forced.output
    assert_mirror(sword, model)


# -- 3. day granularity ------------------------------------------------------------------------
def test_day_granularity_harvests_from_a_day_and_sees_two_changes_on_one_day(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(8, seed=13)
    p = provider(model, page_size=5, granularity="day")
    assert cli.baseline(p.base_url, sword).returncode == 0
    keys = sorted(model.items)
    with_files = next(k for k in keys if model.items[k].files)
    model.update_metadata(keys[0], title="First change today")
    p.requests.clear()
    first = incremental(cli)
    assert first.returncode == 0, first.output
    assert_mirror(sword, model)
    froms = [q["from"] for q in list_requests(p) if "from" in q]
    assert froms and all(len(f) == 10 for f in froms)  # YYYY-MM-DD, as Identify asks

    # a second change the same day: same datestamp, still seen (and only it is sent)
    model.update_metadata(keys[0], title="Second change today")
    model.replace_file(with_files, 0, b"changed the same day\n")
    second = incremental(cli)
    assert second.returncode == 0, second.output
    assert_mirror(sword, model)
    assert runs_json(cli)[-1]["updated"] == 2


# -- 4. flow control and resumption tokens -----------------------------------------------------
def test_a_busy_provider_is_waited_out(cli: Cli, sword: SwordServer, provider: Factory) -> None:
    model = dspace_model(8, seed=14)
    p = provider(model, page_size=5)
    p.busy = 2  # the first two list requests answer 503 with Retry-After: 1
    result = cli.baseline(p.base_url, sword)
    assert result.returncode == 0, result.output
    assert p.stats["busy"] == 2
    assert_mirror(sword, model)


def test_an_expired_token_mid_harvest_loses_nothing_and_deposits_nothing_twice(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(14, seed=15)
    p = provider(model, page_size=4)
    p.expire_on_page = 3
    result = cli.baseline(p.base_url, sword)
    assert result.returncode == 0, result.output
    assert p.expire_on_page is None  # the fault was served
    assert len(sword.store.containers()) == 14
    assert_mirror(sword, model)  # each record once
    restarts = [q for q in list_requests(p) if "from" in q and "resumptionToken" not in q]
    assert len(restarts) == 1  # listed again from the last datestamp seen
    assert status_json(cli)["items"] == {"complete": 14}


@pytest.mark.parametrize(
    ("fault", "message", "then"),
    [
        # the same token, again and again; the next incremental run reads the changes again
        ("token_loop", "came back a second time", "incremental"),
        # new tokens, no records, never an end; replay reads the changes again
        ("endless", "empty pages in a row", "replay"),
    ],
)
def test_a_broken_list_makes_the_run_partial_deletes_nothing_and_keeps_the_cursor(
    cli: Cli, sword: SwordServer, provider: Factory, fault: str, message: str, then: str
) -> None:
    model = dspace_model(10, seed=16)
    p = provider(model, page_size=3)
    assert cli.baseline(p.base_url, sword).returncode == 0
    cursor = cursors(cli.state)[-1]
    assert cursor
    keys = sorted(model.items)
    model.delete_item(keys[0])  # the first change: on the first page read
    for i, key in enumerate(keys[1:6]):
        model.update_metadata(key, title=f"Changed {i}")
    setattr(p, fault, True)
    p.empty_pages = fault == "endless"

    looped = incremental(cli)
    assert looped.returncode == 1, looped.output
    assert message in looped.stderr
    assert len(sword.store.containers()) == 10  # nothing deleted
    assert keys[0] in by_record(sword.store.containers())
    assert cursors(cli.state)[-1] is None  # the partial run earned no cursor
    assert [c for c in cursors(cli.state) if c][-1] == cursor
    status = status_json(cli)
    assert status["runs"][-1]["status"] == "partial"
    assert [e["code"] for e in status["last_run_errors"] if not e["item"]] == ["oai-loop"]
    text = cli("status", "--state", str(cli.state)).stdout
    assert "refused or unreadable in the last run" in text and message in text

    # the provider is fixed: the next run reads the same changes again and converges
    setattr(p, fault, False)
    p.empty_pages = False
    p.requests.clear()
    fixed = cli(then, "--state", str(cli.state))
    assert fixed.returncode == 0, fixed.output
    assert_mirror(sword, model)
    since = datetime.fromisoformat(cursor) - timedelta(seconds=300)  # overlap_seconds
    assert list_requests(p)[0]["from"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cursors(cli.state)[-1] not in (None, cursor)


# -- 5. sets and collections -----------------------------------------------------------------------
def test_set_selects_what_is_harvested(cli: Cli, sword: SwordServer, provider: Factory) -> None:
    model = dspace_model(10, seed=17)
    p = provider(model, page_size=5)
    result = cli.baseline(p.base_url, sword, "--set", SET_2)
    assert result.returncode == 0, result.output
    in_set = {k for k, it in model.items.items() if it.collection == COLLECTION_2}
    assert 0 < len(in_set) < len(model.items)
    assert_mirror(sword, model, in_set)
    assert all(q.get("set") == SET_2 for q in list_requests(p) if "resumptionToken" not in q)


def test_collections_keyed_by_set_spec_route_items_in_a_pipeline_file(
    tmp_path: Path, cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(10, seed=18)
    p = provider(model, page_size=5)
    pipe = pipeline_file(
        tmp_path / "oai.toml",
        p,
        sword,
        cli.state,
        f'[collections]\n"{SET_2}" = "{sword.col_iri("theses")}"\n'
        "[options]\nworkers = 3\nper_host_rate = 0\n",
    )
    result = cli("run", str(pipe))
    assert result.returncode == 0, result.output
    in_set = {k for k, it in model.items.items() if it.collection == COLLECTION_2}
    assert 0 < len(in_set) < len(model.items)
    assert_mirror(sword, model, in_set, collection="theses")
    assert_mirror(sword, model, set(model.items) - in_set, collection="default")

    # the next run is incremental; a new item of the set goes to the mapped collection too
    new = model.create_item("dspace", collection=COLLECTION_2)
    again = cli("run", str(pipe))
    assert again.returncode == 0, again.output
    assert runs_json(cli)[-1]["kind"] == "incremental"
    assert_mirror(sword, model, in_set | {new.key}, collection="theses")


# -- 6. hostile and wrong answers ------------------------------------------------------------------
def test_a_hostile_metadata_record_fails_its_item_only(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(8, seed=19)
    p = provider(model, HostileProvider, page_size=5)
    keys = sorted(model.items)
    dtd_key, entity_key = keys[2], keys[5]
    p.hostile = {  # type: ignore[attr-defined]
        ID_PREFIX + dtd_key: DTD_RECORD,
        ID_PREFIX + entity_key: ENTITY_RECORD,
    }
    result = cli.baseline(p.base_url, sword)
    assert result.returncode == 1
    assert "passwd" not in result.output.replace("file:///etc/passwd", "")
    assert_mirror(sword, model, set(keys) - {dtd_key, entity_key})
    status = status_json(cli)
    assert status["items"] == {"complete": 6, "failed": 2}
    assert {f["code"] for f in status["not_synced"]} == {"metadata"}
    errors = {
        k: f["error"]
        for k in (dtd_key, entity_key)
        for f in status["not_synced"]
        if f"record {ID_PREFIX}{k} is refused" in f["error"]
    }
    assert "DTD" in errors[dtd_key] and "undefined entity" in errors[entity_key]

    # the records are repaired: replay deposits exactly those two
    p.hostile = {}  # type: ignore[attr-defined]
    replay = cli("replay", "--state", str(cli.state))
    assert replay.returncode == 0, replay.output
    assert_mirror(sword, model)


def test_tampered_file_bytes_fail_their_item_by_the_mets_checksum(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(8, seed=22)
    p = provider(model, page_size=5)
    victim = next(it for it in model.items.values() if any(f.content for f in it.files))
    f = next(f for f in victim.files if f.content)
    p.tampered[f.fid] = bytes([f.content[0] ^ 1]) + f.content[1:]
    result = cli.baseline(p.base_url, sword)
    assert result.returncode == 1
    assert f"{f.fid}/content" in result.stderr and "md5" in result.stderr
    assert_mirror(sword, model, set(model.items) - {victim.key})  # nothing of it deposited
    status = status_json(cli)
    assert [e["code"] for e in status["not_synced"]] == ["integrity"]

    p.tampered.clear()
    replay = cli("replay", "--state", str(cli.state))
    assert replay.returncode == 0, replay.output
    assert_mirror(sword, model)


def test_an_html_page_instead_of_oai_pmh_is_a_clear_error(
    cli: Cli, sword: SwordServer, provider: Factory
) -> None:
    model = dspace_model(3, seed=20)
    p = provider(model)
    for verb in ("Identify", "ListMetadataFormats", "ListRecords", "GetRecord"):
        p.set_override(verb, HTML_PAGE, "text/html")
    result = cli.baseline(p.base_url, sword, "--source-type", "oai-pmh")
    assert result.returncode == 1
    assert "HTML page" in result.stderr and "/server/oai/request" in result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert sword.store.containers() == []


# -- 7. faults at the destination, then replay -------------------------------------------------
def _full(containers: list[StoredContainer]) -> list[tuple[str, str, tuple[str, ...]]]:
    out = []
    for c in containers:
        dc = json.dumps({k: sorted(v) for k, v in c.dc.items()}, sort_keys=True)
        files = tuple(sorted(f"{f.name}:{f.md5}:{f.size}" for f in c.files))
        out.append((c.state, dc, files))
    return sorted(out)


def test_sword_faults_during_a_baseline_then_replay_equal_a_fault_free_run(
    tmp_path: Path, provider: Factory
) -> None:
    model = dspace_model(16, seed=21)
    p = provider(model, page_size=5)
    faults = FaultPolicy(rate=0.2, kinds=FAULT_KINDS, seed=7, stall_seconds=1.5)
    clean = SwordServer(tmp_path / "clean", password=PASSWORD).start()
    faulty = SwordServer(tmp_path / "faulty", password=PASSWORD, faults=faults).start()
    try:
        options = "[options]\nworkers = 4\nper_host_rate = 0\n" + FAST_RETRIES
        clean_cli = Cli(tmp_path, tmp_path / "clean.sqlite")
        faulty_cli = Cli(tmp_path, tmp_path / "faulty.sqlite")
        clean_pipe = pipeline_file(tmp_path / "c.toml", p, clean, clean_cli.state, options)
        faulty_pipe = pipeline_file(tmp_path / "f.toml", p, faulty, faulty_cli.state, options)
        assert clean_cli("run", str(clean_pipe)).returncode == 0

        first = faulty_cli("run", str(faulty_pipe))
        assert first.returncode in (0, 1), first.output
        assert "Traceback" not in first.output and "internal error" not in first.output
        for _ in range(5):  # faults stay on: replay must converge under them
            if first.returncode == 0:
                break
            first = faulty_cli("replay", "--state", str(faulty_cli.state))
            assert first.returncode in (0, 1), first.output
        assert first.returncode == 0, first.output
        assert sum(faults.served.values()) > 0, faults.served

        assert_mirror(faulty, model)  # each record once, complete
        assert _full(faulty.store.containers()) == _full(clean.store.containers())
        assert status_json(faulty_cli)["items"] == {"complete": 16}
    finally:
        clean.stop()
        faulty.stop()
