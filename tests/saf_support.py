"""Helpers for the SAF tests: drive a destination as the depositor does, run the real CLI with
a SAF destination, run ``IMPORT.sh`` against the ``dspace import`` stand-in, and read back what
the stand-in's repository holds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync.contracts import Container, Destination, Fetched, Metadata
from sync.crosswalk import DCRecord, read_metadata
from sync.model import Entry
from sync.saf.dublin_core import BROADER, schema_document
from tests.servers.dspace_import import Repository, write_wrapper

if TYPE_CHECKING:  # the demo imports this module without pytest
    from tests.conftest import Cli, CliResult

EPERSON = "importer@example.org"
COL = "123456789/2"  # the DSpace collection the SAF tests import into


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def record(**terms: list[str] | str) -> DCRecord:
    rec = DCRecord()
    for name, values in terms.items():
        for value in [values] if isinstance(values, str) else values:
            rec.add(name, value)
    return rec


def metadata(key: str, dc: DCRecord, identifiers: tuple[str, ...] = ()) -> Metadata:
    return Metadata(dc=dc, title=dc.title or key, identifiers=identifiers, key=key)


def fetched(tmp: Path, name: str, data: bytes) -> Fetched:
    """A verified file as a source hands it over."""
    folder = tmp / "fetched" / md5(data + name.encode())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "body"
    path.write_bytes(data)
    return Fetched(
        entry=Entry(loc=f"test:{name}"),
        path=path,
        size=len(data),
        md5=md5(data),
        filename=name,
        content_type="application/octet-stream",
    )


def deposit_create(
    dest: Destination, collection: str, md: Metadata, files: list[Fetched]
) -> Container:
    """A create the way the depositor does it: create, each file, complete."""
    c = dest.create(collection, md, slug=md.key)
    for f in files:
        dest.add_file(c, f)
    dest.complete(c)
    return c


def deposit_update(dest: Destination, c: Container, md: Metadata, files: list[Fetched]) -> None:
    """A whole-item update: metadata, first file replaces all, the others added, complete."""
    dest.replace_metadata(c, md)
    dest.replace_files(c, files[0] if files else None)
    for f in files[1:]:
        dest.add_file(c, f)
    dest.complete(c)


@dataclass
class Importer:
    """Runs a batch's ``IMPORT.sh`` with ``DSPACE`` pointing at the stand-in."""

    out: Path
    repo_dir: Path
    dspace: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        self.dspace = write_wrapper(self.repo_dir / "dspace")

    def run(self, batch: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DSPACE": str(self.dspace),
            "DSPACE_REPO": str(self.repo_dir),
            "EPERSON": EPERSON,
        }
        script = self.out / batch / "IMPORT.sh"
        return subprocess.run(
            [str(script)], env=env, capture_output=True, text=True, cwd="/", check=False
        )

    def import_ok(self, batch: str) -> None:
        done = self.run(batch)
        assert done.returncode == 0, done.stderr

    @property
    def repo(self) -> Repository:
        return Repository.open(self.repo_dir)

    def commands(self) -> list[str]:
        log = self.repo_dir / "commands.log"
        return log.read_text("utf-8").splitlines() if log.exists() else []


def item_dc(item: dict[str, Any]) -> DCRecord:
    """The DC record of an imported item, read back through the crosswalk."""
    by_schema: dict[str, list[tuple[str, str | None, str]]] = {}
    for schema, element, qualifier, value in item["metadata"]:
        by_schema.setdefault(schema, []).append((element, qualifier, value))
    rec = DCRecord()
    for schema, values in by_schema.items():
        _fmt, part = read_metadata(schema_document(schema, values), url="repo")
        for name, vals in part.terms.items():
            for v in vals:
                rec.add(name, v)
    return rec


def item_files(repo: Repository, item: dict[str, Any], bundle: str = "ORIGINAL") -> dict[str, str]:
    """name -> MD5 of the bytes the repository holds, for one bundle."""
    return {
        b["name"]: md5(repo.bytes_of(b["md5"])) for b in item["bitstreams"] if b["bundle"] == bundle
    }


def expected_dc(md: Metadata) -> DCRecord:
    """What the destination should record: the DC record plus the source's URL identifiers
    (and, as any reader of qualified DC does, a refinement's value under its broader term)."""
    rec = DCRecord({k: list(v) for k, v in md.dc.terms.items()})
    for term, broader in BROADER.items():
        for value in md.dc.get(term):
            rec.add(broader, value)
    for identifier in md.identifiers:
        if identifier.startswith(("http://", "https://")):
            rec.add("identifier", identifier)
    return rec


def same_terms(a: DCRecord, b: DCRecord) -> bool:
    """Equal as sets of values per term (DSpace keeps no order across schemas)."""
    return {k: sorted(v) for k, v in a.terms.items()} == {k: sorted(v) for k, v in b.terms.items()}


# -- a `dspace export` fixture -------------------------------------------------------------
@dataclass
class ExportItem:
    """One exported item: DC values by (element, qualifier), dcterms values, files by bundle."""

    folder: str
    handle: str | None
    dc: list[tuple[str, str | None, str]]
    dcterms: list[tuple[str, str | None, str]] = field(default_factory=list)
    files: list[tuple[str, str, bytes]] = field(default_factory=list)  # (name, bundle, bytes)
    collections: list[str] = field(default_factory=list)


def export_items() -> list[ExportItem]:
    """Several bundles, handles, non-ASCII names, a metadata_dcterms.xml."""
    return [
        ExportItem(
            "item_000",
            "123456789/11",
            [
                ("title", None, "Ångström & the <sea>"),
                ("contributor", "author", "Øster, Jens"),
                ("date", "issued", "2019"),
                ("identifier", "uri", "http://hdl.handle.net/123456789/11"),
                ("description", "abstract", "Waves.\n\nAnd tides."),
            ],
            [("audience", None, "researchers"), ("accessRights", None, "open")],
            [
                ("Ångström paper.pdf", "ORIGINAL", b"%PDF-1.4 angstrom"),
                ("data 1.csv", "ORIGINAL", b"a,b\n1,2\n"),
                ("Ångström paper.pdf.jpg", "THUMBNAIL", b"\xff\xd8thumb"),
                ("Ångström paper.pdf.txt", "TEXT", b"extracted text"),
                ("license", "", b"Grant of licence"),
            ],
            ["123456789/2"],
        ),
        ExportItem(
            "item_001",
            "123456789/12",
            [
                ("title", None, "日本語のタイトル"),
                ("contributor", "author", "山田, 太郎"),
                ("identifier", "uri", "http://hdl.handle.net/123456789/12"),
                ("subject", None, "ocean"),
            ],
            files=[("報告書.pdf", "ORIGINAL", b"%PDF report")],
        ),
        ExportItem(
            "item_002",
            None,
            [("title", None, "No handle, no files")],
        ),
    ]


def _contents_line(name: str, bundle: str) -> str:
    return f"{name}\tbundle:{bundle}" if bundle else name


def write_export(root: Path, items: list[ExportItem]) -> Path:
    """Write items as ``dspace export`` does (numbered folders, ``handle`` files)."""
    root.mkdir(parents=True, exist_ok=True)
    for it in items:
        folder = root / it.folder
        folder.mkdir()
        (folder / "dublin_core.xml").write_bytes(schema_document("dc", it.dc))
        if it.dcterms:
            (folder / "metadata_dcterms.xml").write_bytes(schema_document("dcterms", it.dcterms))
        (folder / "contents").write_text(
            "".join(_contents_line(n, b) + "\n" for n, b, _ in it.files), "utf-8"
        )
        for name, _bundle, data in it.files:
            (folder / name).write_bytes(data)
        if it.handle:
            (folder / "handle").write_text(it.handle + "\n", "utf-8")
        if it.collections:
            (folder / "collections").write_text("\n".join(it.collections) + "\n", "utf-8")
    return root


def zip_folder(folder: Path, target: Path, top: str | None = None) -> Path:
    """Zip a folder's contents (under ``top/`` if given)."""
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                zf.write(path, f"{top}/{rel}" if top else rel)
    return target


def export_dc(it: ExportItem) -> DCRecord:
    """The DC record an exported item's files say, read through the crosswalk."""
    rec = DCRecord()
    for schema, values in (("dc", it.dc), ("dcterms", it.dcterms)):
        if values:
            _fmt, part = read_metadata(schema_document(schema, values), url=it.folder)
            for name, vals in part.terms.items():
                for v in vals:
                    rec.add(name, v)
    return rec


# -- the real CLI with a SAF destination ---------------------------------------------------
def saf_baseline(cli: Cli, source: str, out: Path, *extra: str) -> CliResult:
    """``resync-sword baseline SOURCE --saf OUT`` as a user runs it (fast: no rate bound)."""
    return cli(
        "baseline",
        source,
        "--saf",
        str(out),
        "--saf-collection",
        COL,
        "--state",
        str(cli.state),
        "--rate",
        "0",
        "--workers",
        "4",
        *extra,
    )


def status_json(cli: Cli) -> dict[str, Any]:
    done = cli("status", "--state", str(cli.state), "--json")
    assert done.returncode == 0, done.output
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def last_run(cli: Cli) -> dict[str, Any]:
    """The newest run as ``runs --json`` gives it (counts, ``waiting``, status)."""
    done = cli("runs", "--state", str(cli.state), "--json")
    assert done.returncode == 0, done.output
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs[-1]


Snapshot = list[tuple[str | None, tuple[str, ...], tuple[tuple[str, str], ...]]]


def repository_snapshot(repo: Repository) -> Snapshot:
    """What the imported repository holds, order-free: (title, creators, (name, md5)...) per
    item, the files read back from its assetstore (the same shape as ``expected_snapshot``)."""
    out = []
    for item in repo.items.values():
        dc = item_dc(item)
        files = tuple(sorted(item_files(repo, item).items()))
        out.append((dc.title, tuple(dc.get("creator")), files))
    return sorted(out, key=repr)
