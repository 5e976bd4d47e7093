"""Cross-checks of the OAI-PMH source with a third-party harvester (``sickle`` 0.7).

sickle is not used at run time (it holds each page whole in memory, follows an expired token
into an error and knows nothing of ORE or METS files); it is the independent reading of the
protocol: it must read our local provider, and our reader must find the same identifiers,
datestamps, sets and deletions in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sickle import Sickle

from sync.http import Http
from sync.sources.oai_pmh.protocol import OaiClient
from tests.servers.fixtures import SourceModel
from tests.servers.oai_provider import OaiProvider


@pytest.fixture(params=["seconds", "day"])
def provider(request: pytest.FixtureRequest) -> Iterator[OaiProvider]:
    model = SourceModel.generate(17, seed=11, styles=("dspace",))
    for key in sorted(model.items)[:3]:
        model.delete_item(key)
    model.update_metadata(sorted(model.items)[0], title="Changed")
    with OaiProvider(model, page_size=4, granularity=request.param) as p:
        yield p


def _theirs(p: OaiProvider, verb: str) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    client = Sickle(p.base_url)
    listing = getattr(client, verb)(metadataPrefix="mets", ignore_deleted=False)
    out: dict[str, tuple[str, bool, tuple[str, ...]]] = {}
    for rec in listing:
        header = rec if verb == "ListIdentifiers" else rec.header
        out[header.identifier] = (header.datestamp, header.deleted, tuple(header.setSpecs))
    return out


def _ours(
    p: OaiProvider, verb: str, tmp_path: Path
) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    client = OaiClient(Http(), p.base_url, tmpdir=str(tmp_path))
    out: dict[str, tuple[str, bool, tuple[str, ...]]] = {}
    for rec in client.harvest(verb, metadata_prefix="mets"):  # type: ignore[arg-type]
        h = rec.header
        assert h.identifier not in out
        out[h.identifier] = (h.datestamp, h.deleted, h.sets)
    return out


@pytest.mark.parametrize("verb", ["ListRecords", "ListIdentifiers"])
def test_sickle_and_our_reader_agree_on_identifiers_datestamps_and_deletions(
    provider: OaiProvider, verb: str, tmp_path: Path
) -> None:
    theirs = _theirs(provider, verb)
    ours = _ours(provider, verb, tmp_path)
    assert ours == theirs
    assert len(ours) == 17
    assert sum(deleted for _d, deleted, _s in ours.values()) == 3


def test_sickle_reads_identify_and_formats_as_we_do(provider: OaiProvider, tmp_path: Path) -> None:
    theirs = Sickle(provider.base_url).Identify()
    ours = OaiClient(Http(), provider.base_url, tmpdir=str(tmp_path)).identify()
    assert theirs.deletedRecord == ours.deleted_record == "persistent"
    assert theirs.earliestDatestamp == ours.earliest
    assert ("hh" in theirs.granularity) == (ours.granularity == "seconds")
    formats = {f.metadataPrefix for f in Sickle(provider.base_url).ListMetadataFormats()}
    assert formats == set(OaiClient(Http(), provider.base_url).list_metadata_formats())
    sets = {s.setSpec for s in Sickle(provider.base_url).ListSets()}
    assert sets == {spec for spec, _name in OaiClient(Http(), provider.base_url).list_sets()}
