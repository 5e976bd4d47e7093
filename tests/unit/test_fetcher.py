"""Fetcher: downloads are proven to be what the source announced before they are deposited."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sync.errors import FetchError, IntegrityError, OutsideSourceError
from sync.fetcher import Fetcher, sniff, verify
from sync.http import Download, Http, HttpSettings, host_key
from sync.model import Entry

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>Sign in</body></html>\n"


class Files(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.hits: Counter[str] = Counter()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        body, headers = self.server.files.get(self.path, (b"", {}))
        self.send_response(200 if self.path in self.server.files else 404)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fetcher(files: Files, tmp_path: Path, max_file_size: int = 10_000) -> Fetcher:
    http = Http(HttpSettings(attempts=1, per_host_rate=0), allowed_hosts={host_key(files.base)})
    return Fetcher(http, max_file_size=max_file_size, tmpdir=str(tmp_path))


def download(tmp_path: Path, data: bytes) -> Download:
    path = tmp_path / "dl.part"
    path.write_bytes(data)
    return Download(
        url="https://s/x",
        path=path,
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=None,
        filename=None,
    )


def leftovers(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("rsw-*"))


# -- verify ----------------------------------------------------------------------------------


def test_verify_accepts_matching_length_and_hashes(tmp_path: Path) -> None:
    data = b"payload"
    entry = Entry(
        loc="https://s/x",
        length=len(data),
        hashes=(
            ("md5", hashlib.md5(data).hexdigest().upper()),
            ("sha-256", hashlib.sha256(data).hexdigest()),
            ("sha-1", hashlib.sha1(data).hexdigest()),
        ),
    )
    verify(entry, download(tmp_path, data))  # no exception
    verify(Entry(loc="https://s/x"), download(tmp_path, data))  # nothing announced


def test_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError) as info:
        verify(Entry(loc="https://s/len", length=8), download(tmp_path, b"payload"))
    assert info.value.resource == "https://s/len"
    assert "length" in str(info.value)
    assert "https://s/len" in str(info.value)


@pytest.mark.parametrize("algorithm", ["md5", "sha-256", "sha-1"])
def test_hash_mismatch(tmp_path: Path, algorithm: str) -> None:
    entry = Entry(loc="https://s/h", length=7, hashes=((algorithm, "0" * 32),))
    with pytest.raises(IntegrityError) as info:
        verify(entry, download(tmp_path, b"payload"))
    assert info.value.resource == "https://s/h"
    assert algorithm in str(info.value)


def test_one_bad_hash_among_good_ones_fails(tmp_path: Path) -> None:
    data = b"payload"
    entry = Entry(
        loc="https://s/h",
        hashes=(("md5", hashlib.md5(data).hexdigest()), ("sha-256", "ab" * 32)),
    )
    with pytest.raises(IntegrityError) as info:
        verify(entry, download(tmp_path, data))
    assert "sha-256" in str(info.value)


def test_unknown_algorithm_cannot_be_checked(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError):
        verify(Entry(loc="https://s/h", hashes=(("crc32", "00"),)), download(tmp_path, b"x"))


# -- fetch -----------------------------------------------------------------------------------


def test_fetch_a_good_file_with_disposition_name(files: Files, tmp_path: Path) -> None:
    files.files["/bitstreams/1"] = (
        PDF,
        {
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="x.pdf"; '
            "filename*=UTF-8''Rapport%20annuel%20%C3%A9t%C3%A9.pdf",
        },
    )
    entry = Entry(
        loc=files.base + "/bitstreams/1",
        length=len(PDF),
        hashes=(("md5", hashlib.md5(PDF).hexdigest()),),
        type="application/pdf",
    )
    got = fetcher(files, tmp_path).fetch(entry)
    assert got.filename == "Rapport annuel été.pdf"
    assert got.content_type == "application/pdf"
    assert got.path.read_bytes() == PDF
    assert got.entry is entry
    got.discard()
    assert leftovers(tmp_path) == []


def test_filename_from_url_without_disposition(files: Files, tmp_path: Path) -> None:
    files.files["/files/data%20set.csv"] = (b"a,b\n1,2\n", {"Content-Type": "text/csv"})
    got = fetcher(files, tmp_path).fetch(Entry(loc=files.base + "/files/data%20set.csv"))
    assert got.filename == "data set.csv"
    assert got.content_type.startswith("text/")  # sniffed or served, never octet-stream
    got.discard()


def test_disposition_with_path_is_made_safe(files: Files, tmp_path: Path) -> None:
    files.files["/f"] = (b"data", {"Content-Disposition": 'attachment; filename="../../etc/cron"'})
    got = fetcher(files, tmp_path).fetch(Entry(loc=files.base + "/f"))
    assert got.filename == "cron"
    got.discard()


def test_hash_mismatch_discards_the_download(files: Files, tmp_path: Path) -> None:
    files.files["/f"] = (PDF, {"Content-Type": "application/pdf"})
    entry = Entry(loc=files.base + "/f", hashes=(("md5", "f" * 32),), type="application/pdf")
    with pytest.raises(IntegrityError) as info:
        fetcher(files, tmp_path).fetch(entry)
    assert info.value.resource == files.base + "/f"
    assert leftovers(tmp_path) == []


def test_sha256_mismatch_via_fetch(files: Files, tmp_path: Path) -> None:
    files.files["/f"] = (b"tampered", {})
    entry = Entry(loc=files.base + "/f", hashes=(("sha-256", hashlib.sha256(b"orig").hexdigest()),))
    with pytest.raises(IntegrityError):
        fetcher(files, tmp_path).fetch(entry)
    assert leftovers(tmp_path) == []


def test_length_mismatch_via_fetch(files: Files, tmp_path: Path) -> None:
    files.files["/f"] = (b"12345", {})
    with pytest.raises(IntegrityError) as info:
        fetcher(files, tmp_path).fetch(Entry(loc=files.base + "/f", length=6))
    assert "length" in str(info.value)
    assert leftovers(tmp_path) == []


def test_sniffing_works_here(tmp_path: Path) -> None:
    (tmp_path / "page").write_bytes(HTML)
    assert sniff(str(tmp_path / "page")) == "text/html", "python-magic / libmagic missing"


@pytest.mark.parametrize("served", ["application/pdf", "text/html; charset=utf-8"])
def test_html_served_for_an_announced_pdf_is_refused(
    files: Files, tmp_path: Path, served: str
) -> None:
    files.files["/bitstreams/2"] = (HTML, {"Content-Type": served})
    entry = Entry(loc=files.base + "/bitstreams/2", type="application/pdf")
    with pytest.raises(IntegrityError) as info:
        fetcher(files, tmp_path).fetch(entry)
    assert "HTML" in str(info.value)
    assert info.value.resource == files.base + "/bitstreams/2"
    assert leftovers(tmp_path) == []


def test_html_announced_as_html_is_fine(files: Files, tmp_path: Path) -> None:
    files.files["/page"] = (HTML, {"Content-Type": "text/html"})
    got = fetcher(files, tmp_path).fetch(Entry(loc=files.base + "/page", type="text/html"))
    assert got.content_type == "text/html"
    got.discard()


def test_announced_length_over_max_file_size_is_not_downloaded(
    files: Files, tmp_path: Path
) -> None:
    files.files["/big"] = (b"x" * 200, {})
    with pytest.raises(IntegrityError) as info:
        fetcher(files, tmp_path, max_file_size=100).fetch(
            Entry(loc=files.base + "/big", length=200)
        )
    assert "maximum file size" in str(info.value)
    assert files.hits["/big"] == 0


def test_unannounced_oversize_body_is_refused(files: Files, tmp_path: Path) -> None:
    files.files["/big"] = (b"x" * 200, {})
    with pytest.raises(FetchError) as info:
        fetcher(files, tmp_path, max_file_size=100).fetch(Entry(loc=files.base + "/big"))
    assert "100" in str(info.value)
    assert leftovers(tmp_path) == []


def test_file_outside_the_source_is_refused(files: Files, tmp_path: Path) -> None:
    with pytest.raises(OutsideSourceError):
        fetcher(files, tmp_path).fetch(Entry(loc="http://localhost:1/elsewhere.pdf"))
