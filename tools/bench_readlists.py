"""Only the list-reading stage of a baseline: discover, then read every resource list into the
state DB (``Engine._read_resource_lists``), nothing deposited. The benchmark runs it in a
subprocess to measure the peak memory of that stage alone (the CLI has no such entry point).

``python -m tools.bench_readlists SOURCE COLLECTION STATE``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from sync.config import Pipeline
from sync.discovery import discover
from sync.engine import Engine
from sync.state import State


def main(argv: Sequence[str] | None = None) -> int:
    source, collection, state = list(argv if argv is not None else sys.argv[1:])
    p = Pipeline(
        name="bench-lists", source=source, collection=collection, state=state, per_host_rate=0
    )
    st = State(p.state_path())
    engine = Engine(p, st, progress=False)
    run_id = st.start_run("baseline", p.name, "list reading only (benchmark)")
    plan = discover(engine.reader, p.source)
    complete, _cursor = engine._read_resource_lists(plan, run_id)
    st.finish_run(run_id, "partial", {"requests": engine.http.requests_sent}, "lists only")
    print(json.dumps({"complete": complete, "resources": st.count_resources()}))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
