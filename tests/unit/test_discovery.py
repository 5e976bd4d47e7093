"""Discovery: from whatever URL a user gives to the source's lists (against the local source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.errors import DiscoveryError, DocumentError, OutsideSourceError
from sync.http import Http, HttpSettings, host_key
from sync.sources.resourcesync.discovery import discover
from sync.sources.resourcesync.lists import ListReader
from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource


@pytest.fixture
def source() -> ResourceSyncSource:
    src = ResourceSyncSource(SourceModel.generate(6, seed=1), changelists="archive").start()
    yield src
    src.stop()


def _reader(src: ResourceSyncSource, tmp_path: Path) -> ListReader:
    http = Http(HttpSettings(attempts=1, per_host_rate=0), allowed_hosts={host_key(src.base_url)})
    return ListReader(http, tmpdir=str(tmp_path))


def test_site_root_leads_to_every_list(source: ResourceSyncSource, tmp_path: Path) -> None:
    plan = discover(_reader(source, tmp_path), source.base_url + "/")
    base = source.base_url
    assert plan.descriptions == [f"{base}/.well-known/resourcesync"]
    assert plan.capability_lists == [f"{base}/capabilitylist.xml"]
    assert plan.resource_lists == [f"{base}/resourcelist.xml"]
    assert plan.change_lists == [f"{base}/changelist.xml"]
    assert plan.changelist_archives == [f"{base}/changelist-archive.xml"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/capabilitylist.xml", "resource_lists"),
        ("/resourcelist.xml", "resource_lists"),
        ("/changelist.xml", "change_lists"),
    ],
)
def test_any_document_may_be_the_start(
    source: ResourceSyncSource, tmp_path: Path, path: str, field: str
) -> None:
    plan = discover(_reader(source, tmp_path), source.base_url + path)
    assert getattr(plan, field)


def test_a_resource_list_index_where_a_list_was_expected(tmp_path: Path) -> None:
    src = ResourceSyncSource(SourceModel.generate(12, seed=2), page_size=5).start()
    try:
        reader = _reader(src, tmp_path)
        plan = discover(reader, src.base_url + "/resourcelist.xml")
        assert plan.resource_lists == [src.base_url + "/resourcelist.xml"]
        locs = [e.loc for _info, entries in reader.walk(plan.resource_lists[0]) for e in entries]
        assert len(locs) == len(set(locs)) > 12
    finally:
        src.stop()


def test_html_link_and_link_header_discovery(source: ResourceSyncSource, tmp_path: Path) -> None:
    base = source.base_url
    source.set_override("/.well-known/resourcesync", 404, b"no")
    source.set_override(
        "/",
        200,
        b'<html><head><link rel="resourcesync" href="/capabilitylist.xml"></head></html>',
        {"Content-Type": "text/html"},
    )
    plan = discover(_reader(source, tmp_path), base + "/")
    assert plan.capability_lists == [f"{base}/capabilitylist.xml"]
    source.set_override(
        "/",
        200,
        b"<html></html>",
        {"Content-Type": "text/html", "Link": '</capabilitylist.xml>; rel="resourcesync"'},
    )
    plan = discover(_reader(source, tmp_path), base + "/")
    assert plan.capability_lists == [f"{base}/capabilitylist.xml"]


def test_a_site_without_resourcesync_is_a_clear_error(
    source: ResourceSyncSource, tmp_path: Path
) -> None:
    source.set_override("/.well-known/resourcesync", 404, b"no")
    source.set_override("/", 200, b"<html><body>hello</body></html>", {"Content-Type": "text/html"})
    with pytest.raises(DiscoveryError) as info:
        discover(_reader(source, tmp_path), source.base_url + "/")
    assert "well-known" in str(info.value) and source.base_url in str(info.value)


def test_a_page_that_is_not_a_sitemap_is_refused(
    source: ResourceSyncSource, tmp_path: Path
) -> None:
    source.set_override(
        "/capabilitylist.xml",
        200,
        b"<html><body>login</body></html>",
        {"Content-Type": "text/html"},
    )
    with pytest.raises(DocumentError) as info:
        discover(_reader(source, tmp_path), source.base_url + "/capabilitylist.xml")
    assert "/capabilitylist.xml" in str(info.value)


def test_a_capability_list_on_another_host_is_refused(tmp_path: Path) -> None:
    src = ResourceSyncSource(SourceModel.generate(2, seed=3)).start()
    other = ResourceSyncSource(SourceModel.generate(2, seed=4)).start()
    try:
        src.set_override(
            "/.well-known/resourcesync",
            200,
            (
                '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
                'xmlns:rs="http://www.openarchives.org/rs/terms/">'
                '<rs:md capability="description"/>'
                f"<url><loc>{other.base_url}/capabilitylist.xml</loc>"
                '<rs:md capability="capabilitylist"/></url></urlset>'
            ).encode(),
            {"Content-Type": "application/xml"},
        )
        with pytest.raises(OutsideSourceError) as info:
            discover(_reader(src, tmp_path), src.base_url + "/")
        assert other.base_url in str(info.value)
        assert other.stats.get("total", 0) == 0
    finally:
        src.stop()
        other.stop()
