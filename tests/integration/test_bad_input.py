"""Bad and hostile input (#4): each is refused with an error naming the document or resource,
recorded (``status --json``), never deposited, and the run goes on with the other items."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path
from typing import Any

from tests.conftest import Cli
from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource
from tests.servers.sword_server import SwordServer

NS = (
    'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
    'xmlns:rs="http://www.openarchives.org/rs/terms/"'
)
AT = '<rs:md capability="resourcelist" at="2024-05-01T12:00:00Z"/>'
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def urlset(body: str, md: str = AT) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{md}{body}</urlset>\n'.encode()


def index(members: list[str]) -> bytes:
    body = "".join(f"<sitemap><loc>{m}</loc></sitemap>" for m in members)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f"{head}<sitemapindex {NS}>{AT}{body}</sitemapindex>".encode()


def url(
    loc: str,
    *,
    content: bytes | None = None,
    hash: str | None = None,
    length: int | None = None,
    type: str | None = None,
    links: tuple[tuple[str, str], ...] = (),
) -> str:
    """A list entry; with ``content`` the md5, length (unless given) are computed from it."""
    if content is not None:
        hash = hash or f"md5:{hashlib.md5(content).hexdigest()}"
        length = len(content) if length is None else length
    attrs = " ".join(
        f'{k}="{v}"' for k, v in (("hash", hash), ("length", length), ("type", type)) if v
    )
    lns = "".join(f'<rs:ln rel="{r}" href="{h}"/>' for r, h in links)
    return f"<url><loc>{loc}</loc><rs:md {attrs}/>{lns}</url>"


def serve(src: ResourceSyncSource, path: str, body: bytes, ctype: str, **headers: str) -> str:
    src.set_override(path, 200, body, {"Content-Type": ctype, **headers})
    return src.base_url + path


def pipeline(cli: Cli, source: str, sword: SwordServer, options: str = "", name: str = "p") -> Path:
    path = cli.cwd / f"{name}.toml"
    path.write_text(
        f'source = "{source}"\nstate = "{cli.state}"\n[destination]\n'
        f'service_document = "{sword.sd_iri}"\ncollection = "{sword.col_iri("default")}"\n'
        'username = "sword"\n'
        "[options]\nworkers = 4\nper_host_rate = 0\nattempts = 2\nbackoff_initial = 0.01\n"
        + options,
        encoding="utf-8",
    )
    return path


def status(cli: Cli) -> dict[str, Any]:
    result = cli("status", "--state", str(cli.state), "--json")
    assert result.returncode == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def error_for(data: dict[str, Any], loc: str) -> tuple[str, str]:
    """(code, message) recorded for ``loc``: a failed item, or a refusal of the last run."""
    for f in data["not_synced"]:
        if loc in (f["error"] or ""):
            return f["code"], f["error"]
    for e in data["last_run_errors"]:
        if e["resource"] == loc or loc in e["message"]:
            return e["code"], e["message"]
    raise AssertionError(f"no error recorded for {loc}: {json.dumps(data, indent=1)}")


def held_files(sword: SwordServer) -> dict[str, bytes]:
    return {f.name: f.path.read_bytes() for c in sword.store.containers() for f in c.files}


def everything_written(*roots: Path) -> bytes:
    out = []
    for root in roots:
        if root.is_file():
            out.append(root.read_bytes())
        for p in root.rglob("*") if root.is_dir() else ():
            if p.is_file():
                out.append(p.read_bytes())
    return b"\n".join(out)


# -- resources -----------------------------------------------------------------------------
def test_bad_resources_fail_alone_and_other_hosts_need_allow_listing(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    src = source_factory(SourceModel(seed=1))
    other = source_factory(SourceModel(seed=2))
    b = src.base_url
    good = serve(src, "/r/good.pdf", PDF, "application/pdf")
    unknown_alg = serve(src, "/r/unknown-alg.pdf", PDF, "application/pdf")
    wrong_hash = serve(src, "/r/wrong-hash.pdf", PDF, "application/pdf")
    lying = serve(src, "/r/lying-length.pdf", PDF, "application/pdf")
    big = serve(src, "/r/too-big.bin", b"x" * 3000, "application/octet-stream")
    big_unannounced = serve(src, "/r/too-big-2.bin", b"y" * 3000, "application/octet-stream")
    html = serve(
        src, "/r/login.pdf", b"<!DOCTYPE html><html><body>Please log in</body></html>", "text/html"
    )
    elsewhere = serve(other, "/r/elsewhere.txt", b"from another host\n", "text/plain")
    redirect = b + "/r/redirect.pdf"
    src.set_override(redirect, 302, b"", {"Location": other.base_url + "/r/target.pdf"})
    serve(other, "/r/target.pdf", PDF, "application/pdf")
    good2 = serve(src, "/r/good2.txt", b"plain text\n", "text/plain")
    src.set_override(
        "/rl.xml",
        200,
        urlset(
            url(good, content=PDF, type="application/pdf")
            + url(unknown_alg, hash="sha-512:abcdef", type="application/pdf")
            + url(wrong_hash, content=PDF, hash="md5:" + "0" * 32, type="application/pdf")
            + url(lying, content=PDF, length=len(PDF) + 10, type="application/pdf")
            + url(big, content=b"x" * 3000)
            + url(big_unannounced)  # no length in the list: caught while downloading
            + url(html, type="application/pdf")
            + url(elsewhere, content=b"from another host\n", type="text/plain")
            + url(redirect, content=PDF, type="application/pdf")
            + url(good2, content=b"plain text\n", type="text/plain")
        ),
        {"Content-Type": "application/xml"},
    )
    pipe = pipeline(cli, b + "/rl.xml", sword, "max_file_size = 2500\n")
    result = cli("run", str(pipe))
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    # only the two good resources were deposited, each whole
    assert held_files(sword) == {"good.pdf": PDF, "good2.txt": b"plain text\n"}
    assert other.stats["total"] == 0  # nothing was even asked of the other host

    data = status(cli)
    expected = {
        unknown_alg: ("bad-document", "unknown hash algorithm 'sha-512'"),
        wrong_hash: ("integrity", "md5 mismatch"),
        lying: ("integrity", "length mismatch"),
        big: ("integrity", "over the maximum file size"),
        big_unannounced: ("fetch", "over the maximum of 2500"),
        html: ("integrity", "HTML page"),
        elsewhere: ("outside-source", "outside the source's hosts"),
        redirect: ("outside-source", "redirect target of"),
    }
    for loc, (code, words) in expected.items():
        got_code, message = error_for(data, loc)
        assert got_code == code and words in message, (loc, got_code, message)
        assert loc in result.stderr
    assert data["items"] == {"complete": 2, "failed": 6}

    # allow-listing the other host lets its resource and the redirect through
    host = other.base_url.split("://", 1)[1]
    pipe = pipeline(
        cli, b + "/rl.xml", sword, f'max_file_size = 2500\nallowed_hosts = ["{host}"]\n'
    )
    again = cli("run", str(pipe))
    assert again.returncode == 1, again.output
    assert held_files(sword) == {
        "good.pdf": PDF,
        "good2.txt": b"plain text\n",
        "elsewhere.txt": b"from another host\n",
        "redirect.pdf": PDF,  # named after the listed URL, the bytes from the target
    }
    assert status(cli)["items"] == {"complete": 4, "failed": 5}


def test_hostile_file_names_are_deposited_under_safe_names(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    src = source_factory(SourceModel(seed=3))
    dispositions = {
        "/n/1": 'attachment; filename="../../etc/passwd"',
        "/n/2": 'attachment; filename="..\\\\..\\\\windows\\\\evil.pdf"',
        "/n/3": "attachment; filename*=UTF-8''bell%07new%0Aline%0D%1B.txt",
        "/n/4": "attachment; filename*=UTF-8''" + "%C3%A9" * 300 + ".pdf",
        "/n/5": "attachment; filename*=UTF-8''%FF%FEbad.txt; filename=\"latin.txt\"",
        "/n/6": 'attachment; filename=".."',
    }
    body = ""
    for i, (path, disposition) in enumerate(dispositions.items()):
        content = f"file {i}\n".encode()
        loc = serve(src, path, content, "text/plain", **{"Content-Disposition": disposition})
        body += url(loc, content=content, type="text/plain")
    raw = f"raw {len(dispositions)}\n".encode()
    loc = serve(src, "/n/%FF%FEraw.txt", raw, "text/plain")  # not UTF-8, no disposition
    body += url(loc, content=raw, type="text/plain")
    src.set_override("/rl.xml", 200, urlset(body), {"Content-Type": "application/xml"})

    result = cli("run", str(pipeline(cli, src.base_url + "/rl.xml", sword)))
    assert result.returncode == 0, result.output
    names = sorted(held_files(sword))
    assert len(names) == 7
    for name in names:
        assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
        assert not any(unicodedata.category(ch) == "Cc" for ch in name), repr(name)
        assert len(name.encode("utf-8")) <= 200
    assert "passwd" in names and "evil.pdf" in names and "bellnewline.txt" in names
    long = next(n for n in names if n.startswith("é"))
    assert long.endswith(".pdf")
    assert "latin.txt" in names  # an undecodable filename* falls back to filename
    assert "\ufffd\ufffdraw.txt" in names  # bad percent-encoding in the URL: replaced
    assert "file" in names  # ".." is no name
    assert not (cli.cwd / "etc").exists() and not (sword.root.parent / "etc").exists()


def test_metadata_not_well_formed_or_without_title(
    tmp_path: Path, cli: Cli, sword: SwordServer, source_factory
) -> None:
    src = source_factory(SourceModel(seed=4))
    dcterms = 'xmlns:dcterms="http://purl.org/dc/terms/"'
    records = {
        "broken": b"<metadata " + dcterms.encode() + b"><dcterms:title>Broken",
        "untitled": (
            f"<metadata {dcterms}><dcterms:creator>Doe, Jane</dcterms:creator></metadata>"
        ).encode(),
        "good": (
            f"<metadata {dcterms}><dcterms:title>A good record</dcterms:title></metadata>"
        ).encode(),
    }
    body = ""
    for name, record in records.items():
        rec = serve(src, f"/m/{name}.xml", record, "application/xml")
        content = f"{name} file\n".encode()
        f = serve(src, f"/f/{name}.txt", content, "text/plain")
        body += url(rec, content=record, type="application/xml", links=(("describes", f),))
        body += url(f, content=content, type="text/plain", links=(("describedby", rec),))
    src.set_override("/rl.xml", 200, urlset(body), {"Content-Type": "application/xml"})

    # missing_title = "fallback" (the default): a well-formed record without a title is
    # deposited under the file name, with a warning; a record that is not well-formed is no
    # record without a title: its item fails with a metadata error (#8)
    result = cli("run", str(pipeline(cli, src.base_url + "/rl.xml", sword)))
    assert result.returncode == 1, result.output
    titles = sorted(c.dc["title"][0] for c in sword.store.containers())
    assert titles == ["A good record", "untitled.txt"]
    assert "fallback title" in result.stderr
    assert src.base_url + "/m/untitled.xml" in result.stderr
    code, message = error_for(status(cli), f"{src.base_url}/m/broken.xml")
    assert code == "metadata" and "not well-formed" in message

    # missing_title = "fail": those two fail with a metadata error, the good one is deposited
    sword2 = SwordServer(tmp_path / "sword2", password=sword.password).start()
    try:
        cli2 = Cli(tmp_path, tmp_path / "state2.sqlite")
        pipe = pipeline(
            cli2, src.base_url + "/rl.xml", sword2, 'missing_title = "fail"\n', name="strict"
        )
        strict = cli2("run", str(pipe))
        assert strict.returncode == 1, strict.output
        assert [c.dc["title"][0] for c in sword2.store.containers()] == ["A good record"]
        data = status(cli2)
        assert data["items"] == {"complete": 1, "failed": 2}
        assert {f["code"] for f in data["not_synced"]} == {"metadata"}
        for name, why in (("broken", "not well-formed"), ("untitled", "title")):
            code, message = error_for(data, f"{src.base_url}/m/{name}.xml")
            assert code == "metadata" and why in message
    finally:
        sword2.stop()


# -- list documents ------------------------------------------------------------------------
def test_malformed_list_on_an_existing_mirror_deletes_nothing(
    cli: Cli, sword: SwordServer, source_factory
) -> None:
    model = SourceModel.generate(6, seed=5)
    src = source_factory(model, changelists="none")
    assert cli.baseline(src.base_url + "/", sword).returncode == 0
    assert len(sword.store.containers()) == 6
    broken = urlset(url(src.base_url + "/x"))[:-40]  # cut off mid-document
    src.set_override("/resourcelist.xml", 200, broken, {"Content-Type": "application/xml"})
    sword.reset_stats()
    for args in (("incremental", "--state", str(cli.state)),):
        result = cli(*args)
        assert result.returncode == 1, result.output
        assert src.base_url + "/resourcelist.xml" in result.stderr
        assert "not well-formed" in result.stderr
    again = cli.baseline(src.base_url + "/", sword)
    assert again.returncode == 1
    assert len(sword.store.containers()) == 6
    assert sword.stats.get("DELETE", 0) == 0 and sword.stats.get("POST", 0) == 0
    code, message = error_for(status(cli), src.base_url + "/resourcelist.xml")
    assert code == "bad-document" and "not well-formed" in message


def test_html_page_given_as_a_resource_list(cli: Cli, sword: SwordServer, source_factory) -> None:
    src = source_factory(SourceModel(seed=6))
    page = serve(
        src,
        "/lists/all",
        b"<!DOCTYPE html>\n<html><head><title>Home</title></head></html>",
        "text/html",
    )
    result = cli.baseline(page, sword)
    assert result.returncode == 1, result.output
    assert page in result.stderr and "HTML page" in result.stderr
    assert "Traceback" not in result.output
    assert sword.store.containers() == []


def test_empty_list_on_a_first_baseline(cli: Cli, sword: SwordServer, source_factory) -> None:
    """An empty source is not an error: exit 0, nothing deposited, the run recorded."""
    src = source_factory(SourceModel(seed=7))
    src.set_override("/rl.xml", 200, urlset(""), {"Content-Type": "application/xml"})
    result = cli.baseline(src.base_url + "/rl.xml", sword)
    assert result.returncode == 0, result.output
    assert "created 0" in result.stdout
    assert sword.store.containers() == []
    data = status(cli)
    assert data["items"] == {} and data["runs"][-1]["status"] == "ok"


def test_index_loops_and_nesting_too_deep(cli: Cli, sword: SwordServer, source_factory) -> None:
    src = source_factory(SourceModel(seed=8))
    b = src.base_url
    xml = {"Content-Type": "application/xml"}
    ok1 = serve(src, "/r/one.txt", b"one\n", "text/plain")
    ok2 = serve(src, "/r/two.txt", b"two\n", "text/plain")
    deep_leaf = serve(src, "/r/deep.txt", b"deep\n", "text/plain")
    # the top index: a looping index first, then a good page, then a too-deep chain
    src.set_override(
        "/top.xml", 200, index([b + "/loop-a.xml", b + "/page1.xml", b + "/d1.xml"]), xml
    )
    src.set_override("/loop-a.xml", 200, index([b + "/loop-b.xml"]), xml)
    src.set_override("/loop-b.xml", 200, index([b + "/loop-a.xml", b + "/page2.xml"]), xml)
    src.set_override("/page1.xml", 200, urlset(url(ok1, content=b"one\n")), xml)
    src.set_override("/page2.xml", 200, urlset(url(ok2, content=b"two\n")), xml)
    for i in range(1, 5):  # top -> d1 -> d2 -> d3 -> d4 -> leaf: deeper than 3
        src.set_override(f"/d{i}.xml", 200, index([b + f"/d{i + 1}.xml"]), xml)
    src.set_override("/d5.xml", 200, urlset(url(deep_leaf, content=b"deep\n")), xml)

    result = cli.baseline(b + "/top.xml", sword)
    assert result.returncode == 1, result.output
    assert held_files(sword) == {"one.txt": b"one\n", "two.txt": b"two\n"}
    data = status(cli)
    code, message = error_for(data, b + "/loop-a.xml")
    assert code == "bad-document" and "loops" in message
    code, message = error_for(data, b + "/d4.xml")
    assert code == "bad-document" and "deeper than 3" in message
    assert "loops" in result.stderr and "deeper than 3" in result.stderr


def test_list_over_max_list_entries(cli: Cli, sword: SwordServer, source_factory) -> None:
    src = source_factory(SourceModel(seed=9))
    body = ""
    for i in range(5):
        content = f"entry {i}\n".encode()
        body += url(serve(src, f"/r/{i}.txt", content, "text/plain"), content=content)
    src.set_override("/rl.xml", 200, urlset(body), {"Content-Type": "application/xml"})
    pipe = pipeline(cli, src.base_url + "/rl.xml", sword, "max_list_entries = 3\n")
    result = cli("run", str(pipe))
    assert result.returncode == 1, result.output
    assert "more than 3 entries" in result.stderr and src.base_url + "/rl.xml" in result.stderr
    # the document is refused: nothing of it is deposited
    assert held_files(sword) == {}
    code, _ = error_for(status(cli), src.base_url + "/rl.xml")
    assert code == "bad-document"


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol4;</loc></url></urlset>
"""


def _xxe(secret: Path, root: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE r [ <!ENTITY xxe SYSTEM "file://{secret}"> ]>\n'
        f"<{root}>{inner}</{root.split()[0]}>\n"
    ).encode()


def test_entity_bomb_and_external_entities_are_refused(
    tmp_path: Path, cli: Cli, sword: SwordServer, source_factory
) -> None:
    secret = tmp_path / "secret.txt"
    secret_text = "TOP-SECRET-XXE-CONTENT-7f3a"
    secret.write_text(secret_text, encoding="utf-8")
    src = source_factory(SourceModel(seed=10))
    b = src.base_url
    xml = {"Content-Type": "application/xml"}

    # as resource lists: the whole document is refused, nothing deposited
    src.set_override("/bomb.xml", 200, BOMB, xml)
    src.set_override(
        "/xxe.xml", 200, _xxe(secret, f"urlset {NS}", "<url><loc>&xxe;</loc></url>"), xml
    )
    for doc in ("/bomb.xml", "/xxe.xml"):
        result = cli.baseline(b + doc, sword)
        assert result.returncode == 1, result.output
        assert b + doc in result.stderr and "refused" in result.stderr
        assert secret_text not in result.output
    assert sword.store.containers() == []

    # as a metadata record: the record is refused and its item fails with a metadata error
    # (recorded, shown by status, retried by replay); nothing of it is deposited (#8)
    dcterms = 'metadata xmlns:dcterms="http://purl.org/dc/terms/"'
    record = _xxe(secret, dcterms, "<dcterms:title>&xxe;</dcterms:title>")
    rec = serve(src, "/m/xxe.xml", record, "application/xml")
    f = serve(src, "/f/paper.txt", b"paper\n", "text/plain")
    src.set_override(
        "/rl.xml",
        200,
        urlset(
            url(rec, content=record, type="application/xml", links=(("describes", f),))
            + url(f, content=b"paper\n", type="text/plain", links=(("describedby", rec),))
        ),
        xml,
    )
    result = cli.baseline(b + "/rl.xml", sword)
    assert result.returncode == 1, result.output
    assert sword.store.containers() == []
    assert b + "/m/xxe.xml" in result.stderr
    code, message = error_for(status(cli), b + "/m/xxe.xml")
    assert code == "metadata" and "refused" in message
    again = cli("replay", "--state", str(cli.state))
    assert again.returncode == 1 and sword.store.containers() == []
    # the secret reached neither the destination nor anything the runs wrote
    written = everything_written(sword.root, cli.state.parent)
    assert secret_text.encode() not in written
    assert secret_text not in "".join(r.output for r in cli.log)
