"""The ``dspace import`` stand-in refuses what DSpace refuses, and changes nothing then."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.saf_support import EPERSON, export_items, write_export
from tests.servers.dspace_import import Repository, write_wrapper


def _dspace(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    wrapper = write_wrapper(repo / "dspace")
    env = {**os.environ, "DSPACE_REPO": str(repo)}
    return subprocess.run(
        [str(wrapper), "import", *args], env=env, capture_output=True, text=True, check=False
    )


def _items(tmp_path: Path) -> dict[str, object]:
    return Repository.open(tmp_path / "repo").items


def test_add_assigns_or_keeps_handles_and_writes_the_mapfile(tmp_path: Path) -> None:
    src = write_export(tmp_path / "src", export_items())
    done = _dspace(
        tmp_path,
        "--add",
        "--eperson",
        EPERSON,
        "--collection",
        "1/2",
        "--source",
        str(src),
        "--mapfile",
        str(tmp_path / "add.map"),
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "add.map").read_text().splitlines()
    assert lines[:2] == ["item_000 123456789/11", "item_001 123456789/12"]  # handle files
    assert lines[2].startswith("item_002 123456789/")
    assert len(_items(tmp_path)) == 3
    again = _dspace(
        tmp_path,
        "--add",
        "--eperson",
        EPERSON,
        "--collection",
        "1/2",
        "--source",
        str(src),
        "--mapfile",
        str(tmp_path / "add.map"),
    )
    assert again.returncode == 1 and "exists already" in again.stderr


@pytest.mark.parametrize(
    ("contents", "why"), [("gone.pdf\n", "missing"), ("../../x\n", "outside the item")]
)
def test_add_refuses_bad_contents_whole(tmp_path: Path, contents: str, why: str) -> None:
    src = write_export(tmp_path / "src", export_items())
    (src / "item_002" / "contents").write_text(contents)
    done = _dspace(
        tmp_path,
        "--add",
        "--eperson",
        EPERSON,
        "--collection",
        "1/2",
        "--source",
        str(src),
        "--mapfile",
        str(tmp_path / "add.map"),
    )
    assert done.returncode == 1 and why in done.stderr
    assert _items(tmp_path) == {} and not (tmp_path / "add.map").exists()


def test_replace_and_delete_refuse_unknown_handles(tmp_path: Path) -> None:
    src = write_export(tmp_path / "src", export_items())
    (tmp_path / "m").write_text("item_000 123456789/999\n")
    rep = _dspace(
        tmp_path,
        "--replace",
        "--eperson",
        EPERSON,
        "--source",
        str(src),
        "--mapfile",
        str(tmp_path / "m"),
    )
    assert rep.returncode == 1 and "unknown handle" in rep.stderr
    dele = _dspace(tmp_path, "--delete", "--eperson", EPERSON, "--mapfile", str(tmp_path / "m"))
    assert dele.returncode == 1 and "unknown handle" in dele.stderr


def test_zip_slip_is_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "add.zip", "w") as zf:
        zf.writestr("add/item_1/dublin_core.xml", "<dublin_core/>")
        zf.writestr("../evil", "x")
    done = _dspace(
        tmp_path,
        "--add",
        "--eperson",
        EPERSON,
        "--collection",
        "1/2",
        "--source",
        str(tmp_path),
        "--zip",
        "add.zip",
        "--mapfile",
        str(tmp_path / "add.map"),
    )
    assert done.returncode == 1 and "outside the zip" in done.stderr
    assert not (tmp_path.parent / "evil").exists()
