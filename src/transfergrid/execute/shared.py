"""What both executors share: the run summary, the commit batch, the worker, the progress bars."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transfergrid.execute.schedule import units
from transfergrid.plan import Job
from transfergrid.store import verify_adapter

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often to look again while another process holds the remaining jobs


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (label, error, traceback file)
    blocked: list[str] = field(default_factory=list)  # evaluations whose adapter could not be trained

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


COMMIT_EVERY_S = 1.0  # evaluated cells wait at most about this long for their commit


def train_into(worker, job: Job, out: Path) -> dict:
    """Train `job`'s adapter into `out`, unless an attempt that died before its commit left a
    finished one there (an unusable directory is removed first)."""
    if verify_adapter(out, job.key) is None:
        return {"reused": True}
    if out.exists():
        log.warning("%s: removing an unusable adapter directory %s", job.label, out)
        shutil.rmtree(out)
    return worker.train(job, out)


def evaluate_batch(worker, job: Job, cells: Sequence, adapter, budget_s: float = COMMIT_EVERY_S) -> list:
    """Evaluate cells of `job` in order until `budget_s` has passed (at least one cell):
    the results of one commit. Slow cells (real models) give one cell per commit, as before;
    instant ones (`--simulate`) a whole job per transaction."""
    start = time.perf_counter()
    out = []
    for cell in cells:
        r = worker.evaluate(job, cell, adapter)
        out.append((r.cell, r.metrics, r.items, r.seconds))
        if time.perf_counter() - start >= budget_s:
            break
    return out


def make_worker(study, data_dir: Path, simulate: bool = False, **kwargs):
    """The real `jobs.Worker`, or the stand-in of `transfergrid.simulate`."""
    if simulate:
        from transfergrid.simulate import SimulatedWorker

        return SimulatedWorker(study, data_dir, **kwargs)
    from transfergrid.jobs import Worker

    return Worker(study, data_dir, **kwargs)


class GridProgress:
    """Rich progress bars: the whole grid (with ETA) and the current job(s)."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.enabled = enabled
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True, emoji=False), disable=not enabled)
        self.grid = self.bar.add_task("grid", total=total, completed=done)
        self.jobs: dict[str, int] = {}

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def start(self, job: Job, done: int = 0) -> None:
        self.jobs[job.key] = self.bar.add_task(job.label, total=units(job), completed=done)

    def advance(self, job: Job, n: int = 1) -> None:
        self.bar.advance(self.grid, n)
        if job.key in self.jobs:
            self.bar.advance(self.jobs[job.key], n)

    def stop(self, job: Job) -> None:
        task = self.jobs.pop(job.key, None)
        if task is not None:
            self.bar.remove_task(task)
