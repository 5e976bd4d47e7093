"""Configuration errors through the real CLI: exit 2, the key named, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

PIPELINE = """
[source]
type = "resourcesync"
url = "http://127.0.0.1:9/rs/"

[destination]
type = "sword"
collection = "http://127.0.0.1:9/col/1"

[options]
workers = 2
"""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("workers = 2", 'workers = "8"'), "options.workers"),
        (("workers = 2", "limit = -1"), "options.limit"),
        (("workers = 2", "max_delete_share = 2"), "options.max_delete_share"),
        (("workers = 2", "colour = 1"), "options.colour"),
        (('type = "resourcesync"', 'type = "gopher"'), "source.type"),
        (('url = "http://127.0.0.1:9/rs/"', 'url = "ftp://x/"'), "source.url"),
        (('collection = "http://127.0.0.1:9/col/1"', "collection = 1"), "destination.collection"),
    ],
)
def test_bad_pipeline_exits_2_naming_the_key(
    cli: Cli, tmp_path: Path, change: tuple[str, str], named: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(PIPELINE.replace(*change), encoding="utf-8")
    result = cli("run", str(path))
    assert result.returncode == 2, result.output
    assert named in result.stderr
    assert "Traceback" not in result.output


def test_unknown_source_type_on_the_command_line(cli: Cli) -> None:
    result = cli(
        "baseline",
        "http://127.0.0.1:9/rs/",
        "--collection",
        "http://127.0.0.1:9/col/1",
        "--source-type",
        "gopher",
    )
    assert result.returncode == 2, result.output
    assert "source.type 'gopher' is not known" in result.stderr
    assert "resourcesync" in result.stderr  # the known types are listed
