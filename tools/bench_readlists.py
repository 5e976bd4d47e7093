"""Only the list-reading stage of a baseline: discover, then read every resource list into the
state DB (the source's listing, stored as a baseline stores it), nothing deposited. The
benchmark runs it in a subprocess to measure the peak memory of that stage alone (the CLI
has no such entry point).

``python -m tools.bench_readlists SOURCE COLLECTION STATE``; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from sync.config import Pipeline
from sync.contracts import RunKind, RunStatus
from sync.registry import assemble
from sync.state import State


def main(argv: Sequence[str] | None = None) -> int:
    source, collection, state = list(argv if argv is not None else sys.argv[1:])
    p = Pipeline(
        name="bench-lists",
        source={"url": source},
        destination={"collection": collection},
        state=state,
        per_host_rate=0,
    )
    st = State(p.state_path())
    asm = assemble(p, st, progress=False)
    run_id = st.start_run(RunKind.BASELINE, p.name, "list reading only (benchmark)")
    listing = asm.source.listing()
    st.upsert_entries(listing, run_id)
    counts = {"requests": asm.http.requests_sent}
    st.finish_run(run_id, RunStatus.PARTIAL, counts, "lists only")
    print(json.dumps({"complete": listing.complete, "resources": st.count_resources()}))
    return 0 if listing.complete else 1


if __name__ == "__main__":
    sys.exit(main())
