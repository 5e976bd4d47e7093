"""SAF with the other protocols, at the contract level: the project's local ResourceSync
source mirrored into SAF (then imported by the ``dspace import`` stand-in), and a SAF export
mirrored into the local SWORD v2 server. The ResourceSync and SWORD sides are thin test
adapters over the existing reading and SWORD code (the engine's own adapters are being moved
behind the contracts); what is under test is the SAF side and what arrives."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sync.contracts import Container, Fetched, Metadata
from sync.destinations.saf import SafDestination
from sync.destinations.sword.atom import build_entry
from sync.destinations.sword.client import SwordClient
from sync.sources.saf import SafSource
from tests.conftest import PASSWORD
from tests.saf_support import (
    Importer,
    MiniSync,
    ResourceSyncTestSource,
    export_dc,
    export_items,
    http_for,
    item_dc,
    item_files,
    write_export,
)
from tests.servers.fixtures import SourceModel
from tests.servers.sword_server import SwordServer

COL = "123456789/2"


class SwordTestDestination:
    """Creates and completes SWORD containers through the existing client."""

    def __init__(self, sword: SwordServer) -> None:
        self.http = http_for(sword.sd_iri)
        self.http.set_auth(sword.sd_iri, "sword", PASSWORD)
        self.client = SwordClient(self.http)

    def open_run(self, run_id: int) -> None: ...

    def close_run(self) -> None: ...

    def create(self, collection: str, metadata: Metadata, *, slug: str) -> Container:
        entry = build_entry(metadata.dc, title=metadata.title, source_ids=metadata.identifiers)
        receipt = self.client.create(collection, entry, slug=slug)
        assert receipt.edit_iri and receipt.em_iri
        se_iri = receipt.se_iri or receipt.edit_iri
        return Container(receipt.edit_iri, {"em": receipt.em_iri, "se": se_iri})

    def add_file(self, container: Container, file: Fetched) -> str | None:
        return self.client.add_file(
            container.data["em"],
            file.path,
            filename=file.filename,
            md5=file.md5,
            content_type=file.content_type,
        )

    def complete(self, container: Container) -> str | None:
        return self.client.complete(container.data["se"])


def test_resourcesync_to_saf(tmp_path: Path, source_factory) -> None:
    model = SourceModel.generate(12, seed=5, styles=("dspace", "recipe"))
    src = source_factory(model)
    out = tmp_path / "out"
    importer = Importer(out, tmp_path / "repo")
    sync = MiniSync(SafDestination(out, collection=COL), COL)
    assert sync.run(ResourceSyncTestSource(src.base_url + "/"), 1) == []
    importer.import_ok("run-0001")

    repo = importer.repo
    expected = model.expected()
    assert len(repo.items) == len(expected) == 12
    got = sorted(
        (
            item_dc(it).title,
            tuple(item_dc(it).get("creator")),
            tuple(sorted(item_files(repo, it).items())),
        )
        for it in repo.items.values()
    )
    want = sorted(
        (e.title, tuple(e.creators), tuple(sorted(e.files.items()))) for e in expected.values()
    )
    assert got == want


def test_saf_export_to_sword(tmp_path: Path, sword: SwordServer) -> None:
    items = export_items()
    source = SafSource(write_export(tmp_path / "export", items))
    sync = MiniSync(SwordTestDestination(sword), sword.col_iri("default"))  # type: ignore[arg-type]
    assert sync.run(source, 1) == []

    held = {c.dc["title"][0]: c for c in sword.store.containers()}
    assert len(held) == len(items)
    for exported in items:
        dc = export_dc(exported)
        container = held[dc.title]  # type: ignore[index]
        assert container.state == "archived"
        assert container.dc.get("creator", []) == dc.get("creator")
        assert container.dc.get("audience", []) == dc.get("audience")  # metadata_dcterms.xml
        originals = {
            name: hashlib.md5(data).hexdigest()
            for name, bundle, data in exported.files
            if bundle in ("ORIGINAL", "") and name != "license"
        }
        assert {f.name: f.md5 for f in container.files} == originals
        if exported.handle:  # traceable to the source's handle
            assert f"http://hdl.handle.net/{exported.handle}" in container.dc["identifier"]
