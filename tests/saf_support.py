"""Helpers for the SAF tests: drive a destination as the depositor does, run ``IMPORT.sh``
against the ``dspace import`` stand-in, and read back what the stand-in's repository holds."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.contracts import Container, Destination, Fetched, Metadata
from sync.crosswalk import DCRecord, read_metadata
from sync.model import Entry
from sync.saf.dublin_core import BROADER, schema_document
from tests.servers.dspace_import import Repository, write_wrapper

EPERSON = "importer@example.org"


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
