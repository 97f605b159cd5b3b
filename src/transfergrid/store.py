"""The results store of one study: SQLite (WAL) for jobs and cell scores, files under artifacts/.

Layout of the output directory::

    transfergrid.sqlite                         jobs, cell_scores, events
    artifacts/adapters/<train key>/             PEFT adapter + transfergrid.json (written by train)
    artifacts/items/<eval key>/<token>.parquet  per-item scores of a commit batch; once the job is
                                                done, all its cells in one file (itemfiles.py)
    artifacts/logs/<key>.txt                    traceback of the last failure

Crash safety: every write that makes something count is one SQLite transaction, and the files it
refers to are complete before it commits (Parquet: temporary file + `os.replace`, a new name each
time; adapters: `train_adapter` renames a finished directory into place). A kill at any instant
leaves at worst an unreferenced file (a Parquet no row names, a temporary file, a training scratch
directory); `clean_leftovers` removes those when the next run starts.

Scale (docs/benchmarks.md, "Grid scale"): done work is checked against its files once, when a run
starts (`missing`); then the executors keep the done keys in memory and read only the events
appended since their last look (`changes`). A step is one claim transaction; an evaluation's cells
are committed in batches, one transaction and one Parquet file each (`commit_cells`), the last one
also marking the job done and gathering its files into one.

Claims: a job is claimed in a `BEGIN IMMEDIATE` transaction (one writer at a time), only when it
is pending, failed before this run began, or running under a claim that is dead (its process is
gone on this host, or its heartbeat is stale). Cell commits check that the claim is still ours,
so two processes never both count the same work.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import traceback as tb
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from transfergrid import itemfiles
from transfergrid.leftovers import (  # re-exported: `status`, executors and tests import them from here
    check_done,
    grid_status,
    verify_adapter,
)
from transfergrid.plan import EVAL, TRAIN, Job
from transfergrid.records import Cell

log = logging.getLogger(__name__)

DB_NAME = "transfergrid.sqlite"
HEARTBEAT_S = 15.0
STALE_S = 300.0  # a claim whose heartbeat is older than this is dead (other hosts, hung processes)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | running | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    traceback_path TEXT,
    worker TEXT, host TEXT, pid INTEGER,
    heartbeat REAL, started REAL, finished REAL, seconds REAL
);
CREATE TABLE IF NOT EXISTS cell_scores (
    job_key TEXT NOT NULL,
    cell TEXT NOT NULL,
    task TEXT NOT NULL, lang TEXT NOT NULL,
    model TEXT NOT NULL,
    variant TEXT NOT NULL,                    -- 'base', 'cot' or the source cell of the adapter
    seed INTEGER,                             -- NULL for the base model
    n INTEGER NOT NULL,
    acc REAL, acc_norm REAL, acc_bytes REAL,
    items_path TEXT NOT NULL,
    seconds REAL, created REAL, worker TEXT,
    PRIMARY KEY (job_key, cell)
);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, job_key TEXT NOT NULL, event TEXT NOT NULL, cell TEXT, worker TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
"""


class LostClaim(RuntimeError):
    """Another process took this job over (our claim was judged dead); stop working on it."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """The store of one output directory. One instance per process (it owns a claim token)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.worker = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.opened = time.time()
        self._db = self._connect()
        self._db.executescript(_SCHEMA)
        self._checked: tuple | None = None  # (job keys, event cursor, keys missing) of the last `missing`

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        # Two processes opening a new store at once: switching it to WAL needs an exclusive lock, and
        # SQLite may answer "database is locked" at once instead of waiting; the mode persists, so retry.
        for attempt in range(200):
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 199:
                    raise
                time.sleep(0.05)
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across process crashes
        db.execute("PRAGMA busy_timeout=120000")
        db.row_factory = sqlite3.Row
        return db

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self, db: sqlite3.Connection | None = None):
        db = db or self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- paths ----------------------------------------------------------------------------
    def adapter_dir(self, train_key: str) -> Path:
        return self.root / "artifacts" / "adapters" / train_key

    def items_path(self, eval_key: str, cell: Cell) -> Path | None:
        """The file holding the committed per-item results of `cell` (None: not committed)."""
        row = self._db.execute("SELECT items_path FROM cell_scores WHERE job_key = ? AND cell = ?",
                               (eval_key, str(cell))).fetchone()
        return None if row is None else self.root / row[0]

    def log_path(self, key: str) -> Path:
        return self.root / "artifacts" / "logs" / f"{key}.txt"

    # --- planning -------------------------------------------------------------------------
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, sqlite3.Row]:
        rows = self._db.execute("SELECT * FROM jobs").fetchall()
        wanted = None if keys is None else set(keys)
        return {r["key"]: r for r in rows if wanted is None or r["key"] in wanted}

    def missing(self, jobs: Sequence[Job], reuse: bool = False) -> list[Job]:
        """The jobs not done yet (in the given order), after checking that done work is intact
        (`leftovers.check_done`: bulk work, meant for the start of a run). With `reuse`, an earlier
        check of the same jobs by this instance counts if no job was finished or reset since (`run`
        counts what is missing, then the executor starts: one check, not two)."""
        keys = tuple(j.key for j in jobs)
        if reuse and self._checked is not None and self._checked[0] == keys:
            cursor, todo = self._checked[1], self._checked[2]
            cursor, changed = self.changes(cursor)
            if not changed:
                self._checked = (keys, cursor, todo)
                return [j for j in jobs if j.key in todo]
        cursor = self.event_cursor()
        out = check_done(self, jobs)
        self._checked = (keys, cursor, {j.key for j in out})
        return out

    def item_files(self, key: str | None = None) -> dict[str, dict[str, str]]:
        """job key -> {cell: items_path} of the committed cells (of `key`, or all: one query)."""
        query, args = "SELECT job_key, cell, items_path FROM cell_scores", ()
        if key is not None:
            query, args = query + " WHERE job_key = ?", (key,)
        out: dict[str, dict[str, str]] = {}
        for k, cell, path in self._db.execute(query, args):
            out.setdefault(k, {})[cell] = path
        return out

    def cell_counts(self) -> dict[str, int]:
        """job key -> number of committed cells (one query)."""
        return dict(self._db.execute("SELECT job_key, COUNT(*) FROM cell_scores GROUP BY job_key").fetchall())

    def reset(self, key: str, why: str, lost_cells: Sequence[str] = ()) -> None:
        """Send a done job back to pending (its artifacts were found broken), forgetting the
        committed cells `lost_cells` (their per-item files are gone), in one transaction."""
        log.warning(why)
        with self._write() as db:
            db.executemany("DELETE FROM cell_scores WHERE job_key = ? AND cell = ?", [(key, c) for c in lost_cells])
            db.execute("UPDATE jobs SET status = 'pending', error = ? WHERE key = ? AND status = 'done'", (why, key))
            db.execute("INSERT INTO events (at, job_key, event, worker) VALUES (?, ?, 'reset', ?)",
                       (time.time(), key, self.worker))

    def event_cursor(self) -> int:
        """The position of the last event (for `changes`)."""
        return self._db.execute("SELECT MAX(rowid) FROM events").fetchone()[0] or 0

    def changes(self, since: int) -> tuple[int, list[tuple[str, str]]]:
        """(cursor, [(job key, 'done' | 'reset')]) of the events appended after `since` (0 = all):
        how a running executor learns what other processes finished, without re-reading the grid."""
        rows = self._db.execute("SELECT rowid, job_key, event FROM events WHERE rowid > ? "
                                "AND event IN ('done', 'reset') ORDER BY rowid", (since,)).fetchall()
        return max(self.event_cursor(), since), [(r[1], r[2]) for r in rows]

    def clean_leftovers(self) -> list[Path]:
        """Remove what killed jobs left behind (`leftovers.clean_leftovers`); returns the paths."""
        from transfergrid.leftovers import clean_leftovers

        return clean_leftovers(self)

    # --- claims ---------------------------------------------------------------------------
    def _claim_dead(self, row: sqlite3.Row, now: float) -> bool:
        if row["heartbeat"] is None or now - row["heartbeat"] > STALE_S:
            return True
        return row["host"] == self.host and row["pid"] != self.pid and not _pid_alive(row["pid"])

    def claim(self, job: Job) -> bool:
        """Atomically take `job` for this process; False if it is done or alive elsewhere.

        A job that failed earlier is retried, but one that failed during this process's run (its
        `finished` is after this store was opened) is not retried again in the same run."""
        now = time.time()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO jobs (key, kind, spec) VALUES (?, ?, ?)",
                       (job.key, job.kind, json.dumps(dict(job.spec), sort_keys=True)))
            row = db.execute("SELECT * FROM jobs WHERE key = ?", (job.key,)).fetchone()
            status = row["status"]
            ok = (status == "pending"
                  or (status == "failed" and (row["finished"] or 0) < self.opened)
                  or (status == "running" and row["worker"] != self.worker and self._claim_dead(row, now)))
            if not ok:
                return False
            db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = ?, host = ?, "
                       "pid = ?, heartbeat = ?, started = ?, finished = NULL WHERE key = ?",
                       (self.worker, self.host, self.pid, now, now, job.key))
            db.execute("INSERT INTO events (at, job_key, event, worker) VALUES (?, ?, 'claim', ?)",
                       (now, job.key, self.worker))
        return True

    def _owned(self, db: sqlite3.Connection, key: str) -> None:
        row = db.execute("SELECT status, worker FROM jobs WHERE key = ?", (key,)).fetchone()
        if row is None or row["status"] != "running" or row["worker"] != self.worker:
            raise LostClaim(f"job {key[:12]} is no longer claimed by this process")

    @contextmanager
    def keepalive(self, every: float = HEARTBEAT_S):
        """Keep every claim of this process alive from a background thread while the body runs."""
        stop = threading.Event()

        def beat():
            db = self._connect()
            try:
                while not stop.wait(every):
                    db.execute("UPDATE jobs SET heartbeat = ? WHERE worker = ? AND status = 'running'",
                               (time.time(), self.worker))
            finally:
                db.close()

        thread = threading.Thread(target=beat, name="transfergrid-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def running_elsewhere(self, keys: Iterable[str]) -> list[str]:
        """Keys claimed by another live process (work to wait for, not to redo)."""
        now = time.time()
        wanted = set(keys)
        rows = self._db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
        return [r["key"] for r in rows
                if r["key"] in wanted and r["worker"] != self.worker and not self._claim_dead(r, now)]

    # --- results --------------------------------------------------------------------------
    def done_cells(self, key: str, check_files: bool = True) -> set[Cell]:
        files = self.item_files(key).get(key, {})
        present = {p for p in set(files.values()) if not check_files or (self.root / p).is_file()}
        return {Cell.parse(c) for c, p in files.items() if p in present}

    def commit_cell(self, job: Job, cell: Cell, metrics: dict, items, seconds: float = 0.0) -> None:
        self.commit_cells(job, [(cell, metrics, items, seconds)])  # one cell: its file, then its row

    def commit_cells(self, job: Job, results: Sequence[tuple], finish: bool = False) -> None:
        """Commit evaluated cells `(cell, metrics, items, seconds)` of a claimed job in one
        transaction, after writing their per-item file (one per batch, `itemfiles.write_cells`);
        with `finish`, the same transaction marks the job done (it must then have a row for every
        target cell) and points every cell of the job at one file, written with the job's earlier
        batches gathered in. `items` is a list of row dicts or a dict of columns."""
        batch = [(str(cell), items) for cell, _, items, _ in results]
        earlier = {c: p for c, p in self.item_files(job.key).get(job.key, {}).items()
                   if c not in {c for c, _ in batch}} if finish else {}
        gather = len(set(earlier.values())) > (0 if batch else 1)
        path = itemfiles.new_path(self.root, job.key)
        if batch or gather:
            itemfiles.write_cells([*batch, *(itemfiles.read_cells(self.root, earlier) if gather else [])], path)
        rel = str(path.relative_to(self.root))
        s = job.spec
        variant = "cot" if s.get("variant") == "cot" else "base" if job.adapter_key is None else s["source_cell"]
        now = time.time()
        rows = [(job.key, str(cell), cell.task, cell.lang, s["model"], variant, s.get("seed"), int(m["n"]),
                 m["acc"], m["acc_norm"], m.get("acc_bytes"), rel, sec, now, self.worker)
                for cell, m, _, sec in results]
        try:
            with self._write() as db:
                self._owned(db, job.key)
                db.executemany("INSERT OR REPLACE INTO cell_scores (job_key, cell, task, lang, model, variant, seed, "
                               "n, acc, acc_norm, acc_bytes, items_path, seconds, created, worker) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("UPDATE jobs SET heartbeat = ? WHERE key = ?", (now, job.key))
                db.executemany("INSERT INTO events (at, job_key, event, cell, worker) VALUES (?, ?, 'cell', ?, ?)",
                               [(now, job.key, str(cell), self.worker) for cell, *_ in results])
                if finish:
                    have = {r[0] for r in db.execute("SELECT cell FROM cell_scores WHERE job_key = ?", (job.key,))}
                    left = [str(c) for c in job.targets if str(c) not in have]
                    if left:
                        raise RuntimeError(f"{job.label}: cells not evaluated: {', '.join(left)}")
                    if gather:
                        db.execute("UPDATE cell_scores SET items_path = ? WHERE job_key = ?", (rel, job.key))
                    self._mark_done(db, job, now)
        except BaseException:
            path.unlink(missing_ok=True)  # no row names it
            raise
        for old in set(earlier.values()) if gather else ():  # gathered: no row names them any more
            (self.root / old).unlink(missing_ok=True)

    def finish(self, job: Job) -> None:
        """Mark a claimed job done; a train job only once its adapter verifies, an evaluation once
        every target cell is committed with its per-item file (then gathered into one file)."""
        if job.kind == TRAIN:
            problem = verify_adapter(self.adapter_dir(job.key), job.key)
            if problem:
                raise RuntimeError(f"{job.label}: {problem} after training ({self.adapter_dir(job.key)})")
            with self._write() as db:
                self._mark_done(db, job, time.time())
            return
        left = [c for c in job.targets if c not in self.done_cells(job.key)]
        if left:
            raise RuntimeError(f"{job.label}: cells not evaluated: {', '.join(map(str, left))}")
        self.commit_cells(job, [], finish=True)

    def _mark_done(self, db: sqlite3.Connection, job: Job, now: float) -> None:
        self._owned(db, job.key)
        db.execute("UPDATE jobs SET status = 'done', error = NULL, finished = ?, seconds = ? - started "
                   "WHERE key = ?", (now, now, job.key))
        db.execute("INSERT INTO events (at, job_key, event, worker) VALUES (?, ?, 'done', ?)",
                   (now, job.key, self.worker))

    def fail(self, job: Job, exc: BaseException) -> Path:
        """Store the failure (one-line error + traceback file) and release the claim."""
        path = self.log_path(job.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        path.write_text(f"{job.label}\n{json.dumps(dict(job.spec), sort_keys=True)}\n\n{text}", encoding="utf-8")
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        now = time.time()
        with self._write() as db:
            db.execute("UPDATE jobs SET status = 'failed', error = ?, traceback_path = ?, finished = ?, "
                       "seconds = ? - started WHERE key = ? AND worker = ?",
                       (error, str(path.relative_to(self.root)), now, now, job.key, self.worker))
            db.execute("INSERT INTO events (at, job_key, event, worker) VALUES (?, ?, 'fail', ?)",
                       (now, job.key, self.worker))
        return path

    def release(self, job: Job) -> None:
        """Give a claim back untouched (an interrupted run): the job is pending again."""
        with self._write() as db:
            db.execute("UPDATE jobs SET status = 'pending' WHERE key = ? AND worker = ? AND status = 'running'",
                       (job.key, self.worker))

    def cell_scores(self, keys: Iterable[str] | None = None, columns: Sequence[str] | None = None):
        """The cell_scores rows (of `keys`, if given; `columns` only) as a DataFrame."""
        import pandas as pd

        what = "*" if columns is None else ", ".join(dict.fromkeys(["job_key", *columns]))
        frame = pd.read_sql_query(f"SELECT {what} FROM cell_scores ORDER BY job_key, cell", self._db)
        if keys is not None:
            frame = frame[frame["job_key"].isin(set(keys))].reset_index(drop=True)
        return frame


__all__ = ["DB_NAME", "EVAL", "TRAIN", "LostClaim", "Store", "grid_status", "verify_adapter"]
