"""Our XML escaping writes exactly what xml.sax.saxutils writes (the reference), without
importing it at start-up."""

from __future__ import annotations

from xml.sax.saxutils import escape as sax_escape
from xml.sax.saxutils import quoteattr as sax_quoteattr

from hypothesis import given
from hypothesis import strategies as st

from sync.safexml import escape, quoteattr


@given(st.text(alphabet="ab&<>\"'\n\r\t é;#"))
def test_escape_and_quoteattr_match_saxutils(text: str) -> None:
    assert escape(text) == sax_escape(text)
    assert quoteattr(text) == sax_quoteattr(text)
