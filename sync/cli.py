"""The command line: thin. Parses options, builds a Pipeline, asks the registry for an engine
(source + destination + state), prints results. It names no protocol.

Exit codes: 0 every item synced; 1 some items failed (recorded, see ``status``; ``replay``
retries them) or the run stopped; 2 usage or configuration error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__
from .audit import AuditReport, audit
from .config import Pipeline, load_pipeline
from .engine import RunResult
from .errors import ConfigError, SyncError, redact
from .registry import Assembly, assemble, build_destination, relocate
from .state import RunLock, State

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would show the password in --debug tracebacks
    no_args_is_help=True,
    help="Mirror a ResourceSync source into a SWORD v2 repository.",
)
log = logging.getLogger("sync")

StateOpt = Annotated[
    Path | None,
    typer.Option("--state", help="State DB file (default: state/<pipeline>.sqlite)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
CommentOpt = Annotated[str | None, typer.Option("--comment", help="Note kept with the run.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, max=256, help="Items synced in parallel.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Sync at most N items in this run.")
]
ForceOpt = Annotated[
    bool, typer.Option("--force-delete", help="Allow a run to delete more than max_delete_share.")
]
HostConcOpt = Annotated[
    int | None, typer.Option("--per-host-concurrency", min=1, help="Requests in flight per host.")
]
RateOpt = Annotated[
    float | None,
    typer.Option("--rate", min=0.0, help="Requests per second per host (0: no bound)."),
]
CaOpt = Annotated[Path | None, typer.Option("--ca-bundle", help="CA bundle for private CAs.")]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure", help="Do not verify TLS certificates (not advised).")
]


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _setup_logging(debug: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("resync-sword: %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)


_debug = False


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Verbose logs and tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    global _debug
    _debug = debug
    _setup_logging(debug, quiet)


@dataclass(frozen=True)
class Tuning:
    """The per-run options every syncing command takes (one place, not one copy each)."""

    workers: int | None = None
    limit: int | None = None
    per_host: int | None = None
    rate: float | None = None
    ca_bundle: Path | None = None
    insecure: bool = False

    def apply(self, p: Pipeline, state: Path | None = None) -> Pipeline:
        changes: dict[str, Any] = {}
        if self.workers is not None:
            changes["workers"] = self.workers
        if self.limit is not None:
            changes["limit"] = self.limit
        if self.per_host is not None:
            changes["per_host_concurrency"] = self.per_host
        if self.rate is not None:
            changes["per_host_rate"] = self.rate
        if self.ca_bundle is not None:
            changes["ca_bundle"] = str(self.ca_bundle)
        if self.insecure:
            log.warning(
                "TLS certificate verification is OFF (--insecure): anyone on the path can "
                "read and alter what is synced"
            )
            changes["verify_tls"] = False
        if state is not None:
            changes["state"] = str(state)
        return replace(p, **changes)


def _open_state(state: Path | None, *, must_exist: bool) -> tuple[State, Pipeline]:
    path = state or _default_state()
    if must_exist and not path.exists():
        raise ConfigError("no state DB here; run `baseline` or `run` first", resource=str(path))
    st = State(path)
    data = st.get_json("pipeline")
    if must_exist and not data:
        raise ConfigError("the state DB has no pipeline; run `baseline` first", resource=str(path))
    pipeline = Pipeline.from_json(data) if data else Pipeline()
    return st, replace(pipeline, state=str(path))


def _default_state() -> Path:
    found = sorted(Path("state").glob("*.sqlite"))
    if len(found) == 1:
        return found[0]
    return Path("state/default.sqlite")


def _report(result: RunResult) -> None:
    c = result.counts
    typer.echo(
        f"run {result.run_id} ({result.kind}): {result.status} - created {c.get('created', 0)}, "
        f"updated {c.get('updated', 0)}, deleted {c.get('deleted', 0)}, unchanged "
        f"{c.get('unchanged', 0)}, skipped {c.get('skipped', 0)}, failed {c.get('failed', 0)}"
        + (f", waiting {c['waiting']}" if c.get("waiting") else "")
    )
    if result.message:
        typer.echo(f"  {result.message}", err=True)
    if c.get("failed"):
        typer.echo(
            "  see `resync-sword status` for the errors; `resync-sword replay` retries", err=True
        )


def _guard(fn: Any) -> Any:
    """Map errors to exit codes; tracebacks only with --debug."""
    try:
        return fn()
    except typer.Exit:
        raise
    except SyncError as exc:
        typer.echo(f"error: {exc.describe()}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; `resync-sword replay` finishes what was under way", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if _debug:
            raise
        typer.echo(
            f"error: internal error: {redact(repr(exc))} (run with --debug for details)", err=True
        )
        raise typer.Exit(1) from None


def _run(engine_call: Any) -> None:
    result: RunResult = _guard(engine_call)
    _report(result)
    raise typer.Exit(result.exit_code)


def _sync(
    p: Pipeline, st: State, action: Callable[[Assembly], RunResult], *, save: bool = False
) -> RunResult:
    """Run ``action`` on the engine the registry builds for ``p``, holding the state's lock;
    ``save``: keep the pipeline in the state DB (with the detected source type) so later
    commands need no arguments."""
    with RunLock(st.path):
        asm = assemble(p, st, progress=True)
        try:
            if save:
                st.set_json("pipeline", asm.pipeline.to_json())
            return action(asm)
        finally:
            asm.close()


@app.command()
def baseline(
    source: Annotated[
        str,
        typer.Argument(
            help="ResourceSync (site, capability list, resource list...) or OAI-PMH base URL; "
            "the type is detected."
        ),
    ],
    collection: Annotated[
        str | None, typer.Option("--collection", help="SWORD destination: the Col-IRI.")
    ] = None,
    saf: Annotated[
        Path | None,
        typer.Option("--saf", help="SAF destination: the output folder for import batches."),
    ] = None,
    saf_collection: Annotated[
        str | None,
        typer.Option("--saf-collection", help="SAF destination: the DSpace collection handle."),
    ] = None,
    saf_zip: Annotated[
        bool, typer.Option("--saf-zip", help="SAF destination: also write add.zip/replace.zip.")
    ] = False,
    keep_handles: Annotated[
        bool,
        typer.Option("--keep-handles", help="SAF destination: keep the source's handles."),
    ] = False,
    service_document: Annotated[
        str | None, typer.Option("--service-document", help="SWORD SD-IRI.")
    ] = None,
    source_type: Annotated[
        str | None,
        typer.Option("--source-type", help="resourcesync | oai-pmh | saf (default: detected)."),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="OAI-PMH: harvest only this set (repeatable)."),
    ] = None,
    metadata_prefix: Annotated[
        str | None,
        typer.Option("--metadata-prefix", help="OAI-PMH: the metadata format to read."),
    ] = None,
    state: StateOpt = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help="SWORD user; the password comes from $SWORD_PASSWORD."),
    ] = None,
    on_behalf_of: Annotated[str | None, typer.Option("--on-behalf-of")] = None,
    name: Annotated[str, typer.Option("--name", help="Pipeline name.")] = "default",
    comment: CommentOpt = None,
    workers: WorkersOpt = None,
    limit: LimitOpt = None,
    per_host_concurrency: HostConcOpt = None,
    rate: RateOpt = None,
    force_delete: ForceOpt = False,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Mirror a source into a collection (first run; re-running updates, never duplicates)."""
    tuning = Tuning(workers, limit, per_host_concurrency, rate, ca_bundle, insecure)

    def go() -> RunResult:
        destination_type, destination = _destination_table(
            collection=collection,
            service_document=service_document,
            username=username,
            on_behalf_of=on_behalf_of,
            saf=saf,
            saf_collection=saf_collection,
            saf_zip=saf_zip,
            keep_handles=keep_handles,
        )
        source_table = _source_table(source)
        if sets:
            source_table["sets"] = list(sets)
        if metadata_prefix:
            source_table["metadata_prefix"] = metadata_prefix
        p = Pipeline(
            name=name,
            source_type=source_type,
            source=source_table,
            destination_type=destination_type,
            destination=destination,
        )
        p = tuning.apply(p, state or Path(f"state/{name}.sqlite"))
        p.validate()
        st = State(p.state_path())
        return _sync(
            p, st, lambda a: a.engine.baseline(comment, force_delete=force_delete), save=True
        )

    _run(go)


def _destination_table(
    *,
    collection: str | None,
    service_document: str | None,
    username: str | None,
    on_behalf_of: str | None,
    saf: Path | None,
    saf_collection: str | None,
    saf_zip: bool,
    keep_handles: bool,
) -> tuple[str, dict[str, Any]]:
    """The destination the command line names: a SWORD collection or a SAF folder."""
    if saf is not None:
        if collection or service_document or username:
            raise ConfigError(
                "--saf writes SAF batches: --collection and SWORD options do not apply"
            )
        table: dict[str, Any] = {"path": str(saf), "zip": saf_zip, "keep_handles": keep_handles}
        if saf_collection:
            table["collection"] = saf_collection
        return "saf", table
    if not collection:
        raise ConfigError(
            "no destination given",
            hint="--collection COL_IRI (SWORD) or --saf OUT_DIR (DSpace Simple Archive Format)",
        )
    table = {"collection": collection}
    for key, value in (
        ("service_document", service_document),
        ("username", username),
        ("on_behalf_of", on_behalf_of),
    ):
        if value is not None:
            table[key] = value
    return "sword", table


def _source_table(location: str) -> dict[str, Any]:
    """What the command line's SOURCE means: a URL, or a local path."""
    return {"url": location} if "://" in location else {"path": location}


@app.command()
def run(
    pipeline_file: Annotated[Path, typer.Argument(help="pipelines/NAME.toml")],
    comment: CommentOpt = None,
    workers: WorkersOpt = None,
    limit: LimitOpt = None,
    per_host_concurrency: HostConcOpt = None,
    rate: RateOpt = None,
    force_delete: ForceOpt = False,
    state: StateOpt = None,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Run a pipeline: baseline on a new state DB, incremental afterwards."""
    tuning = Tuning(workers, limit, per_host_concurrency, rate, ca_bundle, insecure)

    def go() -> RunResult:
        p = tuning.apply(load_pipeline(pipeline_file), state)
        st = State(p.state_path())
        if st.last_successful_cursor() is None:
            return _sync(
                p, st, lambda a: a.engine.baseline(comment, force_delete=force_delete), save=True
            )
        return _sync(
            p, st, lambda a: a.engine.incremental(comment, force_delete=force_delete), save=True
        )

    _run(go)


@app.command()
def incremental(
    state: StateOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Read the source from here this time (e.g. a new SAF export)."
        ),
    ] = None,
    comment: CommentOpt = None,
    workers: WorkersOpt = None,
    limit: LimitOpt = None,
    per_host_concurrency: HostConcOpt = None,
    rate: RateOpt = None,
    force_delete: ForceOpt = False,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Apply the source's changes since the last sync (source and destination from the state)."""
    tuning = Tuning(workers, limit, per_host_concurrency, rate, ca_bundle, insecure)

    def go() -> RunResult:
        st, p = _open_state(state, must_exist=True)
        p = tuning.apply(p)
        save = source is not None
        if source is not None:  # the new location is kept for the next runs
            p = replace(p, source=relocate(p, source))
        return _sync(
            p, st, lambda a: a.engine.incremental(comment, force_delete=force_delete), save=save
        )

    _run(go)


@app.command()
def replay(
    state: StateOpt = None,
    comment: CommentOpt = None,
    workers: WorkersOpt = None,
    ca_bundle: CaOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Retry every failed or unfinished item (idempotently)."""
    tuning = Tuning(workers=workers, ca_bundle=ca_bundle, insecure=insecure)

    def go() -> RunResult:
        st, p = _open_state(state, must_exist=True)
        return _sync(tuning.apply(p), st, lambda a: a.engine.replay(comment))

    _run(go)


@app.command()
def status(state: StateOpt = None, as_json: JsonOpt = False) -> None:
    """Items by state, past runs and the errors of items that are not synced."""

    def go() -> None:
        st, p = _open_state(state, must_exist=True)
        counts = st.count_items()
        waiting = build_destination(p).waiting()
        failing = []
        for item in st.failed_items():
            failing.append(
                {
                    "item": item.key,
                    "status": item.status,
                    "code": item.error_code,
                    "error": item.error,
                }
            )
        runs = [r.as_dict() for r in st.runs()]
        # what the last run refused or could not read (documents, list entries, items)
        last_errors = st.errors(run_id=runs[-1]["id"]) if runs else []
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "state": str(st.path),
                        "items": counts,
                        "not_synced": failing,
                        "runs": runs,
                        "last_run_errors": last_errors,
                        "waiting": waiting,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        typer.echo(f"state: {st.path}")
        typer.echo("items: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
        if failing:
            typer.echo(f"not synced ({len(failing)}):")
            for f in failing[:50]:
                typer.echo(f"  {f['status']:<11} {f['item']}\n      {f['error']}")
            if len(failing) > 50:
                typer.echo(f"  ... and {len(failing) - 50} more (--json lists all)")
        if waiting:
            typer.echo(
                "waiting to be imported (run their IMPORT.sh; later changes to their items "
                "wait for it): " + ", ".join(waiting)
            )
        refused = [e for e in last_errors if not e["item"]]
        if refused:
            typer.echo(f"refused or unreadable in the last run ({len(refused)}):")
            for e in refused[:20]:
                typer.echo(f"  {e['message']}")
        _print_runs(runs)

    _guard(go)


def _print_runs(runs: list[dict[str, Any]]) -> None:
    typer.echo("runs:")
    typer.echo(
        f"  {'id':>4} {'kind':<11} {'status':<8} {'started':<20} {'created':>7} "
        f"{'updated':>7} {'deleted':>7} {'unchanged':>9} {'failed':>6}  comment"
    )
    for r in runs:
        typer.echo(
            f"  {r['id']:>4} {r['kind']:<11} {r['status']:<8} {r['started'][:19]:<20} "
            f"{r['created']:>7} {r['updated']:>7} {r['deleted']:>7} {r['unchanged']:>9} "
            f"{r['failed']:>6}  {r['comment'] or ''}"
        )


@app.command()
def runs(state: StateOpt = None, as_json: JsonOpt = False) -> None:
    """Past runs: kind, times, counts, status, comment."""

    def go() -> None:
        st, _p = _open_state(state, must_exist=True)
        data = [r.as_dict() for r in st.runs()]
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            _print_runs(data)

    _guard(go)


@app.command("audit")
def audit_cmd(state: StateOpt = None, as_json: JsonOpt = False) -> None:
    """Compare source, state DB and destination; change nothing. Exit 0 only when in sync."""

    def go() -> int:
        st, p = _open_state(state, must_exist=True)
        asm = assemble(p, st, progress=False)
        try:
            report: AuditReport = audit(asm.source, asm.destination, st)
        finally:
            asm.close()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "in_sync": report.in_sync,
                        "differences": report.differences,
                        "items": report.checked_items,
                        "resources": report.checked_resources,
                    },
                    indent=2,
                )
            )
        else:
            for line in report.differences:
                typer.echo(line)
            typer.echo(
                f"audit: {report.checked_resources} resources, {report.checked_items} "
                f"items, {len(report.differences)} differences"
            )
        return 0 if report.in_sync else 1

    raise typer.Exit(_guard(go))


@app.command()
def undo(
    run_id: Annotated[int, typer.Argument(help="The run whose containers to remove.")],
    state: StateOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    comment: CommentOpt = None,
) -> None:
    """Remove from the destination the containers that one run created (and only those)."""

    def go() -> RunResult:
        st, p = _open_state(state, must_exist=True)
        target = st.run(run_id)
        if target is None:
            raise ConfigError(f"no run {run_id} in this state DB", resource=str(st.path))
        keys = st.items_created_in(run_id)
        if not yes:
            typer.confirm(
                f"Delete the {len(keys)} containers created by run {run_id} "
                f"({target.kind}, {target.started[:19]}) from the destination?",
                abort=True,
            )
        return _sync(p, st, lambda a: a.engine.undo(run_id, comment))

    _run(go)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"resync-sword {__version__}")


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # pragma: no cover - typer handles most
        typer.echo(f"error: {exc.describe()}", err=True)
        sys.exit(2)
