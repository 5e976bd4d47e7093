"""The shortcuts of list reading give the same results as the general paths they skip."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urljoin

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sync import entry_factory
from sync.entry_factory import make_entry, make_link
from sync.errors import OutsideSourceError
from sync.http import Http, host_key
from sync.model import Entry, Link
from sync.sources.resourcesync.origin_memo import OriginMemo, origin_prefix
from sync.urls import join_url as resolve_href

T = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# -- make_entry ------------------------------------------------------------------------------


def test_entry_layout_allows_the_fast_constructor() -> None:
    assert entry_factory.FAST, "Entry changed: make_entry falls back to the slow constructor"


def test_make_entry_is_the_same_object_as_the_constructor() -> None:
    link = Link("describedby", "https://s/md", "application/xml", (("pri", "1"),))
    args = (
        "https://s/a", T, (("md5", "a" * 32),), 3, "application/pdf", (link,),
        "updated", T, "resourcelist", None, T,
    )  # fmt: skip
    fast, plain = make_entry(*args), Entry(*args)
    assert fast == plain
    assert hash(fast) == hash(plain)
    assert repr(fast) == repr(plain)
    assert fast.fingerprint == plain.fingerprint
    assert fast.links_with("describedby") == [link]
    with pytest.raises(AttributeError):
        fast.loc = "https://elsewhere/"  # type: ignore[misc]  # still frozen


def test_make_entry_falls_back_when_entry_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry_factory, "FAST", False)
    e = make_entry("https://s/a", None, (), None, None, (), None, None, None, None, None)
    assert e == Entry("https://s/a")


def test_make_link_is_the_same_object_as_the_constructor() -> None:
    assert entry_factory.FAST_LINK
    args = ("describedby", "https://s/md", "application/xml", (("pri", "1"),))
    fast, plain = make_link(*args), Link(*args)
    assert (fast, hash(fast), repr(fast)) == (plain, hash(plain), repr(plain))
    with pytest.raises(AttributeError):
        fast.href = "https://elsewhere/"  # type: ignore[misc]


# -- resolve_href ----------------------------------------------------------------------------

TRICKY = "ab/:.?#;[]@%&=+ \t\n~'\\é\u00a0-_0HTps"
bases = st.sampled_from(
    ["http://s.example/r/1", "https://s.example/a/b?q#f", "HTTP://S/x", "file:///x", "", "rel/x"]
)
hrefs = st.one_of(
    st.text(TRICKY, max_size=30),
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["http://", "https://", "HTTP://", "http:", "http:///"]),
        st.text(TRICKY, max_size=30),
    ),
)


@given(bases, hrefs)
@example("http://s.example/r/1", "http://h/a/../b")
@example("https://s.example/r/1", "http://h/p")
@example("http://s.example/r/1", "http://h/p?")
@example("http://s.example/r/1", "http://h/p;x")
@example("http://s.example/r/1", "http://[::1]/p")
@example("http://s.example/r/1", "http://h/a\tb")
def test_resolve_href_is_urljoin(base: str, href: str) -> None:
    try:
        expected = urljoin(base, href)
    except ValueError:  # urljoin refuses it: so must resolve_href
        with pytest.raises(ValueError):
            resolve_href(base, href)
        return
    assert resolve_href(base, href) == expected


def test_resolve_href_reads_relative_links_against_the_entry() -> None:
    assert resolve_href("http://s.example/r/1", "../md/1") == "http://s.example/md/1"
    assert resolve_href("http://s.example/r/1", "http://o.example/x") == "http://o.example/x"


# -- OriginMemo ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("http://h:8080/a/b", "http://h:8080/"),
        ("https://h/a", "https://h/"),
        ("http://h", None),  # no path: nothing to compare against
        ("http:///a", None),
        ("http://user:pw@h/a", None),  # user info: always the full check
        ("http://h?x/a", None),
        ("http://h\\@evil/a", None),
        ("ftp://h/a", None),
        ("HTTP://h/a", None),
    ],
)
def test_origin_prefix(url: str, prefix: str | None) -> None:
    assert origin_prefix(url) == prefix


def test_a_remembered_origin_is_the_same_host_key() -> None:
    for url in ("http://h:8080/a", "https://H.example/x"):
        prefix = origin_prefix(url)
        assert prefix is not None
        assert host_key(prefix + "other/path?q#f") == host_key(url)


def test_memo_checks_each_new_origin_and_still_refuses_outsiders() -> None:
    http = Http(allowed_hosts={host_key("http://src.example/")})
    asked: list[str] = []

    def check(url: str) -> None:
        asked.append(url)
        http.check_allowed(url, what="resource")

    memo = OriginMemo(check)
    memo("http://src.example/r/1")
    memo("http://src.example/r/2")  # same origin: not asked again
    for bad in (
        "http://evil.example/r/3",
        "http://src.example@evil.example/r/4",
        "http://src.example.evil.example/r/5",
        "file:///etc/passwd",
    ):
        with pytest.raises(OutsideSourceError):
            memo(bad)
    memo("http://src.example/r/6")
    assert asked == [
        "http://src.example/r/1",
        "http://evil.example/r/3",
        "http://src.example@evil.example/r/4",
        "http://src.example.evil.example/r/5",
        "file:///etc/passwd",
    ]
