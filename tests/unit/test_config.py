"""Pipeline configuration: TOML files, sizes, secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.config import Pipeline, load_pipeline, parse_size, read_password, read_secret_file
from sync.errors import ConfigError, SyncError, redact, register_secret
from sync.linker import DEFAULT_PREFERENCE

GOOD = """
source = "https://src.example/.well-known/resourcesync"
allowed_hosts = ["cdn.src.example"]

[destination]
collection = "https://dest.example/sword/collection/default"
service_document = "https://dest.example/sword/servicedocument"
username = "mirror"
password_env = "MY_SWORD_PW"

[options]
workers = 8
max_file_size = "2GiB"
max_list_bytes = "10 MB"
metadata_preference = ["dim", "qdc"]
on_archived = "skip"
unlinked = "skip"

[collections]
"https://src.example/handle/1/2" = "https://dest.example/sword/collection/theses"
"""


def write(tmp_path: Path, text: str, name: str = "mirror.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_pipeline_with_all_tables(tmp_path: Path) -> None:
    p = load_pipeline(write(tmp_path, GOOD))
    assert p.name == "mirror"
    assert (p.source_type, p.destination_type) == ("resourcesync", "sword")
    assert p.source_location == "https://src.example/.well-known/resourcesync"
    assert p.collection == "https://dest.example/sword/collection/default"
    assert p.destination["service_document"] == "https://dest.example/sword/servicedocument"
    assert p.destination["username"] == "mirror"
    assert p.destination["password_env"] == "MY_SWORD_PW"
    assert p.workers == 8
    assert p.max_file_size == 2 * 2**30
    assert p.source["max_list_bytes"] == 10_000_000
    assert p.metadata_preference == ["dim", "qdc"]
    assert p.on_archived == "skip"
    assert p.unlinked == "skip"
    assert p.allowed_hosts == ["cdn.src.example"]
    assert p.collections == {
        "https://src.example/handle/1/2": "https://dest.example/sword/collection/theses"
    }
    assert p.state_path() == Path("state") / "mirror.sqlite"


def test_defaults() -> None:
    p = Pipeline(source={"url": "https://s/"}, destination={"collection": "https://d/col"})
    p.validate()
    assert p.metadata_preference == list(DEFAULT_PREFERENCE)
    assert p.max_file_size == 4 * 2**30
    assert p.on_archived == "fail"
    assert Pipeline(state="~/x.sqlite").state_path() == Path("~/x.sqlite").expanduser()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[options2]\nx = 1\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert "options2" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_pipeline(write(tmp_path, GOOD.replace("workers = 8", "wrokers = 8")))
    assert "wrokers" in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("table", ["", "[destination]\n", "[options]\n"])
def test_password_in_the_file_is_refused(tmp_path: Path, table: str) -> None:
    text = (
        'source = "https://s/"\ncollection = "https://d/col"\n'
        + table
        + 'password = "hunter2-in-file"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_pipeline(write(tmp_path, text))
    assert "password" in str(info.value)
    assert "hunter2-in-file" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('source = "https://s/"\n', "collection"),
        ('collection = "https://d/c"\n', "source"),
        ('source = "ftp://s/"\ncollection = "https://d/c"\n', "http"),
        (
            'source = "https://s/"\ncollection = "https://d/c"\non_archived = "ignore"\n',
            "on_archived",
        ),
        ('source = "https://s/"\ncollection = "https://d/c"\nworkers = 0\n', "workers"),
        ('source = "https://s/"\ncollection = "https://d/c"\nmax_delete_share = 0\n', "share"),
        ('source = "https://s/"\ncollection = "https://d/c"\nmax_file_size = "lots"\n', "size"),
        ("source = [", "TOML"),
    ],
)
def test_invalid_pipelines_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline(write(tmp_path, text))
    assert fragment in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_pipeline(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (123, 123),
        ("1048576", 1048576),
        ("2GiB", 2 * 2**30),
        ("500 MB", 500_000_000),
        ("500mib", 500 * 2**20),
        ("1.5k", 1500),
        ("10b", 10),
        ("3 T", 3 * 10**12),
    ],
)
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "GB", "-1MB", "12 parsecs", "1e3"])
def test_parse_size_refuses(value: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(value)


def test_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RSW_TEST_PW", "env-secret-123")
    assert read_password("RSW_TEST_PW", None) == "env-secret-123"
    assert redact("auth env-secret-123 failed") == "auth *** failed"


def test_no_password_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSW_TEST_NONE", raising=False)
    assert read_password("RSW_TEST_NONE", None) is None


def test_env_wins_over_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-secret-xyz\n")
    os.chmod(secret, 0o600)
    monkeypatch.setenv("RSW_TEST_PW2", "env-wins-456")
    assert read_password("RSW_TEST_PW2", str(secret)) == "env-wins-456"
    monkeypatch.delenv("RSW_TEST_PW2")
    assert read_password("RSW_TEST_PW2", str(secret)) == "file-secret-xyz"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_password_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-secret-refused")
    os.chmod(secret, mode)
    with pytest.raises(ConfigError) as info:
        read_secret_file(secret)
    assert "chmod 600" in str(info.value)
    assert "file-secret-refused" not in str(info.value)


def test_password_file_0600_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("  file-secret-ok-789 \n")
    os.chmod(secret, 0o600)
    assert read_secret_file(secret) == "file-secret-ok-789"
    monkeypatch.delenv("RSW_UNSET", raising=False)
    assert read_password("RSW_UNSET", str(secret)) == "file-secret-ok-789"
    # registered: errors never show it
    err = SyncError("login with file-secret-ok-789 refused", resource="https://d/")
    assert "file-secret-ok-789" not in str(err)
    assert "***" in err.describe()


def test_password_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        read_secret_file(tmp_path / "absent")


def test_register_secret_and_redact() -> None:
    register_secret("Sup3r-S3cret!")
    register_secret("ab")  # too short to be useful: ignored
    register_secret(None)
    err = ConfigError("bad value Sup3r-S3cret! here", hint="do not use Sup3r-S3cret!")
    assert "Sup3r-S3cret!" not in str(err)
    assert "Sup3r-S3cret!" not in err.message
    assert str(err).count("***") == 2
    assert redact("ab cd") == "ab cd"


def test_to_json_round_trip() -> None:
    p = Pipeline(
        source={"url": "https://s/"},
        destination={"collection": "https://d/c"},
        limit=5,
        workers=3,
    )
    data = p.to_json()
    assert "limit" not in data["options"]
    q = Pipeline.from_json({**data, "future_setting": 1})
    assert q.workers == 3
    assert q.limit is None
    assert q.source == p.source


def test_first_release_state_json_is_read() -> None:
    """State DBs written by release 0.1 keep one flat table; it reads as the same pipeline."""
    flat = {
        "name": "old",
        "source": "https://s/rs/",
        "collection": "https://d/col",
        "service_document": "https://d/sd",
        "username": "u",
        "password_env": "PW",
        "workers": 6,
        "max_list_entries": 10,
        "collections": {"https://s/h/1": "https://d/col2"},
        "verify_tls": True,
        "some_removed_setting": 1,
    }
    p = Pipeline.from_json(flat)
    assert (p.name, p.source_type, p.destination_type) == ("old", "resourcesync", "sword")
    assert p.source == {"url": "https://s/rs/", "max_list_entries": 10}
    assert p.destination == {
        "collection": "https://d/col",
        "service_document": "https://d/sd",
        "username": "u",
        "password_env": "PW",
    }
    assert p.workers == 6
    assert p.collections == {"https://s/h/1": "https://d/col2"}


NEW = """
[source]
type = "resourcesync"
url = "https://src.example/rs/"
max_list_entries = 1000

[destination]
type = "sword"
collection = "https://dest.example/col/1"

[options]
workers = 8
"""


def test_typed_tables() -> None:
    import tomllib

    from sync.config import _from_document

    p = _from_document(tomllib.loads(NEW), name="n", where="n.toml")
    p.validate()
    assert p.source == {
        "url": "https://src.example/rs/",
        "max_list_entries": 1000,
        "max_list_bytes": 60 * 2**20,
    }
    assert p.destination["collection"] == "https://dest.example/col/1"
    assert p.workers == 8


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("workers = 8", 'workers = "8"'), "options.workers"),
        (("workers = 8", "limit = -1"), "options.limit"),
        (("workers = 8", "wrokers = 8"), "options.wrokers"),
        (("max_list_entries = 1000", "max_list_entries = 0"), "source.max_list_entries"),
        (("max_list_entries = 1000", "max_entries = 5"), "source.max_entries"),
        (('type = "resourcesync"', 'type = "gopher"'), "source.type"),
        (('type = "sword"', 'type = "ftp"'), "destination.type"),
        (('collection = "https://dest.example/col/1"', "collection = 3"), "destination.collection"),
        (("workers = 8", "per_host_rate = true"), "options.per_host_rate"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    text = NEW.replace(*change)
    assert text != NEW
    with pytest.raises(ConfigError) as info:
        load_pipeline(write(tmp_path, text))
    assert key in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("name", ["demo", "example-dspace"])
def test_shipped_pipelines_load(name: str) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    p = load_pipeline(root / "pipelines" / f"{name}.toml")
    assert p.source_location.startswith("http")
    assert p.collection.startswith("http")
