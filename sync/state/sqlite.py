"""The state DB (SQLite): the single source of truth for what is mirrored where.

One file per pipeline. It records every list entry, which item each resource belongs to,
every container with all its IRIs, every uploaded file, each run, each error and, before each
remote call that creates something, the intent to make it (so a crash can be recovered from
without duplicates). WAL journal, one short transaction per step.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..contracts import (
    Container,
    FileState,
    FileStatus,
    ItemState,
    ItemStatus,
    RunKind,
    RunRecord,
    RunStatus,
)
from ..errors import ConfigError, SyncError, redact
from ..model import Entry, Item, Link
from .resource_rows import ResourceRow, links_text, resource_row, utc_text

SCHEMA_VERSION = 3
MEMBERS_PER_STATEMENT = 100  # 300 bound values: well under SQLite's limit

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, pipeline TEXT,
  started TEXT NOT NULL, finished TEXT, status TEXT NOT NULL, comment TEXT,
  created INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0,
  deleted INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
  requests INTEGER NOT NULL DEFAULT 0, message TEXT, cursor TEXT
);
CREATE TABLE resources (
  loc TEXT PRIMARY KEY, lastmod TEXT, md5 TEXT, sha1 TEXT, sha256 TEXT, length INTEGER,
  type TEXT, links TEXT NOT NULL DEFAULT '[]', present INTEGER NOT NULL DEFAULT 1,
  seen_run INTEGER, changed_run INTEGER, change TEXT, change_time TEXT
);
CREATE INDEX resources_present ON resources(present, seen_run);
CREATE TABLE members (loc TEXT PRIMARY KEY, item_key TEXT NOT NULL, role TEXT NOT NULL);
CREATE INDEX members_item ON members(item_key);
CREATE TABLE items (
  key TEXT PRIMARY KEY, status TEXT NOT NULL, collection_iri TEXT, slug TEXT,
  edit_iri TEXT, em_iri TEXT, se_iri TEXT, statement_iri TEXT, dest_state TEXT,
  metadata_fp TEXT, title TEXT, create_pending INTEGER NOT NULL DEFAULT 0,
  stale INTEGER NOT NULL DEFAULT 0, error_code TEXT, error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0, created_run INTEGER, updated_run INTEGER,
  deleted_run INTEGER, updated_at TEXT
);
CREATE INDEX items_status ON items(status);
CREATE INDEX items_created_run ON items(created_run);
CREATE TABLE files (
  item_key TEXT NOT NULL, loc TEXT NOT NULL, filename TEXT, md5 TEXT, size INTEGER,
  content_type TEXT, fingerprint TEXT, file_iri TEXT, status TEXT NOT NULL, run_id INTEGER,
  PRIMARY KEY (item_key, loc)
);
CREATE TABLE journal (
  id INTEGER PRIMARY KEY, run_id INTEGER, item_key TEXT, op TEXT NOT NULL, target TEXT,
  state TEXT NOT NULL, at TEXT NOT NULL
);
CREATE INDEX journal_item ON journal(item_key);
CREATE TABLE errors (
  id INTEGER PRIMARY KEY, run_id INTEGER, item_key TEXT, resource TEXT, code TEXT NOT NULL,
  message TEXT NOT NULL, at TEXT NOT NULL
);
CREATE INDEX errors_item ON errors(item_key);
"""

# Ordered ladder: MIGRATIONS[v] upgrades a DB at version v to v + 1. New DBs are made at v1
# and climb the ladder too, so every DB in the field went through the same steps.
MIGRATIONS: dict[int, str] = {
    # v2: the run that last saw an item at the source, so that deletions are found in SQL
    # instead of by holding every item key in memory
    1: "ALTER TABLE items ADD COLUMN seen_run INTEGER; CREATE INDEX items_seen ON items(seen_run)",
    # v3: the destination owns its references. The SWORD IRIs become a container id (the
    # Edit-IRI) plus the destination's own data (JSON); a file's IRI becomes its ref. The
    # write-only journal, the unused dest_state and the derivable slug go.
    2: """
ALTER TABLE items ADD COLUMN container TEXT;
ALTER TABLE items ADD COLUMN container_data TEXT;
UPDATE items SET container=edit_iri, container_data=json_object(
  'em_iri', em_iri, 'se_iri', se_iri, 'statement_iri', statement_iri) WHERE edit_iri IS NOT NULL;
ALTER TABLE items DROP COLUMN edit_iri;
ALTER TABLE items DROP COLUMN em_iri;
ALTER TABLE items DROP COLUMN se_iri;
ALTER TABLE items DROP COLUMN statement_iri;
ALTER TABLE items DROP COLUMN dest_state;
ALTER TABLE items DROP COLUMN slug;
ALTER TABLE items RENAME COLUMN collection_iri TO collection;
CREATE INDEX items_container ON items(container);
ALTER TABLE files RENAME COLUMN file_iri TO ref;
DROP TABLE journal;
ALTER TABLE runs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0
""",
}

PENDING, CREATING, IN_PROGRESS, COMPLETE = (
    ItemStatus.PENDING,
    ItemStatus.CREATING,
    ItemStatus.IN_PROGRESS,
    ItemStatus.COMPLETE,
)
FAILED, CONFLICT, DELETED = ItemStatus.FAILED, ItemStatus.CONFLICT, ItemStatus.DELETED


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _dt(value: datetime | None) -> str | None:
    return utc_text(value)


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def links_json(links: Iterable[Link]) -> str:
    return links_text(links)


def links_from_json(text: str) -> tuple[Link, ...]:
    return tuple(
        Link(rel=r, href=h, type=t, attrs=tuple((a[0], a[1]) for a in attrs))
        for r, h, t, attrs in json.loads(text)
    )


_ITEM_COLUMNS = (
    "key, status, collection, container, container_data, metadata_fp, title, create_pending,"
    " stale, error_code, error, attempts, created_run"
)


class RunLock:
    """One run at a time per state DB: an exclusive lock on ``<state>.lock``.

    The OS drops the lock when the process dies, so a killed run never blocks the next one,
    and a run still marked 'running' in the DB is known to be dead.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(str(path) + ".lock")
        self._fh: Any = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise ConfigError(
                "another resync-sword run is using this state DB",
                resource=str(self.path),
                hint="wait for it to finish",
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


class State:
    """Thread-safe access to one state DB file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if "meta" not in tables:
                with self.tx():
                    for stmt in _SCHEMA_V1.split(";"):
                        if stmt.strip():
                            self.db.execute(stmt)
                    self.db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
            version = int(self.get_meta("schema_version") or 0)
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"state DB has schema version {version}, newer than this resync-sword "
                    f"understands ({SCHEMA_VERSION})",
                    resource=str(self.path),
                    hint="upgrade resync-sword",
                )
            while version < SCHEMA_VERSION:
                script = MIGRATIONS.get(version)
                if script is None:
                    raise ConfigError(
                        f"no upgrade path from state schema version {version}",
                        resource=str(self.path),
                    )
                with self.tx():
                    for stmt in script.split(";"):
                        if stmt.strip():
                            self.db.execute(stmt)
                    version += 1
                    self.set_meta("schema_version", str(version))

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction (re-entrant: inner blocks join the outer one)."""
        with self._lock:
            if self.db.in_transaction:
                yield self.db
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO meta VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def get_json(self, key: str) -> Any:
        value = self.get_meta(key)
        return json.loads(value) if value else None

    def set_json(self, key: str, value: Any) -> None:
        self.set_meta(key, json.dumps(value, ensure_ascii=False, sort_keys=True))

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, kind: RunKind, pipeline: str | None, comment: str | None) -> int:
        with self._lock:
            cur = self.db.execute(
                "INSERT INTO runs (kind, pipeline, started, status, comment) "
                "VALUES (?, ?, ?, 'running', ?)",
                (kind, pipeline, now(), comment),
            )
            return int(cur.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        status: RunStatus,
        counts: Mapping[str, int],
        message: str | None,
        cursor: str | None = None,
    ) -> None:
        cols = (
            "created",
            "updated",
            "deleted",
            "unchanged",
            "failed",
            "skipped",
            "waiting",
            "requests",
        )
        with self._lock:
            self.db.execute(
                "UPDATE runs SET finished=?, status=?, message=?, cursor=?, "
                + ", ".join(f"{c}=?" for c in cols)
                + " WHERE id=?",
                (
                    now(),
                    status,
                    redact(message) if message else None,
                    cursor,
                    *(counts.get(c, 0) for c in cols),
                    run_id,
                ),
            )

    def runs(self) -> list[RunRecord]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, kind, pipeline, started, finished, status, comment, created, updated,"
                " deleted, unchanged, failed, skipped, requests, message, waiting FROM runs ORDER BY id"
            ).fetchall()
        return [RunRecord(*row) for row in rows]

    def previous_run_unfinished(self, current: int) -> bool:
        """Did the newest sync run before ``current`` stop short of its end: killed or
        crashed, stopped by an error (e.g. the destination unreachable), a document it could
        not read, or --limit (it then earned no cursor)?"""
        with self._lock:
            row = self.db.execute(
                "SELECT status, cursor FROM runs WHERE id<? AND kind IN ('baseline',"
                " 'incremental', 'replay') ORDER BY id DESC LIMIT 1",
                (current,),
            ).fetchone()
        if row is None:
            return False
        status, cursor = row
        return bool(
            status == "interrupted" or (status in ("partial", "limited", "failed") and not cursor)
        )

    def mark_interrupted(self, keep: int) -> None:
        """Runs other than ``keep`` still marked running were killed: say so."""
        with self._lock:
            self.db.execute(
                "UPDATE runs SET status='interrupted', finished=? WHERE status='running' AND id!=?",
                (now(), keep),
            )

    def run(self, run_id: int) -> RunRecord | None:
        return next((r for r in self.runs() if r.id == run_id), None)

    def last_successful_cursor(self) -> str | None:
        with self._lock:
            row = self.db.execute(
                "SELECT cursor FROM runs WHERE status IN ('ok', 'partial') AND cursor IS NOT NULL"
                " AND kind IN ('baseline', 'incremental', 'replay') ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else None

    # -- resources ---------------------------------------------------------------------------
    def upsert_entries(self, entries: Iterable[Entry], run_id: int, *, batch: int = 2000) -> int:
        """Record list entries (one transaction per batch); returns how many."""
        count = 0
        rows: list[ResourceRow] = []

        def flush() -> None:
            with self.tx():
                self.db.executemany(
                    "INSERT INTO resources (loc, lastmod, md5, sha1, sha256, length, type, links,"
                    " present, seen_run, changed_run, change, change_time)"
                    " VALUES (?,?,?,?,?,?,?,?,1,?,?,?,?) ON CONFLICT(loc) DO UPDATE SET"
                    " lastmod=excluded.lastmod, md5=excluded.md5, sha1=excluded.sha1,"
                    " sha256=excluded.sha256, length=excluded.length, type=excluded.type,"
                    " links=excluded.links, present=1, seen_run=excluded.seen_run,"
                    " change=excluded.change, change_time=excluded.change_time,"
                    " changed_run=CASE WHEN resources.present=0"
                    "   OR coalesce(resources.md5,'')!=coalesce(excluded.md5,'')"
                    "   OR coalesce(resources.sha256,'')!=coalesce(excluded.sha256,'')"
                    "   OR coalesce(resources.length,-1)!=coalesce(excluded.length,-1)"
                    "   OR coalesce(resources.lastmod,'')!=coalesce(excluded.lastmod,'')"
                    "   OR resources.links!=excluded.links"
                    "   THEN excluded.changed_run ELSE resources.changed_run END",
                    rows,
                )
            rows.clear()

        for e in entries:
            rows.append(resource_row(e, run_id))
            count += 1
            if len(rows) >= batch:
                flush()
        if rows:
            flush()
        return count

    def mark_deleted(self, locs: Iterable[str], run_id: int) -> int:
        with self.tx():
            n = 0
            for loc in locs:
                n += self.db.execute(
                    "UPDATE resources SET present=0, changed_run=?, change='deleted'"
                    " WHERE loc=? AND present=1",
                    (run_id, loc),
                ).rowcount
        return n

    def unseen_present(self, run_id: int) -> Iterator[str]:
        """Present resources that the run's fresh resource lists did not list."""
        with self._lock:
            rows = self.db.execute(
                "SELECT loc FROM resources WHERE present=1 AND (seen_run IS NULL OR seen_run<?)",
                (run_id,),
            ).fetchall()
        return (r[0] for r in rows)

    def count_resources(self, present_only: bool = True) -> int:
        q = "SELECT count(*) FROM resources" + (" WHERE present=1" if present_only else "")
        with self._lock:
            return int(self.db.execute(q).fetchone()[0])

    def is_known(self, loc: str) -> bool:
        with self._lock:
            return (
                self.db.execute("SELECT 1 FROM resources WHERE loc=?", (loc,)).fetchone()
                is not None
            )

    def find_by_suffix(self, suffix: str) -> list[str]:
        """Known locs ending in ``suffix`` (resolving publishers' alternative URLs)."""
        pattern = "%" + suffix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._lock:
            rows = self.db.execute(
                "SELECT loc FROM resources WHERE loc LIKE ? ESCAPE '\\' LIMIT 5", (pattern,)
            ).fetchall()
        return [r[0] for r in rows]

    def iter_link_records(self, batch: int = 5000) -> Iterator[tuple[str, tuple[Link, ...]]]:
        """(loc, links) of every present resource, streamed in batches."""
        last = ""
        while True:
            with self._lock:
                rows = self.db.execute(
                    "SELECT loc, links FROM resources WHERE present=1 AND loc>? ORDER BY loc"
                    " LIMIT ?",
                    (last, batch),
                ).fetchall()
            if not rows:
                return
            for loc, links in rows:
                yield loc, links_from_json(links)
            last = rows[-1][0]

    def entries(self, locs: Iterable[str]) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        with self._lock:
            for loc in locs:
                row = self.db.execute(
                    "SELECT loc, lastmod, md5, sha1, sha256, length, type, links FROM resources"
                    " WHERE loc=?",
                    (loc,),
                ).fetchone()
                if row:
                    hashes = tuple(
                        (alg, v)
                        for alg, v in (("md5", row[2]), ("sha-1", row[3]), ("sha-256", row[4]))
                        if v
                    )
                    out[loc] = Entry(
                        loc=row[0],
                        lastmod=_parse_dt(row[1]),
                        hashes=hashes,
                        length=row[5],
                        type=row[6],
                        links=links_from_json(row[7]),
                    )
        return out

    def key_for(self, locs: Iterable[str]) -> str | None:
        """The existing item key of any of these locs (keeps items stable across runs)."""
        return self.keys_for([locs])[0]

    def keys_for(self, groups: Iterable[Iterable[str]]) -> list[str | None]:
        """``key_for`` of each group of locs, read at once."""
        keys: list[str | None] = []
        with self._lock:
            for locs in groups:
                key = None
                for loc in locs:
                    row = self.db.execute(
                        "SELECT item_key FROM members WHERE loc=?", (loc,)
                    ).fetchone()
                    if row:
                        key = str(row[0])
                        break
                keys.append(key)
        return keys

    def set_members(self, items: Iterable[Item], run_id: int | None = None) -> None:
        """Record each item's resources (and, with ``run_id``, that the run saw it; an item
        not recorded yet is recorded as pending), all in one transaction: the planner records
        a few dozen items at a time, so it waits for the workers' writes once per chunk."""
        stamp = now()
        with self.tx():
            for item in items:
                if run_id is not None:
                    self.db.execute(
                        "INSERT INTO items (key, status, seen_run, updated_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT(key) DO UPDATE SET seen_run=excluded.seen_run",
                        (item.key, PENDING, run_id, stamp),
                    )
                rows = [(e.loc, item.key, "metadata") for e in item.metadata]
                rows += [(e.loc, item.key, "file") for e in item.files]
                # a few rows per statement: each statement waits for the GIL again
                for start in range(0, len(rows), MEMBERS_PER_STATEMENT):
                    chunk = rows[start : start + MEMBERS_PER_STATEMENT]
                    self.db.execute(
                        "INSERT OR REPLACE INTO members VALUES "
                        + ",".join(["(?, ?, ?)"] * len(chunk)),
                        [value for row in chunk for value in row],
                    )

    def item_keys(self, statuses: Iterable[str] | None = None) -> list[str]:
        with self._lock:
            if statuses is None:
                rows = self.db.execute("SELECT key FROM items ORDER BY key").fetchall()
            else:
                st = list(statuses)
                rows = self.db.execute(
                    f"SELECT key FROM items WHERE status IN ({','.join('?' * len(st))})"
                    " ORDER BY key",
                    st,
                ).fetchall()
        return [r[0] for r in rows]

    def unseen_items(self, run_id: int) -> list[str]:
        """Items not deleted that the run's linking did not see: gone from the source."""
        with self._lock:
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT key FROM items WHERE status!='deleted'"
                    " AND coalesce(seen_run, -1)!=? ORDER BY key",
                    (run_id,),
                )
            ]

    def item(self, key: str) -> ItemState | None:
        return self.items([key]).get(key)

    def items(self, keys: Iterable[str]) -> dict[str, ItemState]:
        """The recorded state of each of these items (those recorded), read at once."""
        out: dict[str, ItemState] = {}
        with self._lock:
            for key in keys:
                st = self._item(key)
                if st is not None:
                    out[key] = st
        return out

    def _item(self, key: str) -> ItemState | None:
        row = self.db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        files = {
            r[0]: FileState(*r)
            for r in self.db.execute(
                "SELECT loc, filename, md5, fingerprint, ref, status, size FROM files"
                " WHERE item_key=?",
                (key,),
            )
        }
        (
            key,
            status,
            collection,
            container_id,
            container_data,
            metadata_fp,
            title,
            create_pending,
            stale,
            error_code,
            error,
            attempts,
            created_run,
        ) = row
        container = None
        if container_id:
            data = json.loads(container_data) if container_data else {}
            container = Container(
                container_id, {k: str(v) for k, v in data.items() if v is not None}
            )
        return ItemState(
            key=key,
            status=ItemStatus(status),
            collection=collection,
            container=container,
            metadata_fp=metadata_fp,
            title=title,
            create_pending=bool(create_pending),
            stale=bool(stale),
            error_code=error_code,
            error=error,
            attempts=attempts,
            created_run=created_run,
            files=files,
        )

    def _set(self, key: str, **columns: Any) -> None:
        """Create or update an item row: one statement (an upsert), so one commit unless it
        runs inside ``tx()``. Column names come only from this class's typed methods."""
        columns["updated_at"] = now()
        insert = {"status": PENDING, **columns}
        cols = ["key", *insert]
        with self._lock:
            self.db.execute(
                f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                " ON CONFLICT(key) DO UPDATE SET "
                + ", ".join(f"{c}=excluded.{c}" for c in columns),
                (key, *insert.values()),
            )

    @staticmethod
    def _container_json(container: Container) -> str:
        return json.dumps(dict(container.data), ensure_ascii=False, sort_keys=True)

    def record_intent(self, key: str, *, collection: str, title: str | None, run_id: int) -> None:
        """Before a create is sent (one commit): a crash from now on looks for the container
        before creating again; the title lets it be found on servers that list only titles."""
        with self.tx():
            self._set(
                key,
                title=title,
                status=CREATING,
                create_pending=1,
                collection=collection,
                created_run=run_id,
                container=None,
                container_data=None,
            )
            self.drop_files(key)

    def record_container(
        self, key: str, container: Container, *, metadata_fp: str, title: str | None
    ) -> None:
        self._set(
            key,
            status=IN_PROGRESS,
            create_pending=0,
            container=container.id,
            container_data=self._container_json(container),
            metadata_fp=metadata_fp,
            title=title,
        )

    def forget_container(self, key: str) -> None:
        with self.tx():
            self._set(key, status=DELETED, container=None, container_data=None)
            self.drop_files(key)

    def set_status(self, key: str, status: ItemStatus) -> None:
        self._set(key, status=status)

    def set_metadata(self, key: str, *, metadata_fp: str, title: str | None) -> None:
        self._set(key, metadata_fp=metadata_fp, title=title)

    def mark_complete(self, key: str, run_id: int, *, warning: str | None = None) -> None:
        self._set(
            key,
            status=COMPLETE,
            error=redact(warning) if warning else None,
            error_code="warning" if warning else None,
            updated_run=run_id,
            stale=0,
        )

    def mark_stale(self, key: str, *, metadata_fp: str, warning: str) -> None:
        """The destination refused a change and the pipeline accepts that: the source's
        version counts as seen, the item is marked stale (``audit`` shows it)."""
        self._set(
            key,
            status=COMPLETE,
            stale=1,
            metadata_fp=metadata_fp,
            error=redact(warning),
            error_code="warning",
        )

    def mark_item_deleted(
        self, key: str, run_id: int, *, stale: bool = False, warning: str | None = None
    ) -> None:
        with self.tx():
            self._set(
                key,
                status=DELETED,
                deleted_run=run_id,
                create_pending=0,
                stale=int(stale),
                error=redact(warning) if warning else None,
                error_code="warning" if warning else None,
            )
            if not stale:
                self.drop_files(key)

    def mark_failed(self, key: str, status: ItemStatus, error: SyncError) -> None:
        with self._lock:
            row = self.db.execute("SELECT attempts FROM items WHERE key=?", (key,)).fetchone()
            self._set(
                key,
                status=status,
                error=error.describe(),
                error_code=error.code,
                attempts=(row[0] if row else 0) + 1,
            )

    def undone_and_unchanged(self, key: str) -> bool:
        """Deleted by ``undo``, and none of its resources changed since: a change pass that
        reads the same changes again (the overlap window) leaves it deleted."""
        with self._lock:
            row = self.db.execute(
                "SELECT i.deleted_run FROM items i JOIN runs r ON r.id=i.deleted_run"
                " WHERE i.key=? AND i.status='deleted' AND r.kind='undo'",
                (key,),
            ).fetchone()
            if row is None:
                return False
            changed = self.db.execute(
                "SELECT 1 FROM members m JOIN resources s ON s.loc=m.loc"
                " WHERE m.item_key=? AND s.changed_run>? LIMIT 1",
                (key, row[0]),
            ).fetchone()
        return changed is None

    def owns_container(self, container_id: str) -> bool:
        """Is this container already recorded for an item (so not a lost create of ours)?"""
        with self._lock:
            row = self.db.execute(
                "SELECT 1 FROM items WHERE container=?", (container_id,)
            ).fetchone()
        return row is not None

    # -- files -------------------------------------------------------------------------------
    def _set_file(self, key: str, loc: str, **columns: Any) -> None:
        cols = ["item_key", "loc", *columns]
        with self._lock:
            self.db.execute(
                f"INSERT INTO files ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                " ON CONFLICT(item_key, loc) DO UPDATE SET "
                + ", ".join(f"{c}=excluded.{c}" for c in columns),
                (key, loc, *columns.values()),
            )

    def file_uploaded(
        self,
        key: str,
        loc: str,
        *,
        run_id: int,
        filename: str | None,
        md5: str | None,
        size: int | None,
        content_type: str | None,
        fingerprint: str,
        ref: str | None,
    ) -> None:
        self._set_file(
            key,
            loc,
            status=FileStatus.UPLOADED,
            run_id=run_id,
            filename=filename,
            md5=md5,
            size=size,
            content_type=content_type,
            fingerprint=fingerprint,
            ref=ref,
        )

    def file_seen(
        self, key: str, loc: str, *, run_id: int, fingerprint: str, ref: str | None
    ) -> None:
        """The source's version of a file counts as mirrored although it was not sent (the
        destination refused changes and the pipeline accepts the divergence)."""
        self._set_file(
            key, loc, status=FileStatus.UPLOADED, run_id=run_id, fingerprint=fingerprint, ref=ref
        )

    def drop_file(self, key: str, loc: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM files WHERE item_key=? AND loc=?", (key, loc))

    def mark_files_replacing(self, key: str) -> None:
        """All media are about to be replaced: until that is done, every recorded file must
        be sent again (and those the source dropped removed), so a failed or killed
        replacement is redone whole, never taken for done."""
        with self._lock:
            self.db.execute(
                "UPDATE files SET status=? WHERE item_key=?", (FileStatus.REPLACING, key)
            )

    def drop_files(self, key: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM files WHERE item_key=?", (key,))

    def count_items(self) -> dict[str, int]:
        with self._lock:
            return {
                r[0]: r[1]
                for r in self.db.execute("SELECT status, count(*) FROM items GROUP BY status")
            }

    def items_created_in(self, run_id: int) -> list[str]:
        with self._lock:
            return [
                r[0]
                for r in self.db.execute(
                    "SELECT key FROM items WHERE created_run=? AND status!='deleted' ORDER BY key",
                    (run_id,),
                )
            ]

    # -- errors ------------------------------------------------------------------
    def record_error(self, run_id: int, key: str | None, error: SyncError) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO errors (run_id, item_key, resource, code, message, at)"
                " VALUES (?,?,?,?,?,?)",
                (run_id, key, error.resource, error.code, error.describe(), now()),
            )

    def errors(self, run_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = "SELECT run_id, item_key, resource, code, message, at FROM errors"
        args: tuple[Any, ...] = ()
        if run_id is not None:
            q += " WHERE run_id=?"
            args = (run_id,)
        q += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self.db.execute(q, (*args, limit)).fetchall()
        keys = ("run", "item", "resource", "code", "message", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def failed_items(self) -> list[ItemState]:
        out = []
        for key in self.item_keys((FAILED, CONFLICT, CREATING, IN_PROGRESS, PENDING)):
            st = self.item(key)
            if st:
                out.append(st)
        return out
