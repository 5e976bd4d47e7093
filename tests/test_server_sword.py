"""Smoke tests of the local SWORD v2 server with plain ``requests``."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from defusedxml import ElementTree as SafeET

from tests.servers.sword_server import SwordServer, SwordStore

ATOM = "{http://www.w3.org/2005/Atom}"
SWORD = "{http://purl.org/net/sword/terms/}"
APP = "{http://www.w3.org/2007/app}"
AUTH = ("sword", "secret")
ENTRY_CT = "application/atom+xml;type=entry; charset=utf-8"
BINARY = "http://purl.org/net/sword/package/Binary"


def entry(title: str, **dc: str) -> bytes:
    fields = "".join(f"<dcterms:{k}>{v}</dcterms:{k}>" for k, v in dc.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<entry xmlns="http://www.w3.org/2005/Atom" xmlns:dcterms="http://purl.org/dc/terms/">'
        f"<title>{title}</title><dcterms:title>{title}</dcterms:title>{fields}</entry>"
    ).encode()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    started: list[SwordServer] = []

    def make(**kwargs: object) -> SwordServer:
        server = SwordServer(tmp_path / "store", **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> SwordServer:  # type: ignore[no-untyped-def]
    return make_server()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        yield session


def links(receipt: bytes) -> dict[str, str]:
    root = SafeET.fromstring(receipt)
    out: dict[str, str] = {}
    for link in root.iter(f"{ATOM}link"):
        if link.get("type") and link.get("rel") == "edit-media":
            continue
        out[link.get("rel", "")] = link.get("href", "")
    return out


def create(
    http: requests.Session, server: SwordServer, slug: str | None = None, in_progress: bool = True
) -> dict[str, str]:
    headers = {"Content-Type": ENTRY_CT, "In-Progress": "true" if in_progress else "false"}
    if slug:
        headers["Slug"] = slug
    r = http.post(
        server.col_iri("default"), data=entry("Łódź café", creator="Ünal"), headers=headers
    )
    assert r.status_code == 201, r.text
    got = links(r.content)
    assert r.headers["Location"] == got["edit"]
    return got


def upload_headers(name: str, md5: str) -> dict[str, str]:
    return {
        "Content-Type": "application/pdf",
        "Content-Disposition": f"attachment; filename=\"x.pdf\"; filename*=UTF-8''{quote(name)}",
        "Content-MD5": md5,
        "Packaging": BINARY,
        "In-Progress": "true",
    }


def state_of(http: requests.Session, statement: str) -> str:
    r = http.get(statement)
    assert r.status_code == 200
    state = SafeET.fromstring(r.content).find(f"{SWORD}state")
    assert state is not None
    return state.get("href", "").rsplit("/", 1)[-1]


def test_auth_required(server: SwordServer) -> None:
    r = requests.get(server.sd_iri)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(server.sd_iri, auth=("sword", "wrong")).status_code == 401
    body = entry("x")
    r = requests.post(server.col_iri("default"), data=body, headers={"Content-Type": ENTRY_CT})
    assert r.status_code == 401
    assert server.store.containers() == []


def test_service_document(make_server, http: requests.Session) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_upload_kb=10, mediation=False)
    r = http.get(server.sd_iri)
    assert r.status_code == 200
    root = SafeET.fromstring(r.content)
    assert root.findtext(f"{SWORD}version") == "2.0"
    assert root.findtext(f"{SWORD}maxUploadSize") == "10"
    cols = root.findall(f"{APP}workspace/{APP}collection")
    assert [c.get("href") for c in cols] == [
        server.col_iri(n) for n in ("default", "theses", "articles")
    ]
    assert cols[0].findtext(f"{SWORD}mediation") == "false"
    assert cols[0].findtext(f"{SWORD}acceptPackaging") == BINARY
    r = http.get(server.sd_iri, headers={"On-Behalf-Of": "someone"})
    assert r.status_code == 412
    assert b"MediationNotAllowed" in r.content
    r = http.put(server.col_iri("default") + "x", data=b"x" * 20000)
    assert r.status_code == 404


def test_deposit_lifecycle(server: SwordServer, http: requests.Session) -> None:
    got = create(http, server, slug="item-1")
    assert got["edit"] == server.base_url + "/edit/item-1"
    assert got["edit-media"] == server.base_url + "/em/item-1"
    em, statement = got["edit-media"], got["http://purl.org/net/sword/terms/statement"]
    assert got["http://purl.org/net/sword/terms/add"] == got["edit"]
    assert state_of(http, statement) == "in-progress"

    data = b"%PDF-1.4 payload " * 1000
    md5 = hashlib.md5(data).hexdigest()
    name = "Łódź résumé 1.pdf"
    r = http.post(em, data=data, headers=upload_headers(name, "0" * 32))
    assert r.status_code == 412
    assert b"ErrorChecksumMismatch" in r.content
    stored = server.store.get("item-1")
    assert stored is not None and stored.files == []
    assert list((server.root / "default" / "item-1" / "files").iterdir()) == []

    b64 = base64.b64encode(hashlib.md5(data).digest()).decode()
    r = http.post(em, data=data, headers=upload_headers(name, b64))
    assert r.status_code == 201, r.text
    file_iri = r.headers["Location"]
    assert file_iri.startswith(server.base_url + "/file/item-1/")
    assert http.get(file_iri).content == data

    r = http.post(got["edit"], data=b"", headers={"In-Progress": "false"})
    assert r.status_code == 200
    assert state_of(http, statement) == "archived"
    feed = SafeET.fromstring(http.get(statement).content)
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [name]
    assert entries[0].find(f"{ATOM}content").get("src") == file_iri  # type: ignore[union-attr]

    stored = server.store.get("item-1")
    assert stored is not None
    assert stored.state == "archived" and stored.slug == "item-1"
    assert stored.dc["title"] == ["Łódź café"] and stored.dc["creator"] == ["Ünal"]
    (f,) = stored.files
    assert (f.name, f.md5, f.size, f.content_type) == (name, md5, len(data), "application/pdf")
    assert f.path.read_bytes() == data and f.iri == file_iri

    with zipfile.ZipFile(io.BytesIO(http.get(em).content)) as zf:
        assert zf.read(name) == data

    # PUT on the Edit-IRI replaces the metadata
    r = http.put(got["edit"], data=entry("New title"), headers={"Content-Type": ENTRY_CT})
    assert r.status_code == 200
    stored = server.store.get("item-1")
    assert stored is not None and stored.dc == {"title": ["New title"]}
    assert b"New title" in stored.entry_xml

    # a second create with the same slug gets a generated id
    again = create(http, server, slug="item-1")
    assert again["edit"] != got["edit"]

    assert http.delete(got["edit"]).status_code == 204
    for iri in (got["edit"], em, statement, file_iri):
        assert http.get(iri).status_code == 404
    assert server.store.get("item-1").state == "deleted"  # type: ignore[union-attr]
    assert [c.id for c in server.store.containers()] == [again["edit"].rsplit("/", 1)[1]]


def test_collection_feed_lists_slugs(server: SwordServer, http: requests.Session) -> None:
    create(http, server, slug="a-1")
    create(http, server, slug="b-2")
    gone = create(http, server, slug="c-3")
    http.delete(gone["edit"])
    r = http.get(server.col_iri("default"))
    assert r.status_code == 200
    feed = SafeET.fromstring(r.content)
    slugs = [e.findtext(f"{SWORD}slug") for e in feed.findall(f"{ATOM}entry")]
    assert slugs == ["a-1", "b-2"]
    assert http.get(server.col_iri("theses")).content.count(b"<entry") == 0
    assert http.get(server.col_iri("nope")).status_code == 404


def test_archived_readonly(make_server, http: requests.Session) -> None:  # type: ignore[no-untyped-def]
    server = make_server(archived_readonly=True)
    got = create(http, server, slug="ro")
    data = b"abc"
    r = http.post(got["edit-media"], data=data, headers=upload_headers("a.txt", "x"))
    assert r.status_code == 412  # unreadable MD5
    r = http.post(
        got["edit-media"], data=data, headers=upload_headers("a.txt", hashlib.md5(data).hexdigest())
    )
    assert r.status_code == 201
    file_iri = r.headers["Location"]
    assert http.post(got["edit"], headers={"In-Progress": "false"}).status_code == 200
    for method, iri in (
        ("PUT", got["edit"]),
        ("POST", got["edit"]),
        ("DELETE", got["edit"]),
        ("POST", got["edit-media"]),
        ("PUT", got["edit-media"]),
        ("DELETE", got["edit-media"]),
        ("DELETE", file_iri),
    ):
        r = http.request(method, iri, data=entry("x"), headers={"Content-Type": ENTRY_CT})
        assert r.status_code == 405, (method, iri)
        assert b"MethodNotAllowed" in r.content
    assert http.get(got["edit"]).status_code == 200
    assert http.get(file_iri).content == data


def test_chunked_upload_and_limits(make_server, http: requests.Session) -> None:  # type: ignore[no-untyped-def]
    server = make_server(max_upload_kb=64)
    got = create(http, server, slug="big")
    data = bytes(range(256)) * 200  # 51,200 bytes

    def gen() -> Iterator[bytes]:
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]

    headers = upload_headers("chunked.bin", hashlib.md5(data).hexdigest())
    r = http.post(got["edit-media"], data=gen(), headers=headers)
    assert r.status_code == 201, r.text
    (f,) = server.store.get("big").files  # type: ignore[union-attr]
    assert f.size == len(data) and f.path.read_bytes() == data

    big = data * 2
    headers = upload_headers("big.bin", hashlib.md5(big).hexdigest())
    r = http.post(got["edit-media"], data=big, headers=headers)
    assert r.status_code == 413 and b"MaxUploadSizeExceeded" in r.content
    r = http.post(got["edit-media"], data=iter([big[:40000], big[40000:]]), headers=headers)
    assert r.status_code == 413
    assert len(server.store.get("big").files) == 1  # type: ignore[union-attr]

    # PUT on the EM-IRI replaces every file; DELETE on a file IRI removes one
    r = http.put(got["edit-media"], data=b"new", headers=upload_headers("n.txt", ""))
    assert r.status_code == 204
    (f,) = server.store.get("big").files  # type: ignore[union-attr]
    assert f.name == "n.txt" and f.path.read_bytes() == b"new"
    assert http.delete(f.iri).status_code == 204
    assert server.store.get("big").files == []  # type: ignore[union-attr]


def test_bad_requests_and_options(make_server, http: requests.Session) -> None:  # type: ignore[no-untyped-def]
    server = make_server(per_file_iris=False, honour_slug=False, complete_state="inworkflow")
    r = http.post(server.col_iri("default"), data=b"<entry", headers={"Content-Type": ENTRY_CT})
    assert r.status_code == 400 and b"ErrorBadRequest" in r.content
    got = create(http, server, slug="ignored")
    assert not got["edit"].endswith("/ignored")
    r = http.post(got["edit-media"], data=b"x", headers=upload_headers("x.txt", ""))
    assert r.status_code == 201
    file_iri = r.headers["Location"]
    assert http.delete(file_iri).status_code == 405
    http.post(got["edit"], headers={"In-Progress": "false"})
    statement = got["http://purl.org/net/sword/terms/statement"]
    assert state_of(http, statement) == "inworkflow"
    assert file_iri.encode() not in http.get(statement).content

    # binary deposit straight to the Col-IRI completes at once (In-Progress defaults to false)
    r = http.post(
        server.col_iri("theses"),
        data=b"hello",
        headers={"Content-Disposition": "attachment; filename=hello.txt", "Packaging": BINARY},
    )
    assert r.status_code == 201
    cid = r.headers["Location"].rsplit("/", 1)[1]
    stored = server.store.get(cid)
    assert stored is not None and stored.collection == "theses" and stored.state == "inworkflow"
    assert [f.name for f in stored.files] == ["hello.txt"]


def test_restart_keeps_state(make_server, http: requests.Session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = make_server()
    create(http, first, slug="kept")
    first.stop()
    second = make_server()
    assert http.get(second.base_url + "/edit/kept").status_code == 200
    store = SwordStore(tmp_path / "store")
    assert [c.id for c in store.containers("default")] == ["kept"]
    assert store.get("kept").edit_iri == second.base_url + "/edit/kept"  # type: ignore[union-attr]


def test_command_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.sword_server", "--root", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        sd = proc.stdout.readline().strip()
        assert sd.endswith("/sd")
        assert requests.get(sd, auth=AUTH, timeout=5).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


def test_reference_mode_behaves_like_the_reference_server(make_server, http) -> None:  # type: ignore[no-untyped-def]
    server = make_server(reference=True, max_upload_kb=4)
    sd = http.get(server.sd_iri, timeout=10)
    assert "<sword:maxUploadSize>4096</sword:maxUploadSize>" in sd.text  # bytes, not kB
    created = http.post(
        server.col_iri("default"),
        data=entry("Ref"),
        headers={"Content-Type": ENTRY_CT, "Slug": "my-slug", "In-Progress": "true"},
        timeout=10,
    )
    assert created.status_code == 201
    cid = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert cid != "my-slug"  # Slug ignored
    upload = {
        "Content-Disposition": (
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        ),
        "Content-Type": "application/pdf",
        "Packaging": BINARY,
    }
    added = http.post(server.em_iri(cid), data=b"%PDF", headers=upload, timeout=10)
    assert added.status_code == 201
    [stored] = server.store.get(cid).files  # type: ignore[union-attr]
    assert stored.name.endswith('_"r_sum_.pdf"')  # ASCII filename=, quotes kept
    statement = http.get(server.statement_iri(cid), timeout=10).text
    assert hashlib.md5(b"%PDF").hexdigest() not in statement  # no MD5 listed
    assert http.delete(stored.iri, timeout=10).status_code == 405
    empty = http.post(server.em_iri(cid), data=b"", headers=upload, timeout=10)
    assert empty.status_code == 400 and "No content sent to the server" in empty.text
    assert len(server.store.get(cid).files) == 1  # type: ignore[union-attr]
