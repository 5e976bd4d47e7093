"""safe_filename, content_disposition, filename_from_url."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import pytest

from sync.filenames import (
    MAX_NAME_BYTES,
    ascii_fallback,
    content_disposition,
    filename_from_url,
    safe_filename,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("a\x00b\nc.pdf", "abc.pdf"),
        ("report\x7f\x85.pdf", "report.pdf"),
        (".", "file"),
        ("..", "file"),
        ("", "file"),
        ("dir/", "file"),
        ("  spaced.txt  ", "spaced.txt"),
        ("Łódź café.pdf", "Łódź café.pdf"),
        ('say "hi".txt', 'say "hi".txt'),
    ],
)
def test_safe_filename(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_safe_filename_fallback_is_used_and_sanitised() -> None:
    assert safe_filename("..", fallback="item.bin") == "item.bin"
    assert safe_filename("", fallback="../x") == "x"
    assert safe_filename("", fallback="..") == "file"


def test_safe_filename_normalises_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "café.pdf")
    assert decomposed != "café.pdf"
    assert safe_filename(decomposed) == "café.pdf"


def test_long_name_keeps_extension_and_byte_cap() -> None:
    name = "x" * 300 + ".pdf"
    out = safe_filename(name)
    assert out.endswith(".pdf")
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES


def test_long_multibyte_name_is_not_cut_inside_a_character() -> None:
    name = "ł" * 300 + ".tar"
    out = safe_filename(name)
    assert out.endswith(".tar")
    assert len(out.encode("utf-8")) <= MAX_NAME_BYTES
    out.encode("utf-8").decode("utf-8")  # valid UTF-8
    assert set(out[:-4]) == {"ł"}


def test_long_name_without_extension() -> None:
    out = safe_filename("y" * 300)
    assert out == "y" * MAX_NAME_BYTES


def test_ascii_fallback() -> None:
    assert ascii_fallback("Łódź café.pdf") == "_odz cafe.pdf"
    assert ascii_fallback("Müller – Jörg.txt") == "Muller _ Jorg.txt"


def test_content_disposition_non_ascii() -> None:
    value = content_disposition("Łódź café.pdf")
    assert value.isascii()
    assert value.startswith('attachment; filename="_odz cafe.pdf"; ')
    star = value.split("filename*=", 1)[1]
    assert star.startswith("UTF-8''")
    assert " " not in star
    assert unquote(star[len("UTF-8''") :], encoding="utf-8") == "Łódź café.pdf"


def test_content_disposition_escapes_quotes_and_strips_dirs() -> None:
    value = content_disposition('../a "b" \\c.txt')
    # the directory part is gone (backslash is a separator), quotes are escaped
    assert 'filename="c.txt"' in value
    value = content_disposition('say "hi".txt')
    assert 'filename="say \\"hi\\".txt"' in value
    assert "filename*=UTF-8''say%20%22hi%22.txt" in value


def test_content_disposition_plain_ascii() -> None:
    assert content_disposition("data.csv") == (
        "attachment; filename=\"data.csv\"; filename*=UTF-8''data.csv"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/bitstreams/a/report.pdf", "report.pdf"),
        ("http://h/files/%C5%81%C3%B3d%C5%BA%20caf%C3%A9.pdf?x=1#f", "Łódź café.pdf"),
        ("http://h/files/bad%FF%FEname.pdf", "bad\ufffd\ufffdname.pdf"),
        ("http://h/dir/", "dir"),
        ("http://h/", "file"),
        ("http://h", "file"),
        ("http://h/a/..%2F..%2Fetc%2Fpasswd", "passwd"),
    ],
)
def test_filename_from_url(url: str, expected: str) -> None:
    assert filename_from_url(url) == expected
