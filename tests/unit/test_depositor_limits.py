"""What a destination said it refuses is refused before the destination is touched."""

from __future__ import annotations

from pathlib import Path

from sync.contracts import Capabilities, ItemStatus
from sync.destinations.memory import MemoryDestination
from sync.destinations.sword.limits import describe_limit
from sync.engine import Engine, EngineSettings
from sync.sources.memory import MemorySource
from sync.state import State


def run(
    tmp_path: Path, caps: Capabilities, files: dict[str, bytes]
) -> tuple[MemoryDestination, State]:
    source = MemorySource()
    source.put_item("a", "Item A", files)
    dest = MemoryDestination(caps=caps)
    state = State(tmp_path / "s.sqlite")
    engine = Engine(
        EngineSettings(collection="mem://col/default", workers=1),
        source,
        dest,
        state,
        progress=False,
    )
    engine.baseline()
    return dest, state


def test_a_file_over_the_advertised_limit_fails_its_item_before_any_call(tmp_path: Path) -> None:
    caps = Capabilities(max_upload=1024, max_upload_note=describe_limit(1))
    dest, state = run(tmp_path, caps, {"b.bin": b"x" * 2000})
    assert dest.calls == []  # not even the container was created
    st = state.item("mem://source/a")
    assert st is not None and st.status == ItemStatus.FAILED
    assert st.error is not None
    # what the server advertised and how it was read, so the user can tell which is wrong
    assert "advertises maxUploadSize 1, read as kB per SWORD 2.0 = 1 KiB" in st.error
    assert "this upload is 2000 bytes (1.953 KiB)" in st.error
    assert "mem://source/a/b.bin" in st.error


def test_an_empty_file_is_refused_where_the_destination_refuses_them(tmp_path: Path) -> None:
    dest, state = run(tmp_path, Capabilities(empty_files=False), {"e.txt": b""})
    assert dest.calls == []
    st = state.item("mem://source/a")
    assert st is not None and st.status == ItemStatus.FAILED
    assert st.error is not None and "refuses empty files" in st.error


def test_within_the_limit_the_item_is_deposited(tmp_path: Path) -> None:
    dest, _state = run(tmp_path, Capabilities(max_upload=1024), {"s.bin": b"x" * 1024})
    (container,) = dest.containers.values()
    assert [f.content for f in container.files.values()] == [b"x" * 1024]
