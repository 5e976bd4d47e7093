"""Random change sequences converge, on the in-memory source and destination (issue #9).

The fast twin of ``tests/integration/test_convergence.py`` (vdirsyncer tests its sync
algorithm the same way against MemoryStorage): Hypothesis creates items, changes titles and
files, adds, removes and deletes at the source, and syncs (baseline or incremental, then
replay) with faults at the destination that strike before or after the call took effect.
After a sync followed by replays until nothing fails, the destination must hold exactly what
the source has: the same titles, the same files by content, no extra container, no
duplicate file.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sync.contracts import Capabilities, RunStatus
from sync.depositor import DepositPolicy
from sync.destinations.memory import Fault, MemoryDestination, Operation
from sync.engine import EngineSettings, RunResult
from sync.sources.memory import MemorySource
from tests.memory_mirror import COLLECTION, Mirror, completed, held, wanted

OPERATIONS: list[Operation] = [
    "create",
    "add_file",
    "replace_metadata",
    "replace_files",
    "remove_file",
    "complete",
    "delete",
]
Faults = list[tuple[Operation, bool]]  # (operation, after it took effect)

# Faults that cannot converge today are left out; each has a strict xfail in test_engine.py
# that fails the day it is fixed (then put the fault back here):
KNOWN_BUGS: set[tuple[Operation, bool]] = set()
FAULTS = st.lists(st.tuples(st.sampled_from(OPERATIONS), st.booleans()), max_size=4)
CONTENT = st.binary(min_size=1, max_size=12)
FILES = st.lists(CONTENT, min_size=1, max_size=3)
# An item keeps at least one file: a record that describes nothing has no links, so it is a
# resource of its own (deposited as a file titled after its URL), as a ResourceSync source says.
MAX_REPLAYS = 4  # every fault is one-shot: a few replays must be enough


class MemoryMirrorMachine(RuleBasedStateMachine):
    """The model is what the source holds: item key -> (title, {file name: bytes})."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="rsw-mem-sm-"))
        self.model: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.names = itertools.count()
        self.synced = False

    # -- set-up: the kind of source and destination ------------------------------------------
    @initialize(
        feed=st.booleans(),
        single_file_delete=st.booleans(),
        checksums=st.booleans(),
        rename=st.booleans(),
        whole_item_updates=st.booleans(),
        overlap=st.sampled_from([0, 300]),
        contents=st.lists(FILES, min_size=1, max_size=4),
    )
    def start(
        self,
        feed: bool,
        single_file_delete: bool,
        checksums: bool,
        rename: bool,
        whole_item_updates: bool,
        overlap: int,
        contents: list[list[bytes]],
    ) -> None:
        caps = Capabilities(
            single_file_delete=single_file_delete,
            checksums_in_listing=checksums,
            whole_item_updates=whole_item_updates,
        )
        self.mirror = Mirror(
            self.tmp / "state.sqlite",
            source=MemorySource(feed=feed),
            dest=MemoryDestination(caps=caps, rename=rename),
            settings=EngineSettings(
                collection=COLLECTION,
                workers=1,  # deterministic: the same fault strikes the same call when shrinking
                overlap_seconds=overlap,
                max_delete_share=1.0,  # the guard has its own tests; here deletions go through
                policy=DepositPolicy(attempts=2),
            ),
        )
        for files in contents:
            self._put(self._new_key(), self._title(), {self._name(): c for c in files})
        self.settle(self.mirror.baseline())

    # -- changes at the source ---------------------------------------------------------------
    def _new_key(self) -> str:
        return f"i{next(self.names)}"

    def _title(self) -> str:
        return f"Tïtle {next(self.names)} & co"

    def _name(self) -> str:
        return f"f{next(self.names)}.bin"

    def _put(self, key: str, title: str, files: dict[str, bytes]) -> None:
        self.model[key] = (title, files)
        self.mirror.source.put_item(key, title, files)
        self.synced = False

    def _keys(self) -> list[str]:
        return sorted(self.model)

    def _with_files(self, at_least: int = 1) -> list[str]:
        return [k for k in self._keys() if len(self.model[k][1]) >= at_least]

    @rule(contents=FILES)
    def create(self, contents: list[bytes]) -> None:
        self._put(self._new_key(), self._title(), {self._name(): c for c in contents})

    @rule(data=st.data())
    def change_title(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._keys()))
        self._put(key, self._title(), dict(self.model[key][1]))

    @precondition(lambda self: self._with_files())
    @rule(data=st.data(), content=CONTENT)
    def replace_file(self, data: st.DataObject, content: bytes) -> None:
        key = data.draw(st.sampled_from(self._with_files()))
        title, files = self.model[key]
        name = data.draw(st.sampled_from(sorted(files)))
        self._put(key, title, {**files, name: content})

    @rule(data=st.data(), content=CONTENT)
    def add_file(self, data: st.DataObject, content: bytes) -> None:
        key = data.draw(st.sampled_from(self._keys()))
        title, files = self.model[key]
        self._put(key, title, {**files, self._name(): content})

    @precondition(lambda self: self._with_files(2))
    @rule(data=st.data())
    def remove_file(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._with_files(2)))
        title, files = self.model[key]
        name = data.draw(st.sampled_from(sorted(files)))
        self._put(key, title, {n: c for n, c in files.items() if n != name})

    @precondition(lambda self: len(self.model) > 1)  # an emptied source trips the guard
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._keys()))
        del self.model[key]
        self.mirror.source.remove_item(key)
        self.synced = False

    # -- syncing -----------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(["baseline", "incremental"]),
        faults=FAULTS,
        replay_faults=FAULTS,
    )
    def sync(self, kind: str, faults: Faults, replay_faults: Faults) -> None:
        """A sync with faults, a replay with faults, then replays without until all is well."""
        result = self._with_faults(faults, getattr(self.mirror, kind))
        if result.status != RunStatus.OK:
            result = self._with_faults(replay_faults, self.mirror.replay)
        self.settle(result)

    @rule()
    def replay(self) -> None:
        """A replay on its own changes nothing that is in sync (it is no sync of new changes:
        ``synced`` stays as it was)."""
        before = len(self.mirror.dest.calls)
        result = self.mirror.replay()
        assert result.status == RunStatus.OK
        if self.synced:
            assert self.mirror.dest.calls[before:] == []

    def _with_faults(self, faults: Faults, run: Callable[[], RunResult]) -> RunResult:
        dest = self.mirror.dest
        known = KNOWN_BUGS
        dest.faults.extend(
            Fault(op, applied) for op, applied in faults if (op, applied) not in known
        )
        try:
            return run()
        finally:
            dest.faults.clear()  # the faults this run did not meet

    def settle(self, result: RunResult) -> None:
        """Replay until a run ends without failures; it must not take more than a few."""
        for _ in range(MAX_REPLAYS):
            if result.status == RunStatus.OK:
                break
            result = self.mirror.replay()
        assert result.status == RunStatus.OK, (result, self.mirror.state.errors(result.run_id))
        self.synced = True

    @invariant()
    def destination_equals_source_after_a_sync(self) -> None:
        if self.synced:
            dest = self.mirror.dest
            assert held(dest, strip_rename=dest.rename) == wanted(self.model)
            assert completed(self.mirror.dest)

    def teardown(self) -> None:
        if hasattr(self, "mirror"):
            self.mirror.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


MemoryMirrorMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_changes_converge_in_memory = MemoryMirrorMachine.TestCase
