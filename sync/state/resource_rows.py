"""A list entry as the row the state DB stores for it, built for bulk loads.

Reading a 200,000-entry resource list spends most of its state-side time turning entries into
rows: JSON-encoding links that are nearly always absent and formatting datetimes. Here an
entry without links costs a constant, a datetime already in UTC skips the conversion, and
the hashes are read in one pass. The stored text is exactly what the general path writes
(``sqlite.links_json`` / ``sqlite._dt``): other code compares and parses it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from datetime import UTC, datetime
from typing import Any

from ..model import Entry, Link

_string: Callable[[str], str] = encode_basestring  # json's own (C) encoder of a str
NO_LINKS = "[]"  # json.dumps([]): what an entry without links has always stored

# loc, lastmod, md5, sha1, sha256, length, type, links, seen_run, changed_run, change,
# change_time: the parameters of ``sqlite.UPSERT_RESOURCE``
ResourceRow = tuple[Any, ...]


def utc_text(value: datetime | None) -> str | None:
    """``value`` in UTC as ISO 8601 text (``2020-01-01T00:00:00+00:00``), None for None."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # what the list parsers produce: no conversion needed
        return value.isoformat()
    return value.astimezone(UTC).isoformat()


def links_text(links: Iterable[Link]) -> str:
    """Links as the JSON the state stores: ``[[rel, href, type, [[name, value], ...]], ...]``,
    exactly as ``json.dumps(..., ensure_ascii=False)`` writes it (its own string encoder,
    its separators), in a quarter of the time."""
    if not links:
        return NO_LINKS
    try:
        return "[" + ", ".join(map(_link_json, links)) + "]"
    except TypeError:  # not a string where one belongs: let json say what it makes of it
        return json.dumps(
            [[ln.rel, ln.href, ln.type, [list(a) for a in ln.attrs]] for ln in links],
            ensure_ascii=False,
        )


def _link_json(ln: Link) -> str:
    kind = "null" if ln.type is None else _string(ln.type)
    attrs = ", ".join(f"[{_string(name)}, {_string(value)}]" for name, value in ln.attrs)
    return f"[{_string(ln.rel)}, {_string(ln.href)}, {kind}, [{attrs}]]"


def resource_row(e: Entry, run_id: int) -> ResourceRow:
    """The parameters that record ``e`` as seen (and, if it differs, changed) in ``run_id``."""
    md5 = sha1 = sha256 = None
    for alg, value in e.hashes:  # usually one; the first of each algorithm counts, as in
        if alg == "md5":  # Entry.hash
            if md5 is None:
                md5 = value
        elif alg == "sha-1":
            if sha1 is None:
                sha1 = value
        elif alg == "sha-256" and sha256 is None:
            sha256 = value
    return (
        e.loc,
        utc_text(e.lastmod),
        md5,
        sha1,
        sha256,
        e.length,
        e.type,
        links_text(e.links) if e.links else NO_LINKS,
        run_id,
        run_id,
        e.change,
        None if e.change_time is None else utc_text(e.change_time),
    )
