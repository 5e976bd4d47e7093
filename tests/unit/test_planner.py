"""Planner: the actions for one item from the source's view and the recorded state, pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sync.contracts import Container, FileState, ItemState
from sync.model import Entry, Item
from sync.planner import (
    CREATE,
    DELETE,
    RESUME,
    UNCHANGED,
    UPDATE,
    metadata_fingerprint,
    plan_item,
    slug_for,
)
from sync.state.sqlite import COMPLETE, CONFLICT, DELETED, FAILED, IN_PROGRESS

COL = "https://dest.example/sword/collection/default"
REC = "https://src.example/resource/1/2/qdc"
F1 = "https://src.example/bitstreams/f1"
F2 = "https://src.example/bitstreams/f2"
F3 = "https://src.example/bitstreams/f3"


def entry(loc: str, md5: str) -> Entry:
    return Entry(loc=loc, hashes=(("md5", md5),), length=10)


def make_item(*files: Entry, record_md5: str = "a" * 32) -> Item:
    return Item(key=REC, metadata=[entry(REC, record_md5)], files=list(files))


def uploaded(e: Entry, status: str = "uploaded") -> FileState:
    return FileState(
        loc=e.loc,
        filename=e.loc.rsplit("/", 1)[-1],
        md5=e.hash("md5"),
        fingerprint=e.fingerprint,
        ref=f"https://dest.example/file/{e.loc.rsplit('/', 1)[-1]}",
        status=status,
    )


def synced_state(item: Item, **kw: object) -> ItemState:
    base = ItemState(
        key=item.key,
        status=COMPLETE,
        collection=COL,
        container=Container(
            "https://dest.example/edit/1",
            {"em_iri": "https://dest.example/em/1", "se_iri": "https://dest.example/edit/1"},
        ),
        metadata_fp=metadata_fingerprint(item, COL),
        files={f.loc: uploaded(f) for f in item.files},
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_create_for_a_new_item() -> None:
    item = make_item(entry(F1, "1" * 32), entry(F2, "2" * 32))
    plan = plan_item(item, None, COL)
    assert plan.kind == CREATE
    assert plan.add == (F1, F2)
    assert plan.complete
    assert not plan.recover
    assert plan.kind != UNCHANGED


def test_unchanged_when_fingerprints_equal() -> None:
    item = make_item(entry(F1, "1" * 32))
    plan = plan_item(item, synced_state(item), COL)
    assert plan.kind == UNCHANGED
    assert (plan.add, plan.replace, plan.remove, plan.verify) == ((), (), (), ())
    assert not plan.replace_metadata
    assert not plan.complete


def test_record_hash_change_replaces_metadata_only() -> None:
    old = make_item(entry(F1, "1" * 32))
    new = make_item(entry(F1, "1" * 32), record_md5="b" * 32)
    plan = plan_item(new, synced_state(old), COL)
    assert plan.kind == UPDATE
    assert plan.replace_metadata
    assert (plan.add, plan.replace, plan.remove) == ((), (), ())
    assert plan.complete


def test_target_collection_change_replaces_metadata() -> None:
    item = make_item(entry(F1, "1" * 32))
    plan = plan_item(item, synced_state(item), COL + "-other")
    assert plan.kind == UPDATE
    assert plan.replace_metadata


def test_files_added_replaced_removed() -> None:
    f1, f2, f3 = entry(F1, "1" * 32), entry(F2, "2" * 32), entry(F3, "3" * 32)
    old = make_item(f1, f2)
    new = make_item(entry(F1, "9" * 32), f3)  # f1 changed, f2 gone, f3 new
    plan = plan_item(new, synced_state(old), COL)
    assert plan.kind == UPDATE
    assert not plan.replace_metadata
    assert plan.add == (F3,)
    assert plan.replace == (F1,)
    assert [f.loc for f in plan.remove] == [F2]
    assert plan.remove[0].ref == "https://dest.example/file/f2"
    assert plan.verify == ()


def test_fingerprint_without_hash_uses_length_and_lastmod() -> None:
    t1 = datetime(2024, 1, 1, tzinfo=UTC)
    t2 = datetime(2024, 1, 2, tzinfo=UTC)
    old = make_item(Entry(loc=F1, length=5, lastmod=t1))
    same = make_item(Entry(loc=F1, length=5, lastmod=t1))
    newer = make_item(Entry(loc=F1, length=5, lastmod=t2))
    assert plan_item(same, synced_state(old), COL).kind == UNCHANGED
    plan = plan_item(newer, synced_state(old), COL)
    assert plan.kind == UPDATE
    assert plan.replace == (F1,)


def test_resume_an_in_progress_item_verifies_every_upload_it_still_needs() -> None:
    """An unfinished item may hold uploads whose answer was lost (a crash right after the
    POST): every upload it still needs is looked for in the statement first."""
    f1, f2, f3 = entry(F1, "1" * 32), entry(F2, "2" * 32), entry(F3, "3" * 32)
    item = make_item(f1, f2, f3)
    state = synced_state(
        item,
        status=IN_PROGRESS,
        files={F1: uploaded(f1), F2: uploaded(f2, status="uploading")},
    )
    plan = plan_item(item, state, COL)
    assert plan.kind == RESUME
    assert plan.verify == (F2, F3)
    assert plan.add == (F2, F3)
    assert plan.replace == ()
    assert plan.complete


def test_resume_even_when_nothing_changed() -> None:
    item = make_item(entry(F1, "1" * 32))
    for status in (IN_PROGRESS, FAILED, CONFLICT):
        plan = plan_item(item, synced_state(item, status=status), COL)
        assert plan.kind == RESUME, status
        assert plan.complete
        assert not plan.replace_metadata
        assert plan.add == ()


def test_delete_when_the_item_is_gone() -> None:
    item = make_item(entry(F1, "1" * 32))
    plan = plan_item(None, synced_state(item), COL)
    assert plan.kind == DELETE
    assert plan.key == REC
    assert not plan.recover


def test_delete_of_something_never_created_is_a_noop() -> None:
    state = ItemState(key=REC, status="pending")
    assert plan_item(None, state, COL).kind == UNCHANGED
    item = make_item()
    assert plan_item(None, synced_state(item, status=DELETED), COL).kind == UNCHANGED


def test_delete_with_a_pending_create_recovers() -> None:
    state = ItemState(key=REC, status="creating", create_pending=True)
    plan = plan_item(None, state, COL)
    assert plan.kind == DELETE
    assert plan.recover


def test_create_pending_sets_recover() -> None:
    item = make_item(entry(F1, "1" * 32))
    plan = plan_item(item, ItemState(key=REC, status="creating", create_pending=True), COL)
    assert plan.kind == CREATE
    assert plan.recover
    assert plan.add == (F1,)
    # a plain pending state without the intent recorded: no recovery needed
    plan = plan_item(item, ItemState(key=REC, status="pending"), COL)
    assert plan.kind == CREATE
    assert not plan.recover


def test_recreate_after_deletion() -> None:
    item = make_item(entry(F1, "1" * 32))
    plan = plan_item(item, synced_state(item, status=DELETED, create_pending=True), COL)
    assert plan.kind == CREATE
    assert not plan.recover
    assert plan.add == (F1,)


def test_metadata_fingerprint_is_order_free_and_sensitive() -> None:
    a, b = entry(REC, "a" * 32), entry(REC + "x", "b" * 32)
    i1 = Item(key="k", metadata=[a, b])
    i2 = Item(key="k", metadata=[b, a])
    assert metadata_fingerprint(i1, COL) == metadata_fingerprint(i2, COL)
    assert metadata_fingerprint(i1, COL) != metadata_fingerprint(i1, None)
    i3 = Item(key="k", metadata=[a, entry(REC + "x", "c" * 32)])
    assert metadata_fingerprint(i1, COL) != metadata_fingerprint(i3, COL)


def test_slug_for_is_deterministic_and_distinct() -> None:
    assert slug_for(REC) == slug_for(REC)
    assert slug_for(REC) != slug_for(REC + "/")
    assert slug_for(REC).startswith("rsw-")
    assert len(slug_for(REC)) == 24
    assert slug_for("x") == "rsw-11f6ad8ec52a2984abaa"


def test_an_added_file_on_a_complete_item_is_not_verified() -> None:
    f1, f2 = entry(F1, "1" * 32), entry(F2, "2" * 32)
    state = synced_state(make_item(f1), files={F1: uploaded(f1)})
    plan = plan_item(make_item(f1, f2), state, COL)
    assert plan.kind == UPDATE
    assert plan.add == (F2,) and plan.verify == ()
