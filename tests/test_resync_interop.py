"""Cross-checks with the reference implementation (the `resync` package, 2.0.1).

resync-sword does not use resync at run time (see README: it parses whole documents in
memory, cannot read change list indexes, and its W3C datetime parser adds a timezone offset
instead of subtracting it). It is still the reference reading of the spec: our local source
must be readable by it, and our streaming parser must read the same entries from it.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import requests
from resync.sitemap import Sitemap
from resync.w3c_datetime import str_to_datetime

from sync.http import Http
from sync.sources.resourcesync.lists import ListReader, parse_datetime
from tests.servers.fixtures import SourceModel


def _resync_parse(url: str):
    data = requests.get(url, timeout=10).content
    return Sitemap().parse_xml(fh=io.BytesIO(data))


def test_reference_parser_and_ours_read_the_same_entries(source_factory, tmp_path: Path) -> None:
    model = SourceModel.generate(30, seed=3)
    src = source_factory(model)
    theirs = {r.uri: r for r in _resync_parse(src.base_url + "/resourcelist.xml").resources}
    reader = ListReader(Http(), tmpdir=str(tmp_path))
    ours = {}
    for _info, entries in reader.walk(src.base_url + "/resourcelist.xml"):
        ours.update({e.loc: e for e in entries})
    assert ours.keys() == theirs.keys() and len(ours) > 30
    for loc, entry in ours.items():
        ref = theirs[loc]
        assert entry.hash("md5") == ref.md5
        assert entry.hash("sha-256") == ref.sha256
        assert entry.length == ref.length
        assert entry.type == ref.mime_type
        assert sorted((ln.rel, ln.href) for ln in entry.links) == sorted(
            (ln["rel"].lower(), ln["href"]) for ln in (ref.ln or [])
        )
        assert entry.lastmod is not None
        assert entry.lastmod.timestamp() == ref.timestamp


def test_reference_parser_reads_capability_and_change_lists(source_factory) -> None:
    model = SourceModel.generate(6, seed=4)
    src = source_factory(model)
    key = sorted(model.items)[0]
    model.delete_item(key)
    caps = _resync_parse(src.base_url + "/capabilitylist.xml")
    assert caps.capability == "capabilitylist"
    changes = _resync_parse(src.base_url + "/changelist.xml")
    assert changes.capability == "changelist"
    assert {r.change for r in changes.resources} == {"deleted"}


def test_reference_datetime_parser_gets_offsets_wrong_and_ours_does_not() -> None:
    """Why lists.parse_datetime does not delegate to resync.w3c_datetime."""
    text = "2024-01-01T14:00:00+02:00"
    right = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_datetime(text, where="test") == right
    assert datetime.fromtimestamp(str_to_datetime(text), tz=UTC) != right
