"""Change lists: collapsing to the last change per resource, in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.changes import alias_suffixes, collapse, when
from sync.model import Entry
from sync.state import State

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def ch(loc: str, change: str, minutes: int | None, lastmod_minutes: int | None = None) -> Entry:
    return Entry(
        loc=f"https://src.example/{loc}",
        change=change,
        change_time=T0 + timedelta(minutes=minutes) if minutes is not None else None,
        lastmod=T0 + timedelta(minutes=lastmod_minutes) if lastmod_minutes is not None else None,
    )


def locs(entries: tuple[Entry, ...] | list[Entry]) -> list[tuple[str, str | None]]:
    return [(e.loc.rsplit("/", 1)[-1], e.change) for e in entries]


def test_last_change_per_loc_wins_in_time_order() -> None:
    cs = collapse(
        [
            ch("a", "created", 1),
            ch("b", "created", 2),
            ch("a", "updated", 3),
            ch("c", "created", 4),
            ch("b", "deleted", 5),
        ],
        None,
    )
    assert locs(cs.changes) == [("a", "updated"), ("c", "created"), ("b", "deleted")]
    assert locs(cs.deleted) == [("b", "deleted")]
    assert locs(cs.upserts) == [("a", "updated"), ("c", "created")]
    assert cs.latest == T0 + timedelta(minutes=5)


def test_order_is_by_time_not_document_order() -> None:
    # a later document position with an earlier time does not win
    cs = collapse([ch("a", "deleted", 10), ch("a", "updated", 5), ch("b", "created", 7)], None)
    assert locs(cs.changes) == [("b", "created"), ("a", "deleted")]
    assert cs.latest == T0 + timedelta(minutes=10)


def test_ties_keep_document_order() -> None:
    cs = collapse([ch("a", "created", 1), ch("a", "deleted", 1), ch("b", "updated", 1)], None)
    assert locs(cs.changes) == [("a", "deleted"), ("b", "updated")]


def test_lastmod_is_the_fallback_time() -> None:
    old = ch("a", "updated", None, lastmod_minutes=9)
    new = ch("a", "deleted", None, lastmod_minutes=2)
    assert when(old) == T0 + timedelta(minutes=9)
    cs = collapse([old, new], None)
    assert locs(cs.changes) == [("a", "updated")]
    # change_time takes precedence over lastmod
    e = ch("x", "updated", 1, lastmod_minutes=100)
    assert when(e) == T0 + timedelta(minutes=1)


def test_since_is_inclusive() -> None:
    since = T0 + timedelta(minutes=5)
    cs = collapse(
        [
            ch("a", "created", 4),
            ch("b", "created", 5),
            ch("c", "created", 6),
            ch("a", "deleted", 3),
        ],
        since,
    )
    assert locs(cs.changes) == [("b", "created"), ("c", "created")]
    assert cs.latest == T0 + timedelta(minutes=6)


def test_nothing_after_since() -> None:
    cs = collapse([ch("a", "created", 1)], T0 + timedelta(hours=1))
    assert cs.changes == ()
    assert cs.latest is None


def test_undated_changes_are_kept_and_sort_first() -> None:
    cs = collapse([ch("a", "updated", 1), ch("b", "updated", None)], T0 + timedelta(minutes=1))
    assert locs(cs.changes) == [("b", "updated"), ("a", "updated")]
    assert cs.latest == T0 + timedelta(minutes=1)


def test_alias_suffixes_for_dspace_deleted_metadata() -> None:
    assert alias_suffixes("https://repo.example/rs/123456789/42/qdc") == [
        "/resource/123456789/42/qdc",
        "/resource/42/qdc",
    ]
    # a source at the server root: the handle and prefix are the whole path
    assert alias_suffixes("https://repo.example/123456789/42/qdc") == [
        "/resource/123456789/42/qdc",
        "/resource/42/qdc",
    ]
    assert alias_suffixes("https://repo.example/qdc") == []
    assert alias_suffixes("https://repo.example/a/b") == ["/resource/a/b"]


def test_alias_suffix_finds_the_published_record(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite")
    published = "https://repo.example/rs/resource/123456789/42/qdc"
    other = "https://repo.example/rs/resource/123456789/421/qdc"
    state.upsert_entries([Entry(loc=published), Entry(loc=other)], 1)
    deleted_loc = "https://repo.example/rs/123456789/42/qdc"
    suffix = alias_suffixes(deleted_loc)[0]
    assert state.find_by_suffix(suffix) == [published]
    state.close()
