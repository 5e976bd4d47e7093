"""The pure SAF layout: DC terms <-> dublin_core.xml / metadata_<schema>.xml, contents lines,
mapfiles, handles, and the IMPORT.sh text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sync.crosswalk import DCRecord, read_metadata
from sync.errors import MetadataError
from sync.saf import contents, dublin_core, handles, mapfile
from sync.saf.script import Step, import_script


def _record(**terms: list[str]) -> DCRecord:
    rec = DCRecord()
    for name, values in terms.items():
        for v in values:
            rec.add(name, v)
    return rec


def _read_back(files: dict[str, bytes]) -> DCRecord:
    rec = DCRecord()
    for data in files.values():
        for name, values in read_metadata(data, url="x")[1].terms.items():
            for v in values:
                rec.add(name, v)
    return rec


def test_terms_go_to_dspace_dc_fields() -> None:
    rec = _record(
        title=["T"],
        creator=["A, B"],
        issued=["2020"],
        date=["2020"],
        abstract=["Abs"],
        description=["Abs"],
        identifier=["https://x.org/1", "isbn 123"],
        language=["en"],
        isPartOf=["Series"],
    )
    files = dublin_core.metadata_files(rec)
    assert list(files) == ["dublin_core.xml"]
    text = files["dublin_core.xml"].decode()
    for expected in (
        '<dcvalue element="title" qualifier="none">T</dcvalue>',
        '<dcvalue element="contributor" qualifier="author">A, B</dcvalue>',
        '<dcvalue element="date" qualifier="issued">2020</dcvalue>',
        '<dcvalue element="description" qualifier="abstract">Abs</dcvalue>',
        '<dcvalue element="identifier" qualifier="uri">https://x.org/1</dcvalue>',
        '<dcvalue element="identifier" qualifier="none">isbn 123</dcvalue>',
        '<dcvalue element="language" qualifier="iso">en</dcvalue>',
        '<dcvalue element="relation" qualifier="ispartof">Series</dcvalue>',
    ):
        assert expected in text
    # the broader date / description come back from their refinements: not written twice
    assert text.count("2020") == 1 and text.count("Abs") == 1


def test_terms_without_dc_field_go_to_metadata_dcterms() -> None:
    rec = _record(title=["T"], audience=["pupils"], dateAccepted=["2021"], modified=["2022"])
    files = dublin_core.metadata_files(rec)
    assert sorted(files) == ["dublin_core.xml", "metadata_dcterms.xml"]
    assert b'schema="dcterms"' in files["metadata_dcterms.xml"]
    assert b'element="audience"' in files["metadata_dcterms.xml"]


def test_round_trip_keeps_every_value_escaped_and_utf8() -> None:
    rec = _record(
        title=["Ä & <b> \"q\" 'a'"],
        creator=["Ølsen", "李"],
        issued=["1999"],
        date=["1999", "2000"],
        abstract=["P1\n\nP2"],
        description=["P1\n\nP2", "other"],
        subject=["x", "y"],
        spatial=["Oslo"],
        license=["https://creativecommons.org/licenses/by/4.0/"],
        accessRights=["open"],
    )
    assert _read_back(dublin_core.metadata_files(rec)).terms == rec.terms


def test_reads_dspace_export_fields() -> None:
    xml = (
        b'<?xml version="1.0" encoding="utf-8" standalone="no"?>\n<dublin_core schema="dc">\n'
        b'<dcvalue element="contributor" qualifier="advisor">Adv</dcvalue>\n'
        b'<dcvalue element="date" qualifier="accessioned">2020-01-01T00:00:00Z</dcvalue>\n'
        b'<dcvalue element="description" qualifier="provenance">Submitted by x@y</dcvalue>\n'
        b'<dcvalue element="subject" qualifier="lcsh" language="en_US">Seas</dcvalue>\n'
        b'<dcvalue element="title" qualifier="none" language="en_US">Title</dcvalue>\n'
        b"</dublin_core>\n"
    )
    fmt, rec = read_metadata(xml, url="x")
    assert fmt == "saf"
    assert rec.terms == {
        "contributor": ["Adv"],
        "dateAccepted": ["2020-01-01T00:00:00Z"],
        "date": ["2020-01-01T00:00:00Z"],
        "subject": ["Seas"],
        "title": ["Title"],
    }


def test_other_schemas_are_not_dc() -> None:
    xml = b'<dublin_core schema="local"><dcvalue element="title">No</dcvalue></dublin_core>'
    assert read_metadata(xml, url="x")[1].terms == {}


def test_saf_metadata_with_entities_is_refused() -> None:
    xml = (
        b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<dublin_core schema="dc"><dcvalue element="title">&e;</dcvalue></dublin_core>'
    )
    with pytest.raises(MetadataError, match="DTDs and entities"):
        read_metadata(xml, url="x")


def test_schema_file_names() -> None:
    assert dublin_core.schema_filename("dc") == "dublin_core.xml"
    assert dublin_core.schema_filename("dcterms") == "metadata_dcterms.xml"
    assert dublin_core.schema_of_filename("metadata_local.xml") == "local"
    assert dublin_core.schema_of_filename("metadata_.xml") is None
    assert dublin_core.schema_of_filename("report.xml") is None


def test_contents_lines_build_and_parse() -> None:
    line = contents.ContentsLine("a b.pdf", "ORIGINAL", "-r 'Anonymous'", "The paper", primary=True)
    text = contents.render([line, contents.ContentsLine("license")])
    assert text == (
        "a b.pdf\tbundle:ORIGINAL\tpermissions:-r 'Anonymous'\tdescription:The paper"
        "\tprimary:true\nlicense\n"
    )
    parsed = contents.parse(text + "\n", resource="c")
    assert parsed[0] == line
    assert [p.effective_bundle for p in parsed] == ["ORIGINAL", "LICENSE"]
    assert contents.parse("x.txt\n", resource="c")[0].effective_bundle == "ORIGINAL"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:\\x", "a\x01b", "./x"])
def test_contents_refuses_names_leaving_the_item(name: str) -> None:
    with pytest.raises(contents.ContentsError, match="item/contents"):
        contents.parse(f"{name}\tbundle:ORIGINAL\n", resource="item/contents")


def test_contents_refuses_unknown_options() -> None:
    with pytest.raises(contents.ContentsError, match="unknown option"):
        contents.parse("x.pdf\tbundel:ORIGINAL\n", resource="c")


def test_mapfiles() -> None:
    text = mapfile.render({"item_1": "123/1", "item_2": "123/2"})
    assert text == "item_1 123/1\nitem_2 123/2\n"
    assert mapfile.parse(text + "\n", resource="m") == {"item_1": "123/1", "item_2": "123/2"}
    with pytest.raises(mapfile.MapfileError, match="line 1"):
        mapfile.parse("only-one-field\n", resource="m")


def test_handles() -> None:
    assert handles.handle_from_identifier("http://hdl.handle.net/123/4") == "123/4"
    assert handles.handle_from_identifier("https://hdl.handle.net/20.500.1/x") == "20.500.1/x"
    assert handles.handle_from_identifier("hdl:1/2") == "1/2"
    assert handles.handle_from_identifier("https://example.org/123/4") is None
    assert handles.is_handle("123456789/2") and not handles.is_handle("https://x/y")


def test_import_script_runs_the_steps_in_order(tmp_path: Path) -> None:
    script = import_script(
        "run-0003",
        earlier_adds=["run-0001"],
        add=Step("123/2"),
        replace=Step("123/2", zip=True),
        delete=True,
    )
    assert script.startswith("#!/bin/sh\n")
    add = script.index('--add --eperson "$EPERSON" --collection 123/2 --source run-0003/add')
    rep = script.index('--replace --eperson "$EPERSON" --collection 123/2 --source run-0003 --zip')
    dele = script.index('--delete --eperson "$EPERSON" --mapfile run-0003/delete.map')
    assert add < rep < dele
    # a shell can parse it, and it stops while an earlier batch waits
    (tmp_path / "run-0003").mkdir()
    (tmp_path / "run-0001" / "add").mkdir(parents=True)
    path = tmp_path / "run-0003" / "IMPORT.sh"
    path.write_text(script)
    done = subprocess.run(
        ["sh", str(path)],
        env={"EPERSON": "e@x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "import run-0001 first" in done.stderr


def test_import_script_needs_an_eperson(tmp_path: Path) -> None:
    path = tmp_path / "run-0001" / "IMPORT.sh"
    path.parent.mkdir()
    path.write_text(
        import_script("run-0001", earlier_adds=[], add=Step(None), replace=None, delete=False)
    )
    done = subprocess.run(
        ["sh", str(path)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "EPERSON" in done.stderr
