"""The bulk-load rows store exactly what the general formatting stored before: other code
compares (``changed_run``) and parses (``entries``, ``iter_link_records``) that text."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from sync.model import Entry, Link
from sync.state.resource_rows import NO_LINKS, links_text, resource_row, utc_text
from sync.state.sqlite import links_from_json


def reference_row(e: Entry, run_id: int) -> tuple[object, ...]:
    """The row as ``State.upsert_entries`` built it before (one entry, general path)."""

    def dt(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    links = json.dumps(
        [[ln.rel, ln.href, ln.type, [list(a) for a in ln.attrs]] for ln in e.links],
        ensure_ascii=False,
    )
    return (
        e.loc,
        dt(e.lastmod),
        e.hash("md5"),
        e.hash("sha-1"),
        e.hash("sha-256"),
        e.length,
        e.type,
        links,
        run_id,
        run_id,
        e.change,
        dt(e.change_time),
    )


zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
datetimes = st.none() | st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones
)
text = st.text(max_size=12)
links = st.builds(
    Link,
    rel=text,
    href=text,
    type=st.none() | text,
    attrs=st.lists(st.tuples(text, text), max_size=2).map(tuple),
)
hashes = st.lists(
    st.tuples(st.sampled_from(["md5", "sha-1", "sha-256"]), st.text("0123456789abcdef")),
    max_size=4,
).map(tuple)
entries = st.builds(
    Entry,
    loc=text,
    lastmod=datetimes,
    hashes=hashes,
    length=st.none() | st.integers(min_value=0),
    type=st.none() | text,
    links=st.lists(links, max_size=3).map(tuple),
    change=st.sampled_from([None, "created", "updated", "deleted"]),
    change_time=datetimes,
)


@given(entries, st.integers(min_value=1, max_value=10**6))
def test_row_is_what_the_general_path_stored(entry: Entry, run_id: int) -> None:
    assert resource_row(entry, run_id) == reference_row(entry, run_id)


def test_no_links_is_the_empty_json_list_and_reads_back_empty() -> None:
    assert links_text(()) == NO_LINKS == json.dumps([])
    assert links_from_json(NO_LINKS) == ()


def test_utc_text_converts_other_offsets() -> None:
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_text(plus_two) == "2024-05-01T12:00:00+00:00"
    assert utc_text(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00+00:00"
    assert utc_text(None) is None


def test_first_hash_of_each_algorithm_counts() -> None:
    e = Entry(loc="https://s/a", hashes=(("md5", "aa"), ("sha-256", "cc"), ("md5", "bb")))
    row = resource_row(e, 7)
    assert row[2:5] == ("aa", None, "cc")
