"""A mirror on the in-memory source and destination: the engine with no HTTP (issue #9).

``Mirror`` holds a ``MemorySource``, a ``MemoryDestination`` and a SQLite state in a temporary
folder, and builds a fresh ``Engine`` for every run (as the CLI does), so a test reads like a
sequence of user runs. ``held`` and ``wanted`` put what the destination holds and what the
source has into the same order-free shape, compared by content (MD5), not by exit codes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sync.destinations.memory import MemoryDestination
from sync.engine import Engine, EngineSettings, RunResult
from sync.sources.memory import MemorySource
from sync.state import State

COLLECTION = "mem://col/default"
RENAMED = re.compile(r"^\d+_")  # the renaming destination stores "<n>_<name>"

# title, collection, ((file name, md5), ...): one container, or one item of the source
Snapshot = tuple[str, str, tuple[tuple[str, str], ...]]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Mirror:
    """One pipeline: source -> destination, with its state DB at ``path``."""

    path: Path
    source: MemorySource = field(default_factory=MemorySource)
    dest: MemoryDestination = field(default_factory=MemoryDestination)
    settings: EngineSettings = field(
        default_factory=lambda: EngineSettings(collection=COLLECTION, workers=2)
    )

    def __post_init__(self) -> None:
        self.state = State(self.path)

    def engine(self, **overrides: Any) -> Engine:
        """A fresh engine on the same source, destination and state (one per run)."""
        settings = replace(self.settings, **overrides) if overrides else self.settings
        return Engine(settings, self.source, self.dest, self.state, progress=False)

    def baseline(self, *, force_delete: bool = False, **overrides: Any) -> RunResult:
        return self.engine(**overrides).baseline(force_delete=force_delete)

    def incremental(self, *, force_delete: bool = False, **overrides: Any) -> RunResult:
        return self.engine(**overrides).incremental(force_delete=force_delete)

    def replay(self, **overrides: Any) -> RunResult:
        return self.engine(**overrides).replay()

    def undo(self, run_id: int, **overrides: Any) -> RunResult:
        return self.engine(**overrides).undo(run_id)

    def close(self) -> None:
        self.state.close()


def held(dest: MemoryDestination, *, strip_rename: bool = False) -> list[Snapshot]:
    """What the destination holds, order-free: one entry per container (duplicates show)."""
    out = []
    for c in dest.containers.values():
        files = tuple(
            sorted(
                (RENAMED.sub("", f.name) if strip_rename else f.name, f.md5)
                for f in c.files.values()
            )
        )
        out.append((c.metadata.title, c.collection, files))
    return sorted(out)


def wanted(
    items: Mapping[str, tuple[str, Mapping[str, bytes]]], collection: str = COLLECTION
) -> list[Snapshot]:
    """What the destination should hold for ``items`` (key -> (title, {name: bytes}))."""
    return sorted(
        (title, collection, tuple(sorted((name, md5(data)) for name, data in files.items())))
        for title, files in items.values()
    )


def completed(dest: MemoryDestination) -> bool:
    """Every container was completed (none left in progress)."""
    return all(not c.in_progress for c in dest.containers.values())
