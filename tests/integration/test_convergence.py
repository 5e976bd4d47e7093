"""Random change sequences converge (vdirsyncer-style state machine, in-process engine).

Hypothesis creates, changes and deletes items at the source between sync runs, sometimes with
faults injected on the SWORD server; after every sync (and replay), the destination must hold
exactly what the source has.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sync.config import Pipeline
from sync.registry import assemble
from sync.state import State
from tests.conftest import PASSWORD, expected_snapshot, snapshot
from tests.servers.base import FaultPolicy
from tests.servers.fixtures import SourceModel
from tests.servers.rs_source import ResourceSyncSource
from tests.servers.sword_server import SwordServer

_names = itertools.count()


class MirrorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # a variable of its own: SWORD_PASSWORD set here would leak into later tests' servers
        os.environ["RSW_STATE_MACHINE_PASSWORD"] = PASSWORD
        self.tmp = Path(tempfile.mkdtemp(prefix="rsw-sm-"))
        self.model = SourceModel.generate(6, seed=next(_names))
        self.src = ResourceSyncSource(self.model, changelists="index", changelist_size=4).start()
        self.sword = SwordServer(self.tmp / "sword", password=PASSWORD).start()
        self.pipeline = Pipeline(
            name="sm",
            source={"url": self.src.base_url + "/"},
            destination={
                "collection": self.sword.col_iri("default"),
                "service_document": self.sword.sd_iri,
                "username": "sword",
                "password_env": "RSW_STATE_MACHINE_PASSWORD",
            },
            per_host_rate=0,
            workers=3,
            attempts=2,
            backoff_initial=0.01,
            read_timeout=2,
            state=str(self.tmp / "state.sqlite"),
        )
        self.state = State(self.tmp / "state.sqlite")
        self.synced = False
        self.run("baseline")

    def run(self, kind: str) -> None:
        asm = assemble(self.pipeline, self.state, progress=False)
        getattr(asm.engine, kind)()
        asm.close()
        self.synced = True

    def keys(self, *styles: str) -> list[str]:
        return sorted(k for k, it in self.model.items.items() if not styles or it.style in styles)

    @rule(style=st.sampled_from(["dspace", "recipe", "plain"]))
    def create(self, style: str) -> None:
        self.model.create_item(style)
        self.synced = False

    @precondition(lambda self: self.keys("dspace", "recipe"))
    @rule(data=st.data())
    def update_metadata(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.keys("dspace", "recipe")))
        self.model.update_metadata(key, title=f"changed {next(_names)} & co")
        self.synced = False

    @precondition(lambda self: [k for k in self.keys() if self.model.items[k].files])
    @rule(data=st.data())
    def replace_file(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from([k for k in self.keys() if self.model.items[k].files]))
        self.model.replace_file(key, 0, f"new bytes {next(_names)}\n".encode())
        self.synced = False

    @precondition(lambda self: self.keys("dspace", "recipe"))
    @rule(data=st.data())
    def add_file(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.keys("dspace", "recipe")))
        self.model.add_file(key, f"extra {next(_names)}.txt", b"extra\n", "text/plain")
        self.synced = False

    @precondition(lambda self: len(self.model.items) > 4)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        self.model.delete_item(data.draw(st.sampled_from(self.keys())))
        self.synced = False

    @rule(faulty=st.booleans())
    def sync(self, faulty: bool) -> None:
        if faulty:
            self.sword.httpd.faults = FaultPolicy(rate=0.15, seed=next(_names), stall_seconds=0.5)
        self.run("incremental")
        self.sword.httpd.faults = FaultPolicy()
        self.run("replay")  # whatever the faults failed

    @invariant()
    def destination_equals_source_after_a_sync(self) -> None:
        if self.synced:
            assert snapshot(self.sword.store.containers()) == expected_snapshot(self.model)

    def teardown(self) -> None:
        self.src.stop()
        self.sword.stop()
        self.state.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


MirrorMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
test_random_changes_converge = MirrorMachine.TestCase
