"""The state DB: schema, resources, members, items, files, runs, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.contracts import Container, FileState
from sync.errors import ConfigError, FetchError, register_secret
from sync.model import Entry, Item, Link
from sync.state import SCHEMA_VERSION, RunLock, State
from sync.state.sqlite import COMPLETE, CREATING, FAILED, IN_PROGRESS

T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    s = State(tmp_path / "sub" / "p.sqlite")
    yield s
    s.close()


def changed_locs_since(state: State, run_id: int) -> set[str]:
    """The locs whose content or links changed in a run at or after ``run_id``."""
    rows = state.db.execute("SELECT loc FROM resources WHERE changed_run>=?", (run_id,))
    return {r[0] for r in rows}


def member_locs(state: State, key: str) -> list[tuple[str, str]]:
    rows = state.db.execute(
        "SELECT loc, role FROM members WHERE item_key=? ORDER BY role, loc", (key,)
    )
    return [(r[0], r[1]) for r in rows]


def e(loc: str, md5: str = "a" * 32, **kw: object) -> Entry:
    return Entry(loc=f"https://s/{loc}", hashes=(("md5", md5),), **kw)  # type: ignore[arg-type]


# -- schema ----------------------------------------------------------------------------------


def test_schema_created_with_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "p.sqlite"
    s = State(path)
    assert path.exists()
    assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
    tables = {r[0] for r in s.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "runs", "resources", "members", "items", "files", "errors"} <= tables
    assert "journal" not in tables  # write-only in v1/v2: dropped by the v3 migration
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    # reopening keeps the data and the version
    s = State(path)
    assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    s = State(path)
    s.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    s.close()
    with pytest.raises(ConfigError) as info:
        State(path)
    assert "newer" in str(info.value)
    assert info.value.resource == str(path)


def test_old_schema_without_upgrade_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    s = State(path)
    s.set_meta("schema_version", "0")
    s.close()
    with pytest.raises(ConfigError):
        State(path)


def test_meta_json(state: State) -> None:
    assert state.get_json("pipeline") is None
    state.set_json("pipeline", {"b": 1, "a": "ü"})
    state.set_json("pipeline", {"b": 2})
    assert state.get_json("pipeline") == {"b": 2}


def test_tx_rolls_back_on_error(state: State) -> None:
    with pytest.raises(RuntimeError), state.tx():
        state.db.execute("INSERT INTO meta VALUES ('k', 'v')")
        raise RuntimeError("boom")
    assert state.get_meta("k") is None
    with state.tx(), state.tx():  # nested blocks join the outer transaction
        state.db.execute("INSERT INTO meta VALUES ('k', 'v')")
    assert state.get_meta("k") == "v"


# -- resources -------------------------------------------------------------------------------


def test_upsert_entries_idempotent_and_change_tracking(state: State) -> None:
    links = (Link("describedby", "https://s/md", "application/xml", (("pri", "1"),)),)
    entries = [
        e("a", lastmod=T, length=3, type="application/pdf", links=links),
        e("b"),
    ]
    assert state.upsert_entries(entries, 1) == 2
    assert state.upsert_entries(entries, 2) == 2
    assert state.count_resources() == 2
    assert changed_locs_since(state, 1) == {"https://s/a", "https://s/b"}
    assert changed_locs_since(state, 2) == set(), "same entries again: nothing changed"
    # a change of hash, length, lastmod or links marks the resource changed in that run
    state.upsert_entries([e("a", md5="b" * 32, lastmod=T, length=3, links=links), e("b")], 3)
    assert changed_locs_since(state, 3) == {"https://s/a"}
    state.upsert_entries([e("b", links=(Link("collection", "https://s/c"),))], 4)
    assert changed_locs_since(state, 4) == {"https://s/b"}
    assert state.count_resources() == 2


def test_entries_round_trip(state: State) -> None:
    links = (
        Link("describedby", "https://s/md", "application/xml", (("pri", "1"),)),
        Link("collection", "https://s/ü"),
    )
    original = Entry(
        loc="https://s/a",
        lastmod=T,
        hashes=(("md5", "a" * 32), ("sha-256", "b" * 64)),
        length=3,
        type="application/pdf",
        links=links,
    )
    state.upsert_entries([original], 1)
    got = state.entries(["https://s/a", "https://s/missing"])
    assert list(got) == ["https://s/a"]
    back = got["https://s/a"]
    assert back.lastmod == T
    assert back.links == links
    assert back.fingerprint == original.fingerprint
    assert back.length == 3
    assert back.type == "application/pdf"


def test_upsert_in_batches(state: State) -> None:
    assert state.upsert_entries((e(f"r{i}") for i in range(25)), 1, batch=7) == 25
    assert state.count_resources() == 25
    assert [loc for loc, _ in state.iter_link_records(batch=4)] == sorted(
        f"https://s/r{i}" for i in range(25)
    )


def test_mark_deleted_and_reappear(state: State) -> None:
    state.upsert_entries([e("a"), e("b")], 1)
    assert state.mark_deleted(["https://s/a", "https://s/nope"], 2) == 1
    assert state.mark_deleted(["https://s/a"], 3) == 0, "already deleted"
    assert state.count_resources() == 1
    assert state.count_resources(present_only=False) == 2
    assert state.is_known("https://s/a")
    assert not state.is_known("https://s/nope")
    assert changed_locs_since(state, 2) == {"https://s/a"}
    assert [loc for loc, _ in state.iter_link_records()] == ["https://s/b"]
    # listed again: present and changed
    state.upsert_entries([e("a")], 4)
    assert state.count_resources() == 2
    assert changed_locs_since(state, 4) == {"https://s/a"}


def test_unseen_present(state: State) -> None:
    state.upsert_entries([e("a"), e("b")], 1)
    state.upsert_entries([e("b")], 2)
    assert list(state.unseen_present(2)) == ["https://s/a"]


def test_find_by_suffix_escapes_wildcards(state: State) -> None:
    state.upsert_entries(
        [Entry(loc="https://s/resource/1_2/qdc"), Entry(loc="https://s/x1x2/qdc")], 1
    )
    assert state.find_by_suffix("/1_2/qdc") == ["https://s/resource/1_2/qdc"]
    assert state.find_by_suffix("%") == []


# -- members and items -----------------------------------------------------------------------


def item_of(key: str, metadata: list[str], files: list[str]) -> Item:
    return Item(key, [Entry(loc) for loc in metadata], [Entry(loc) for loc in files])


def test_members_of_several_items_are_recorded_in_one_call(state: State) -> None:
    state.set_members(
        [
            item_of("K1", ["https://s/rec1"], ["https://s/f1"]),
            item_of("K2", ["https://s/rec2"], []),
        ],
        run_id=1,
    )
    assert state.keys_for([["https://s/f1"], ["https://s/rec2"]]) == ["K1", "K2"]
    assert sorted(state.item_keys()) == ["K1", "K2"]
    assert state.unseen_items(run_id=1) == []


def test_key_for_and_set_members(state: State) -> None:
    assert state.key_for(["https://s/rec", "https://s/f"]) is None
    state.set_members([item_of("K1", ["https://s/rec"], ["https://s/f1", "https://s/f2"])])
    assert state.key_for(["https://s/other", "https://s/f2"]) == "K1"
    assert member_locs(state, "K1") == [
        ("https://s/f1", "file"),
        ("https://s/f2", "file"),
        ("https://s/rec", "metadata"),
    ]
    # a resource moves to another item
    state.set_members([item_of("K2", [], ["https://s/f2"])])
    assert state.key_for(["https://s/f2"]) == "K2"
    assert ("https://s/f2", "file") not in member_locs(state, "K1")


def test_an_item_with_hundreds_of_members_records_each(state: State) -> None:
    files = [f"https://s/f{n}" for n in range(250)]
    state.set_members([item_of("K", ["https://s/rec"], files)])
    assert len(member_locs(state, "K")) == 251
    assert state.key_for(["https://s/f249"]) == "K"


def test_keys_and_items_read_at_once_match_one_at_a_time(state: State) -> None:
    state.set_members([item_of("K1", ["https://s/rec1"], ["https://s/f1"])], run_id=1)
    state.set_members([item_of("K2", ["https://s/rec2"], [])])
    state.record_intent("K2", collection="c", title="Two", run_id=1)
    groups = [["https://s/new", "https://s/f1"], ["https://s/none"], ["https://s/rec2"]]
    assert state.keys_for(groups) == [state.key_for(g) for g in groups] == ["K1", None, "K2"]
    got = state.items(["K1", "K2", "unknown"])
    assert got == {"K1": state.item("K1"), "K2": state.item("K2")}
    assert got["K2"].status == CREATING


def test_deposit_steps_round_trip(state: State) -> None:
    assert state.item("K") is None
    state.record_intent("K", collection="https://d/col", title="Title ü", run_id=3)
    st = state.item("K")
    assert st is not None
    assert st.status == CREATING
    assert st.create_pending is True
    assert st.collection == "https://d/col"
    assert st.container is None
    container = Container(
        "https://d/edit/1",
        {
            "em_iri": "https://d/em/1",
            "se_iri": "https://d/edit/1",
            "statement_iri": "https://d/statement/1",
        },
    )
    state.record_container("K", container, metadata_fp="fp1", title="Title ü")
    assert state.owns_container("https://d/edit/1")
    assert not state.owns_container("https://d/edit/2")
    state.file_uploaded(
        "K",
        "https://s/f1",
        run_id=3,
        filename="a.pdf",
        md5="m1",
        size=10,
        content_type="application/pdf",
        fingerprint="md5:m1",
        ref="https://d/file/1",
    )
    state.file_seen("K", "https://s/f2", run_id=3, fingerprint="md5:m2", ref=None)
    st = state.item("K")
    assert st is not None
    assert st.status == IN_PROGRESS
    assert st.create_pending is False
    assert st.container == container
    assert st.metadata_fp == "fp1"
    assert st.title == "Title ü"
    assert st.created_run == 3
    assert st.files == {
        "https://s/f1": FileState(
            "https://s/f1", "a.pdf", "m1", "md5:m1", "https://d/file/1", "uploaded", 10
        ),
        "https://s/f2": FileState("https://s/f2", None, None, "md5:m2", None, "uploaded"),
    }
    state.drop_file("K", "https://s/f2")
    st = state.item("K")
    assert st is not None and list(st.files) == ["https://s/f1"]
    state.mark_complete("K", 3, warning="fallback title")
    st = state.item("K")
    assert st is not None and st.status == COMPLETE and st.error_code == "warning"
    state.drop_files("K")
    st = state.item("K")
    assert st is not None and st.files == {}
    assert state.items_created_in(3) == ["K"]
    # a new intent forgets the files of an earlier attempt
    state.file_seen("K", "https://s/f1", run_id=4, fingerprint="x", ref=None)
    state.record_intent("K", collection="https://d/col", title="Title ü", run_id=4)
    st = state.item("K")
    assert st is not None and st.files == {} and st.container is None


def test_item_keys_and_counts(state: State) -> None:
    state.set_status("a", COMPLETE)
    state.mark_failed("b", FAILED, FetchError("x"))
    state.set_status("c", CREATING)
    assert state.item_keys() == ["a", "b", "c"]
    assert state.item_keys([FAILED, CREATING]) == ["b", "c"]
    assert state.count_items() == {COMPLETE: 1, FAILED: 1, CREATING: 1}
    assert [s.key for s in state.failed_items()] == ["b", "c"]


# -- runs, journal, errors -------------------------------------------------------------------


def test_runs_start_and_finish(state: State) -> None:
    r1 = state.start_run("baseline", "mirror", "first")
    r2 = state.start_run("incremental", "mirror", None)
    assert r2 > r1
    run = state.run(r1)
    assert run is not None
    assert (run.kind, run.status, run.finished, run.comment) == (
        "baseline",
        "running",
        None,
        "first",
    )
    state.finish_run(r1, "ok", {"created": 3, "failed": 1, "requests": 40}, "done", cursor="C1")
    state.finish_run(r2, "failed", {}, "boom", cursor="C2")
    run = state.run(r1)
    assert run is not None
    assert (run.status, run.created, run.failed, run.requests, run.message) == (
        "ok",
        3,
        1,
        40,
        "done",
    )
    assert run.finished is not None
    assert run.as_dict()["id"] == r1
    assert state.last_successful_cursor() == "C1", "a failed run does not move the cursor"
    r3 = state.start_run("undo", "mirror", None)
    state.finish_run(r3, "ok", {}, None, cursor="C3")
    assert state.last_successful_cursor() == "C1", "only sync runs move the cursor"
    r4 = state.start_run("replay", "mirror", None)
    state.finish_run(r4, "partial", {}, None, cursor="C4")
    assert state.last_successful_cursor() == "C4"
    assert [r.id for r in state.runs()] == [r1, r2, r3, r4]
    assert state.run(999) is None


def test_interrupted_runs(state: State) -> None:
    r1 = state.start_run("baseline", "p", None)
    r2 = state.start_run("incremental", "p", None)
    state.mark_interrupted(keep=r2)
    run = state.run(r1)
    assert run is not None and run.status == "interrupted" and run.finished is not None
    run = state.run(r2)
    assert run is not None and run.status == "running"
    assert state.previous_run_unfinished(r2)
    state.finish_run(r2, "ok", {}, None, cursor="C2")
    r3 = state.start_run("incremental", "p", None)
    assert not state.previous_run_unfinished(r3)
    state.finish_run(r3, "limited", {}, None)  # stopped at --limit: no cursor earned
    r4 = state.start_run("replay", "p", None)
    assert state.previous_run_unfinished(r4)
    state.finish_run(r4, "partial", {}, None, cursor="C4")  # items failed, all read
    r5 = state.start_run("incremental", "p", None)
    assert not state.previous_run_unfinished(r5)
    state.finish_run(r5, "failed", {}, "the destination did not answer")  # stopped early
    r6 = state.start_run("replay", "p", None)
    assert state.previous_run_unfinished(r6)


def test_run_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    with RunLock(path):
        with pytest.raises(ConfigError) as info, RunLock(path):
            pass
        assert "another" in str(info.value)
    with RunLock(path):  # released on exit
        pass


def test_errors_recorded_with_redaction(state: State) -> None:
    register_secret("st4te-Secret-pw")
    run = state.start_run("baseline", "p", None)
    err = FetchError(
        "GET https://user:st4te-Secret-pw@d/ failed", resource="https://s/f", status=500
    )
    state.record_error(run, "K", err)
    state.record_error(run + 1, None, FetchError("other"))
    rows = state.errors(run)
    assert len(rows) == 1
    assert rows[0]["code"] == "fetch"
    assert rows[0]["resource"] == "https://s/f"
    assert rows[0]["item"] == "K"
    assert "st4te-Secret-pw" not in rows[0]["message"]
    assert "***" in rows[0]["message"]
    assert len(state.errors()) == 2
    # item errors and run messages are redacted too
    state.mark_failed("K", FAILED, FetchError("auth st4te-Secret-pw refused"))
    st = state.item("K")
    assert st is not None and st.error == "fetch: auth *** refused"
    state.finish_run(run, "failed", {}, "password st4te-Secret-pw wrong")
    rec = state.run(run)
    assert rec is not None and rec.message == "password *** wrong"
    # nothing in the file holds the secret
    raw = sqlite3.connect(str(state.path))
    dump = "\n".join(raw.iterdump())
    raw.close()
    assert "st4te-Secret-pw" not in dump


def test_a_frozen_version_1_db_is_upgraded_in_place(tmp_path: Path) -> None:
    """A DB written by the first release (schema v1) climbs the migration ladder, data kept."""
    import sqlite3

    from sync.state import sqlite as state_module

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    for stmt in state_module._SCHEMA_V1.split(";"):
        if stmt.strip():
            db.execute(stmt)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute(
        "INSERT INTO items (key, status, edit_iri) VALUES ('http://src/rec/1', 'complete',"
        " 'http://dest/edit/1')"
    )
    db.commit()
    db.close()

    st = State(path)
    assert st.get_meta("schema_version") == str(state_module.SCHEMA_VERSION) == "3"
    item = st.item("http://src/rec/1")
    assert item is not None and item.container is not None
    assert item.container.id == "http://dest/edit/1"
    assert st.unseen_items(run_id=1) == ["http://src/rec/1"]
    st.set_members([item_of("http://src/rec/1", ["http://src/rec/1"], [])], run_id=1)
    assert st.unseen_items(run_id=1) == []


def test_a_frozen_version_2_db_is_upgraded_in_place(tmp_path: Path) -> None:
    """A DB written by release 0.1 (schema v2, SWORD IRIs in item columns, a journal) becomes
    v3: the Edit-IRI is the container id, the other IRIs its destination data, a file's IRI
    its ref; nothing recorded is lost."""
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript((Path(__file__).parent.parent / "fixtures" / "state_v2.sql").read_text())
    db.close()

    st = State(path)
    assert st.get_meta("schema_version") == "3"
    item = st.item("http://src/rec/1")
    assert item is not None
    assert item.status == COMPLETE
    assert item.collection == "http://dest/col/1"
    assert item.container == Container(
        "http://dest/edit/1",
        {
            "em_iri": "http://dest/em/1",
            "se_iri": "http://dest/edit/1",
            "statement_iri": "http://dest/statement/1",
        },
    )
    assert (item.metadata_fp, item.title, item.created_run) == ("fp1", "T", 1)
    assert item.files == {
        "http://src/f/1": FileState(
            "http://src/f/1",
            "a.pdf",
            "0" * 32,
            "md5:" + "0" * 32,
            "http://dest/file/1/a.pdf",
            "uploaded",
            3,
        )
    }
    pending = st.item("http://src/rec/2")
    assert pending is not None and pending.status == CREATING and pending.create_pending
    assert pending.container is None
    assert st.owns_container("http://dest/edit/1")
    assert st.last_successful_cursor() == "2026-01-01T00:00:00+00:00"
    assert st.entries(["http://src/f/1"])["http://src/f/1"].length == 3
    tables = {r[0] for r in st.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "journal" not in tables
    assert [r.created for r in st.runs()] == [1]
