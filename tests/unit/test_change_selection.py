"""Which change-list entries a run applies (#8): documents new since the last sync apply every
entry without a datetime, whatever its lastmod; what is left out is counted, never silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.changes import (
    SkipReport,
    document_digest,
    document_key,
    is_new_document,
    select_changes,
)
from sync.engine import later as later_cursor
from sync.model import Entry, ListInfo

SINCE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OLD = SINCE - timedelta(days=400)
URL = "https://src.example/changelist.xml"


def info(**md: datetime | None) -> ListInfo:
    return ListInfo(url=URL, capability="changelist", is_index=False, **md)  # type: ignore[arg-type]


def entry(name: str, *, lastmod: datetime | None = OLD, at: datetime | None = None) -> Entry:
    return Entry(
        loc=f"https://src.example/{name}", change="updated", lastmod=lastmod, change_time=at
    )


def key_of(entries: list[Entry]) -> str:
    return document_key(URL, document_digest(entries))


def test_a_document_never_read_applies_entries_without_datetime_whatever_their_lastmod() -> None:
    entries = [entry("a"), entry("b", lastmod=None)]
    report = SkipReport()
    kept = select_changes(info(), entries, SINCE, set(), report)
    assert kept == entries
    assert report.total == 0 and report.documents_read == [key_of(entries)]


def test_the_same_document_read_again_is_counted_not_applied() -> None:
    entries = [entry("a"), entry("b")]
    report = SkipReport()
    assert select_changes(info(), entries, SINCE, {key_of(entries)}, report) == []
    assert report.already_read == 2
    assert "2 change entries not applied" in report.describe()


def test_a_rewritten_document_at_the_same_url_is_new() -> None:
    before = [entry("a")]
    after = [entry("a"), entry("c")]
    assert key_of(before) != key_of(after)
    kept = select_changes(info(), after, SINCE, {key_of(before)}, SkipReport())
    assert kept == after


def test_a_document_dated_after_the_cursor_is_new_even_if_read() -> None:
    entries = [entry("a")]
    read = {key_of(entries)}
    assert is_new_document(info(from_=SINCE + timedelta(hours=1)), key_of(entries), SINCE, read)
    assert is_new_document(info(at=SINCE), key_of(entries), SINCE, read)
    assert not is_new_document(info(from_=OLD), key_of(entries), SINCE, read)


def test_entries_with_a_datetime_are_judged_by_it() -> None:
    new, old = entry("n", at=SINCE + timedelta(minutes=1)), entry("o", at=SINCE - timedelta(1))
    report = SkipReport()
    assert select_changes(info(), [new, old], SINCE, set(), report) == [new]
    assert report.before_cursor == 1 and "dated before the cursor" in report.describe()


def test_a_closed_list_that_ended_before_the_cursor_is_counted() -> None:
    entries = [entry("a"), entry("b")]
    report = SkipReport()
    assert select_changes(info(until=OLD), entries, SINCE, set(), report) == []
    assert report.closed_before_cursor == 2


def test_first_sync_applies_everything() -> None:
    entries = [entry("a", at=OLD)]
    assert select_changes(info(until=OLD), entries, None, set(), SkipReport()) == entries


def test_the_cursor_never_moves_back() -> None:
    assert later_cursor(OLD.isoformat(), SINCE.isoformat()) == SINCE.isoformat()
    later = SINCE + timedelta(hours=1)
    assert later_cursor(later.isoformat(), SINCE.isoformat()) == later.isoformat()
    assert later_cursor(None, SINCE.isoformat()) == SINCE.isoformat()
    assert later_cursor(None, None) is None
