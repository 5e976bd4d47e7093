"""The engine on the in-memory source and destination: every run kind without HTTP (issue #9).

Each scenario runs the engine as a user would (baseline, incremental, replay, undo) and then
asserts what the destination holds (titles, file names and MD5s, no extra containers), the
run's counts, status and exit code, and where it matters which destination calls were made.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from sync.contracts import (
    Capabilities,
    Container,
    DeferredError,
    ItemStatus,
    Listing,
    Metadata,
    RunKind,
    RunStatus,
)
from sync.depositor import DepositPolicy
from sync.destinations.memory import Fault, MemoryDestination
from sync.engine import EngineSettings
from sync.model import Entry
from sync.sources.memory import MemorySource
from tests.memory_mirror import COLLECTION, Mirror, completed, held, md5, wanted

Items = dict[str, tuple[str, dict[str, bytes]]]

ITEMS: Items = {
    "a": ("Alpha", {"a.pdf": b"%PDF alpha", "a.txt": b"alpha text"}),
    "b": ("Beta", {"b.pdf": b"%PDF beta"}),
    "c": ("Gamma & co", {"c.csv": b"x,y\n1,2\n", "c.txt": b"gamma"}),
}

MakeMirror = Callable[..., Mirror]


@pytest.fixture
def make_mirror(tmp_path: Path) -> Iterator[MakeMirror]:
    """``make_mirror(items, dest=..., source=..., **settings)``: a mirror whose source holds
    ``items``, with a state DB of its own."""
    made: list[Mirror] = []

    def make(
        items: Mapping[str, tuple[str, dict[str, bytes]]] = ITEMS,
        *,
        dest: MemoryDestination | None = None,
        source: MemorySource | None = None,
        **settings: object,
    ) -> Mirror:
        mirror = Mirror(
            tmp_path / f"s{len(made)}.sqlite",
            source=source or MemorySource(),
            dest=dest or MemoryDestination(),
            settings=EngineSettings(**{"collection": COLLECTION, "workers": 2, **settings}),  # type: ignore[arg-type]
        )
        for key, (title, files) in items.items():
            mirror.source.put_item(key, title, files)
        made.append(mirror)
        return mirror

    yield make
    for mirror in made:
        mirror.close()


def new_calls(mirror: Mirror, before: int) -> Counter[str]:
    """The destination calls made since ``before`` calls, by operation."""
    return Counter(mirror.dest.calls[before:])


def item_status(mirror: Mirror, key: str) -> ItemStatus:
    st = mirror.state.item(f"{mirror.source.location}/{key}")
    assert st is not None, key
    return st.status


def synced(mirror: Mirror, items: Items) -> None:
    """The destination holds exactly ``items``, every container completed."""
    assert held(mirror.dest) == wanted(items)
    assert completed(mirror.dest)


# -- baseline and the unchanged run ----------------------------------------------------------
def test_baseline_deposits_every_item_with_its_files(make_mirror: MakeMirror) -> None:
    m = make_mirror()

    r = m.baseline()

    assert (r.kind, r.status, r.exit_code) == (RunKind.BASELINE, RunStatus.OK, 0)
    assert r.counts["created"] == 3 and r.counts["failed"] == 0
    synced(m, ITEMS)
    assert Counter(m.dest.calls) == {"create": 3, "add_file": 5, "complete": 3}
    stored = {c.metadata.title: c for c in m.dest.containers.values()}
    assert {f.name: f.content for f in stored["Alpha"].files.values()} == ITEMS["a"][1]
    assert stored["Gamma & co"].metadata.identifiers == ("mem://source/c",)
    record = m.state.run(r.run_id)
    assert record is not None and (record.status, record.created) == ("ok", 3)


def test_empty_source_on_a_first_baseline_is_not_an_error(make_mirror: MakeMirror) -> None:
    m = make_mirror({})

    r = m.baseline()

    assert (r.status, r.exit_code) == (RunStatus.OK, 0)
    assert m.dest.containers == {} and m.dest.calls == []


@pytest.mark.parametrize("kind", ["baseline", "incremental", "replay"])
def test_a_second_run_without_changes_makes_no_destination_call(
    make_mirror: MakeMirror, kind: str
) -> None:
    m = make_mirror()
    m.baseline()
    before = len(m.dest.calls)

    r = getattr(m, kind)()

    assert (r.status, r.exit_code) == (RunStatus.OK, 0)
    assert m.dest.calls[before:] == []
    assert r.counts["created"] == r.counts["updated"] == r.counts["deleted"] == 0
    synced(m, ITEMS)


# -- updates ---------------------------------------------------------------------------------
def test_metadata_change_replaces_only_the_metadata(make_mirror: MakeMirror) -> None:
    m = make_mirror()
    m.baseline()
    before = len(m.dest.calls)
    m.source.put_item("b", "Beta, second edition", ITEMS["b"][1])

    r = m.incremental()

    assert (r.status, r.counts["updated"]) == (RunStatus.OK, 1)
    assert new_calls(m, before) == {"replace_metadata": 1, "complete": 1}
    synced(m, {**ITEMS, "b": ("Beta, second edition", ITEMS["b"][1])})


@pytest.mark.parametrize(
    ("files", "calls"),
    [
        pytest.param(
            {**ITEMS["a"][1], "a2.bin": b"\x00\x01added"},
            {"add_file": 1, "complete": 1},
            id="file-added",
        ),
        pytest.param(
            {"a.pdf": b"%PDF alpha v2", "a.txt": b"alpha text"},
            {"remove_file": 1, "add_file": 1, "complete": 1},
            id="file-replaced",
        ),
        pytest.param(
            {"a.txt": b"alpha text"}, {"remove_file": 1, "complete": 1}, id="file-removed"
        ),
    ],
)
def test_file_changes_touch_only_the_changed_file(
    make_mirror: MakeMirror, files: dict[str, bytes], calls: dict[str, int]
) -> None:
    m = make_mirror()
    m.baseline()
    before = len(m.dest.calls)
    m.source.put_item("a", "Alpha", files)

    r = m.incremental()

    assert (r.status, r.exit_code, r.counts["updated"]) == (RunStatus.OK, 0, 1)
    assert new_calls(m, before) == calls
    synced(m, {**ITEMS, "a": ("Alpha", files)})


def test_item_deleted_at_the_source_is_deleted_at_the_destination(
    make_mirror: MakeMirror,
) -> None:
    m = make_mirror()
    m.baseline()
    m.source.remove_item("c")

    r = m.incremental()

    assert (r.status, r.exit_code, r.counts["deleted"]) == (RunStatus.OK, 0, 1)
    synced(m, {k: v for k, v in ITEMS.items() if k != "c"})
    assert item_status(m, "c") == ItemStatus.DELETED


@pytest.mark.parametrize("feed", [True, False], ids=["change-feed", "no-change-feed"])
def test_incremental_applies_creates_updates_and_deletes(
    make_mirror: MakeMirror, feed: bool
) -> None:
    m = make_mirror(source=MemorySource(feed=feed), overlap_seconds=0)
    m.baseline()
    m.source.put_item("d", "Delta", {"d.txt": b"delta"})
    m.source.put_item("a", "Alpha revised", {"a.txt": b"alpha text v2"})
    m.source.remove_item("c")
    fetches = m.source.fetches

    r = m.incremental()

    assert (r.status, r.exit_code) == (RunStatus.OK, 0)
    assert (r.counts["created"], r.counts["updated"], r.counts["deleted"]) == (1, 1, 1)
    # with a change feed only the touched items are planned; without one, all are compared
    assert r.counts["unchanged"] == (0 if feed else 1)
    synced(
        m,
        {
            "a": ("Alpha revised", {"a.txt": b"alpha text v2"}),
            "b": ITEMS["b"],
            "d": ("Delta", {"d.txt": b"delta"}),
        },
    )
    assert m.source.fetches - fetches == 4  # a's and d's records, a.txt, d.txt: nothing else


# -- the mass-deletion guard -----------------------------------------------------------------
@pytest.mark.parametrize("share", [0.5, 1.0], ids=["share-0.5", "share-1.0"])
@pytest.mark.parametrize(
    ("feed", "kind"),
    [(True, "incremental"), (False, "incremental"), (True, "baseline")],
    ids=["change-feed", "no-change-feed", "baseline"],
)
def test_emptied_source_stops_the_run_before_deleting_anything(
    make_mirror: MakeMirror, feed: bool, kind: str, share: float
) -> None:
    m = make_mirror(source=MemorySource(feed=feed), max_delete_share=share)
    m.baseline()
    for key in ITEMS:
        m.source.remove_item(key)

    r = getattr(m, kind)()

    assert (r.status, r.exit_code) == (RunStatus.FAILED, 1)
    assert r.message is not None and "mass-deletion" in r.message
    assert "delete" not in m.dest.calls
    synced(m, ITEMS)
    assert [e["code"] for e in m.state.errors(r.run_id)] == ["mass-deletion"]

    forced = getattr(m, kind)(force_delete=True)

    assert (forced.status, forced.exit_code, forced.counts["deleted"]) == (RunStatus.OK, 0, 3)
    assert m.dest.containers == {}


def test_deleting_more_than_max_delete_share_stops_the_run(make_mirror: MakeMirror) -> None:
    items: Items = {f"i{n}": (f"Item {n}", {f"{n}.txt": f"item {n}".encode()}) for n in range(5)}
    m = make_mirror(items)
    m.baseline()
    for key in ("i0", "i1", "i2"):
        m.source.remove_item(key)

    r = m.incremental()  # 3 of 5 > 50%

    assert (r.status, r.exit_code) == (RunStatus.FAILED, 1)
    assert r.message is not None and "max_delete_share" in r.message
    synced(m, items)

    r = m.incremental(max_delete_share=0.6)  # 3 of 5 is not more than 60%

    assert (r.status, r.counts["deleted"]) == (RunStatus.OK, 3)
    synced(m, {k: items[k] for k in ("i3", "i4")})


# -- --limit ---------------------------------------------------------------------------------
def test_limit_stops_the_run_and_the_next_runs_continue(make_mirror: MakeMirror) -> None:
    m = make_mirror(limit=1)

    first = m.baseline()

    assert (first.status, first.exit_code, first.counts["created"]) == (RunStatus.LIMITED, 0, 1)
    assert len(m.dest.containers) == 1 and completed(m.dest)

    second = m.incremental()
    third = m.replay()

    assert (second.status, second.exit_code, second.counts["created"]) == (
        RunStatus.LIMITED,
        0,
        1,
    )
    assert (third.status, third.counts["created"]) == (RunStatus.OK, 1)  # nothing left after it
    synced(m, ITEMS)
    last = m.incremental(limit=None)
    assert (last.status, last.counts["created"]) == (RunStatus.OK, 0)
    synced(m, ITEMS)


# -- a killed run ----------------------------------------------------------------------------
class KilledSource(MemorySource):
    """The process is killed (KeyboardInterrupt) while the listing is read, ``kills`` times."""

    kills: int = 1

    def listing(self) -> Listing:
        inner = super().listing()

        def produce(listing: Listing) -> Iterator[Entry]:
            for n, entry in enumerate(inner):
                if self.kills and n == 3:
                    self.kills -= 1
                    raise KeyboardInterrupt
                yield entry
            listing.cursor = inner.cursor

        return Listing(produce)


@pytest.mark.parametrize("next_run", ["replay", "incremental"])
def test_a_killed_run_is_marked_interrupted_and_finished_by_the_next_run(
    make_mirror: MakeMirror, next_run: str
) -> None:
    m = make_mirror(source=KilledSource(feed=False))
    with pytest.raises(KeyboardInterrupt):
        m.baseline()
    assert m.dest.containers == {}

    r = getattr(m, next_run)()

    assert (r.status, r.exit_code, r.counts["created"]) == (RunStatus.OK, 0, 3)
    synced(m, ITEMS)
    assert [(run.kind, run.status) for run in m.state.runs()] == [
        ("baseline", "interrupted"),
        (next_run, "ok"),
    ]


# -- failures of one item --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("broken", "code"),
    [("mem://source/a/a.txt", "fetch"), ("mem://source/a", "fetch")],
    ids=["a-file", "the-record"],
)
def test_files_fetched_alongside_the_record_fail_cleanly(
    make_mirror: MakeMirror,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    broken: str,
    code: str,
) -> None:
    """With several workers an item's files download while its record is read. A failure of
    either fails the item before the destination is touched, names the resource, and leaves
    no downloaded file behind; the other items are mirrored."""
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    m = make_mirror(workers=4)
    m.source.broken.add(broken)

    r = m.baseline()

    assert (r.status, r.counts["created"], r.counts["failed"]) == (RunStatus.PARTIAL, 2, 1)
    assert "Alpha" not in {c.metadata.title for c in m.dest.containers.values()}
    [error] = m.state.errors(r.run_id)
    assert (error["item"], error["resource"], error["code"]) == ("mem://source/a", broken, code)
    assert list(temp.iterdir()) == []  # every download of the failed item was discarded
    m.source.broken.clear()
    assert m.replay().status == RunStatus.OK
    synced(m, ITEMS)
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("remote", [True, False])
def test_only_a_remote_source_has_an_items_resources_fetched_at_once(
    make_mirror: MakeMirror, monkeypatch: pytest.MonkeyPatch, remote: bool
) -> None:
    """A remote source's resources are fetched in the fetch threads (their round trips
    overlap); a local one's by the item's own worker (no hand-off): the same items result."""
    import threading

    fetched_by: set[str] = set()
    fetch = MemorySource.fetch

    def recording(self: MemorySource, entry: Entry) -> object:
        fetched_by.add(threading.current_thread().name.split("_")[0])
        return fetch(self, entry)

    monkeypatch.setattr(MemorySource, "fetch", recording)
    m = make_mirror(source=MemorySource(remote=remote), workers=4)
    assert m.baseline().status == RunStatus.OK
    synced(m, ITEMS)
    assert fetched_by == ({"rsw", "rsw-fetch"} if remote else {"rsw"})


def test_a_broken_source_resource_fails_only_its_item_and_replay_repairs_it(
    make_mirror: MakeMirror,
) -> None:
    m = make_mirror()
    m.source.broken.add("mem://source/c/c.csv")

    r = m.baseline()

    assert (r.status, r.exit_code) == (RunStatus.PARTIAL, 1)
    assert (r.counts["created"], r.counts["failed"]) == (2, 1)
    synced(m, {k: v for k, v in ITEMS.items() if k != "c"})  # nothing of c was deposited
    assert item_status(m, "c") == ItemStatus.FAILED
    [error] = m.state.errors(r.run_id)
    assert (error["item"], error["resource"], error["code"]) == (
        "mem://source/c",
        "mem://source/c/c.csv",
        "fetch",
    )

    still = m.replay()  # not repaired yet: fails again, changes nothing

    assert (still.status, still.counts["failed"]) == (RunStatus.PARTIAL, 1)
    m.source.broken.clear()
    fixed = m.replay()

    assert (fixed.status, fixed.exit_code, fixed.counts["created"]) == (RunStatus.OK, 0, 1)
    synced(m, ITEMS)


LOST_ANSWER_OPS = ["create", "add_file", "complete"]


@pytest.mark.parametrize("attempts", [1, 5], ids=["fails-then-replay", "retried-in-run"])
@pytest.mark.parametrize("op", LOST_ANSWER_OPS)
def test_lost_answer_then_replay_duplicates_nothing(
    make_mirror: MakeMirror, op: str, attempts: int
) -> None:
    m = make_mirror(policy=DepositPolicy(attempts=attempts), workers=1)
    m.dest.faults.append(Fault(op, applied=True))  # type: ignore[arg-type]

    first = m.baseline()
    # creates and uploads are looked up and retried within the run; a lost completion is
    # left to replay (the SWORD client retries it itself: it is idempotent)
    assert first.counts["failed"] == (1 if attempts == 1 or op == "complete" else 0)
    replay = m.replay()

    assert (replay.status, replay.exit_code) == (RunStatus.OK, 0)
    synced(m, ITEMS)  # one container per item, each file once
    assert m.dest.calls.count("create") == 3


def _lost_upload_cases() -> list[object]:
    return [
        pytest.param(False, True, id="names-kept"),
        pytest.param(False, False, id="names-kept-no-checksums"),
        pytest.param(True, True, id="renaming"),
        pytest.param(True, False, id="renaming-no-checksums"),
    ]


@pytest.mark.parametrize("attempts", [1, 5], ids=["fails-then-replay", "retried-in-run"])
@pytest.mark.parametrize(("rename", "checksums"), _lost_upload_cases())
def test_lost_upload_answer_does_not_upload_the_file_twice(
    make_mirror: MakeMirror, rename: bool, checksums: bool, attempts: int
) -> None:
    dest = MemoryDestination(rename=rename, caps=Capabilities(checksums_in_listing=checksums))
    m = make_mirror(dest=dest, policy=DepositPolicy(attempts=attempts), workers=1)
    dest.faults.append(Fault("add_file", applied=True))

    m.baseline()
    replay = m.replay()

    assert (replay.status, replay.exit_code) == (RunStatus.OK, 0)
    assert held(dest, strip_rename=True) == wanted(ITEMS)
    assert sum(len(c.files) for c in dest.containers.values()) == 5


@pytest.mark.parametrize("rename", [False, True], ids=["names-kept", "renamed"])
@pytest.mark.parametrize("applied", [False, True], ids=["refused", "answer-lost"])
def test_a_file_with_the_same_bytes_as_its_sibling_is_still_uploaded(
    make_mirror: MakeMirror, rename: bool, applied: bool
) -> None:
    """Found by Hypothesis: an item gains a file with the same bytes as one it has, on a
    destination that gives no file refs and lists no checksums; its upload fails. Replay
    must upload it (or find it landed), not take the sibling for it."""
    caps = Capabilities(single_file_delete=False, checksums_in_listing=False)
    dest = MemoryDestination(rename=rename, caps=caps)
    items = {"i0": ("Title", {"f2.bin": b"\x00"})}
    m = make_mirror(items, dest=dest, workers=1, policy=DepositPolicy(attempts=2))
    assert m.baseline().status == RunStatus.OK
    grown = {"i0": ("Title", {"f2.bin": b"\x00", "f3.bin": b"\x00"})}
    m.source.put_item("i0", *grown["i0"])
    dest.faults.append(Fault("add_file", applied=applied))
    m.baseline()
    assert m.replay().status == RunStatus.OK
    assert held(dest, strip_rename=rename) == wanted(grown)


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "no-checksums"])
def test_lost_create_answer_on_a_renaming_server_is_found_again(
    make_mirror: MakeMirror, checksums: bool
) -> None:
    dest = MemoryDestination(rename=True, caps=Capabilities(checksums_in_listing=checksums))
    m = make_mirror(dest=dest, policy=DepositPolicy(attempts=1), workers=1)
    dest.faults.append(Fault("create", applied=True))

    assert m.baseline().counts["failed"] == 1
    assert (m.replay().status) == RunStatus.OK

    assert held(dest, strip_rename=True) == wanted(ITEMS)
    assert completed(dest)


@pytest.mark.parametrize("op", ["create", "add_file", "complete"])
def test_failure_before_the_call_took_effect_is_repaired_by_replay(
    make_mirror: MakeMirror, op: str
) -> None:
    m = make_mirror(policy=DepositPolicy(attempts=1), workers=1)
    m.dest.faults.append(Fault(op))  # type: ignore[arg-type]

    first = m.baseline()

    assert (first.status, first.exit_code, first.counts["failed"]) == (RunStatus.PARTIAL, 1, 1)
    assert len(m.dest.containers) == (2 if op == "create" else 3)
    replay = m.replay()
    assert (replay.status, replay.exit_code) == (RunStatus.OK, 0)
    synced(m, ITEMS)


def test_failed_update_is_retried_by_replay(make_mirror: MakeMirror) -> None:
    m = make_mirror(policy=DepositPolicy(attempts=1))
    m.baseline()
    m.source.put_item("a", "Alpha v2", {"a.txt": b"alpha text", "new.txt": b"new"})
    m.dest.faults.append(Fault("replace_metadata", applied=True))

    r = m.incremental()

    assert (r.status, r.counts["failed"]) == (RunStatus.PARTIAL, 1)
    assert (m.replay().status) == RunStatus.OK
    synced(m, {**ITEMS, "a": ("Alpha v2", {"a.txt": b"alpha text", "new.txt": b"new"})})


def test_lost_answer_on_a_container_delete_then_replay(make_mirror: MakeMirror) -> None:
    m = make_mirror(policy=DepositPolicy(attempts=1))
    m.baseline()
    m.source.remove_item("c")
    m.dest.faults.append(Fault("delete", applied=True))

    r = m.incremental()

    assert (r.status, r.counts["failed"]) == (RunStatus.PARTIAL, 1)
    replay = m.replay()
    assert (replay.status, replay.exit_code) == (RunStatus.OK, 0)
    synced(m, {k: v for k, v in ITEMS.items() if k != "c"})


# -- destinations with fewer capabilities ----------------------------------------------------
def test_without_single_file_delete_the_media_are_rebuilt(make_mirror: MakeMirror) -> None:
    dest = MemoryDestination(caps=Capabilities(single_file_delete=False))
    m = make_mirror(dest=dest)
    m.baseline()
    before = len(dest.calls)
    files = {"a.txt": b"alpha text v2", "a3.txt": b"third"}  # a.pdf gone, a.txt replaced
    m.source.put_item("a", "Alpha", files)

    r = m.incremental()

    assert (r.status, r.counts["updated"]) == (RunStatus.OK, 1)
    calls = new_calls(m, before)
    assert calls["replace_files"] == 1 and calls["remove_file"] == 0
    synced(m, {**ITEMS, "a": ("Alpha", files)})


@pytest.mark.parametrize(
    ("files", "checksums"),
    [
        pytest.param({"a.txt": b"alpha text"}, True, id="file-removed"),
        pytest.param({"a.txt": b"alpha text"}, False, id="file-removed-no-checksums"),
        pytest.param(
            {"a.pdf": b"%PDF alpha", "a.txt": b"alpha v2"},
            True,
            id="file-replaced",
        ),
        pytest.param(
            {"a.pdf": b"%PDF alpha", "a.txt": b"alpha v2"},
            False,
            id="file-replaced-no-checksums",
        ),
    ],
)
def test_failed_media_rebuild_is_finished_by_replay(
    make_mirror: MakeMirror, files: dict[str, bytes], checksums: bool
) -> None:
    caps = Capabilities(single_file_delete=False, checksums_in_listing=checksums)
    m = make_mirror(dest=MemoryDestination(caps=caps))
    m.baseline()
    m.source.put_item("a", "Alpha", files)
    m.dest.faults.append(Fault("replace_files"))  # refused: nothing changed

    assert m.incremental().counts["failed"] == 1
    assert m.replay().status == RunStatus.OK

    synced(m, {**ITEMS, "a": ("Alpha", files)})


def test_empty_file_refused_up_front_by_a_destination_that_refuses_them(
    make_mirror: MakeMirror,
) -> None:
    dest = MemoryDestination(caps=Capabilities(empty_files=False))
    items: Items = {**ITEMS, "e": ("Empty", {"e.txt": b""})}
    m = make_mirror(items, dest=dest)

    r = m.baseline()

    assert (r.status, r.counts["failed"], r.counts["created"]) == (RunStatus.PARTIAL, 1, 3)
    synced(m, ITEMS)  # nothing of the item with the empty file reached the destination
    assert [e["code"] for e in m.state.errors(r.run_id)] == ["deposit"]


def test_file_over_the_destination_upload_limit_fails_its_item_before_any_call(
    make_mirror: MakeMirror,
) -> None:
    dest = MemoryDestination(caps=Capabilities(max_upload=10))
    items: Items = {**ITEMS, "big": ("Big", {"big.bin": b"x" * 11})}
    m = make_mirror(items, dest=dest)

    r = m.baseline()

    assert (r.status, r.exit_code, r.counts["failed"]) == (RunStatus.PARTIAL, 1, 1)
    synced(m, ITEMS)
    [error] = m.state.errors(r.run_id)
    assert error["resource"] == "mem://source/big/big.bin" and "11 bytes" in error["message"]


def test_whole_item_updates_send_the_metadata_and_every_file_again(
    make_mirror: MakeMirror,
) -> None:
    dest = MemoryDestination(caps=Capabilities(whole_item_updates=True))
    m = make_mirror(dest=dest)
    m.baseline()
    before = len(dest.calls)
    m.source.put_item("a", "Alpha, retitled", ITEMS["a"][1])

    r = m.incremental()

    assert (r.status, r.counts["updated"]) == (RunStatus.OK, 1)
    assert new_calls(m, before) == {
        "replace_metadata": 1,
        "replace_files": 1,
        "add_file": 1,
        "complete": 1,
    }
    synced(m, {**ITEMS, "a": ("Alpha, retitled", ITEMS["a"][1])})


@pytest.mark.parametrize("missing_title", ["fallback", "fail"])
def test_a_record_without_title(make_mirror: MakeMirror, missing_title: str) -> None:
    m = make_mirror(policy=DepositPolicy(missing_title=missing_title))  # type: ignore[arg-type]
    m.source.put_item("u", "", {"untitled.pdf": b"%PDF untitled"})

    r = m.baseline()

    if missing_title == "fallback":  # titled after its first file, with a warning
        assert (r.status, r.counts["created"]) == (RunStatus.OK, 4)
        synced(m, {**ITEMS, "u": ("untitled.pdf", {"untitled.pdf": b"%PDF untitled"})})
        st = m.state.item("mem://source/u")
        assert st is not None and st.error is not None and "fallback title" in st.error
    else:
        assert (r.status, r.counts["failed"]) == (RunStatus.PARTIAL, 1)
        synced(m, ITEMS)
        assert [e["code"] for e in m.state.errors(r.run_id)] == ["metadata"]


# -- archived items --------------------------------------------------------------------------
def _archived_mirror(make_mirror: MakeMirror, on_archived: str) -> Mirror:
    dest = MemoryDestination(archived_read_only=True)
    m = make_mirror(dest=dest, policy=DepositPolicy(on_archived=on_archived))  # type: ignore[arg-type]
    m.baseline()
    m.source.put_item("a", "Alpha revised", {"a.txt": b"alpha text v2"})
    return m


def test_on_archived_fail_records_a_conflict_that_replay_retries(
    make_mirror: MakeMirror,
) -> None:
    m = _archived_mirror(make_mirror, "fail")

    r = m.incremental()

    assert (r.status, r.exit_code, r.counts["failed"]) == (RunStatus.PARTIAL, 1, 1)
    synced(m, ITEMS)  # the archived item is unchanged
    assert item_status(m, "a") == ItemStatus.CONFLICT
    assert [e["code"] for e in m.state.errors(r.run_id)] == ["conflict"]
    again = m.replay()
    assert (again.status, again.counts["failed"]) == (RunStatus.PARTIAL, 1)


def test_on_archived_skip_accepts_the_divergence(make_mirror: MakeMirror) -> None:
    m = _archived_mirror(make_mirror, "skip")

    r = m.incremental()

    assert (r.status, r.exit_code, r.counts["skipped"]) == (RunStatus.OK, 0, 1)
    synced(m, ITEMS)
    st = m.state.item("mem://source/a")
    assert st is not None and st.stale and st.status == ItemStatus.COMPLETE
    before = len(m.dest.calls)
    assert m.incremental().status == RunStatus.OK
    assert m.dest.calls[before:] == []  # the divergence is not retried every night


def test_on_archived_recreate_deposits_anew_and_names_the_container_left_behind(
    make_mirror: MakeMirror,
) -> None:
    m = _archived_mirror(make_mirror, "recreate")
    old = next(c.id for c in m.dest.containers.values() if c.metadata.title == "Alpha")

    r = m.incremental()

    assert (r.status, r.exit_code, r.counts["updated"]) == (RunStatus.OK, 0, 0)
    assert r.counts["created"] == 1
    # the archived container cannot be deleted either: both are there, the old one named
    assert held(m.dest) == wanted({**ITEMS, "a2": ("Alpha revised", {"a.txt": b"alpha text v2"})})
    st = m.state.item("mem://source/a")
    assert st is not None and st.error is not None and old in st.error


def test_on_archived_recreate_deletes_the_old_container_where_allowed(
    make_mirror: MakeMirror,
) -> None:
    m = make_mirror(policy=DepositPolicy(on_archived="recreate"))
    m.baseline()
    m.source.put_item("a", "Alpha revised", {"a.txt": b"alpha text v2"})
    m.dest.faults.append(Fault("replace_metadata", conflict=True))

    r = m.incremental()

    assert (r.status, r.exit_code) == (RunStatus.OK, 0)
    synced(m, {**ITEMS, "a": ("Alpha revised", {"a.txt": b"alpha text v2"})})


# -- undo ------------------------------------------------------------------------------------
def test_undo_deletes_only_the_containers_that_run_created(make_mirror: MakeMirror) -> None:
    m = make_mirror(overlap_seconds=0)
    m.baseline()
    m.source.put_item("d", "Delta", {"d.txt": b"delta"})
    m.source.put_item("a", "Alpha revised", ITEMS["a"][1])
    second = m.incremental()
    assert (second.counts["created"], second.counts["updated"]) == (1, 1)

    r = m.undo(second.run_id)

    assert (r.kind, r.status, r.exit_code, r.counts["deleted"]) == (
        RunKind.UNDO,
        RunStatus.OK,
        0,
        1,
    )
    synced(m, {**ITEMS, "a": ("Alpha revised", ITEMS["a"][1])})  # a's update is kept
    assert item_status(m, "d") == ItemStatus.DELETED
    # the undone item stays deleted until a full comparison deposits it again
    assert m.incremental().counts["created"] == 0
    assert m.baseline().counts["created"] == 1
    synced(
        m,
        {**ITEMS, "a": ("Alpha revised", ITEMS["a"][1]), "d": ("Delta", {"d.txt": b"delta"})},
    )


def test_undone_items_stay_deleted_within_the_overlap_window(make_mirror: MakeMirror) -> None:
    m = make_mirror()  # default overlap_seconds=300: the memory source's changes are 1 s apart
    m.baseline()
    m.source.put_item("d", "Delta", {"d.txt": b"delta"})
    m.undo(m.incremental().run_id)

    r = m.incremental()

    assert r.counts["created"] == 0
    synced(m, ITEMS)


def test_lost_create_without_listing_is_the_documented_duplicate(
    make_mirror: MakeMirror, caplog: pytest.LogCaptureFixture
) -> None:
    """README, crash safety, limit: a destination that cannot list a collection cannot be
    asked whether a lost create landed; the item is created again and a warning names it."""
    dest = MemoryDestination(caps=Capabilities(listing=False))
    m = make_mirror(dest=dest, policy=DepositPolicy(attempts=1), workers=1)
    dest.faults.append(Fault("create", applied=True))

    assert m.baseline().counts["failed"] == 1
    assert m.replay().status == RunStatus.OK

    titles = Counter(c.metadata.title for c in dest.containers.values())
    assert sorted(titles.values()) == [1, 1, 2]  # one item twice, the others once
    [twice] = [t for t, n in titles.items() if n == 2]
    key = next(f"mem://source/{k}" for k, (t, _) in ITEMS.items() if t == twice)
    assert any(key in r.getMessage() and "no listing" in r.getMessage() for r in caplog.records)


# -- linking and collections -----------------------------------------------------------------
def test_source_collections_map_to_destination_collections(make_mirror: MakeMirror) -> None:
    dest = MemoryDestination(collections={COLLECTION, "mem://col/theses"})
    m = make_mirror(dest=dest, collections={"mem://source/col/theses": "mem://col/theses"})
    m.source.put_item("t", "A thesis", {"t.pdf": b"thesis"}, collection="mem://source/col/theses")
    m.source.put_item("u", "Unmapped", {"u.pdf": b"u"}, collection="mem://source/col/other")

    r = m.baseline()

    assert (r.status, r.counts["created"]) == (RunStatus.OK, 5)
    assert held(dest) == sorted(
        wanted({**ITEMS, "u": ("Unmapped", {"u.pdf": b"u"})})
        + wanted({"t": ("A thesis", {"t.pdf": b"thesis"})}, collection="mem://col/theses")
    )


def test_a_mapped_collection_missing_at_the_destination_stops_the_run(
    make_mirror: MakeMirror,
) -> None:
    m = make_mirror(collections={"mem://source/col/x": "mem://col/missing"})

    r = m.baseline()

    assert (r.status, r.exit_code) == (RunStatus.FAILED, 1)
    assert r.message is not None and "mem://col/missing" in r.message
    assert m.dest.containers == {}


@pytest.mark.parametrize("unlinked", ["deposit", "skip"])
def test_unlinked_resources_are_deposited_or_skipped(
    make_mirror: MakeMirror, unlinked: str
) -> None:
    m = make_mirror(unlinked=unlinked)
    m.source.put("mem://source/loose/notes.txt", b"loose notes")

    r = m.baseline()

    assert r.status == RunStatus.OK
    if unlinked == "skip":
        synced(m, ITEMS)
    else:
        # an item of its own, titled after its file
        synced(m, {**ITEMS, "loose": ("notes.txt", {"notes.txt": b"loose notes"})})


# -- destinations that defer (batch imports) --------------------------------------------------
class DeferringDestination(MemoryDestination):
    """Takes no creates while ``deferring`` (SAF: the batch is not imported yet)."""

    deferring: bool = True

    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        if self.deferring and metadata.title == "Beta":
            raise DeferredError("the add batch is not imported yet", resource=metadata.key)
        return super().create(collection, metadata, slug=slug)


@pytest.mark.parametrize(
    ("next_run", "overlap"),
    [
        ("replay", 0),
        ("incremental", 300),
        ("incremental", 0),
    ],
    ids=["replay", "incremental-within-overlap", "incremental-after-overlap"],
)
def test_deferred_item_waits_and_the_next_run_writes_it(
    make_mirror: MakeMirror, next_run: str, overlap: int
) -> None:
    dest = DeferringDestination()
    m = make_mirror(dest=dest, overlap_seconds=overlap)

    r = m.baseline()

    assert (r.status, r.exit_code) == (RunStatus.OK, 0)
    assert (r.counts["waiting"], r.counts["created"], r.counts["failed"]) == (1, 2, 0)
    synced(m, {k: v for k, v in ITEMS.items() if k != "b"})
    assert [e["code"] for e in m.state.errors(r.run_id)] == ["waiting"]

    dest.deferring = False
    later = getattr(m, next_run)()

    assert (later.status, later.counts["created"], later.counts["waiting"]) == (RunStatus.OK, 1, 0)
    synced(m, ITEMS)


def test_the_comparison_tells_a_changed_byte_apart(make_mirror: MakeMirror) -> None:
    """The tests above compare by MD5: one byte changed at the destination must show."""
    m = make_mirror()
    m.baseline()
    stored = next(iter(m.dest.containers.values()))
    ref, f = next(iter(stored.files.items()))
    stored.files[ref] = type(f)(f.ref, f.name, f.content + b"!")

    assert held(m.dest) != wanted(ITEMS)
    assert md5(f.content) != md5(f.content + b"!")
