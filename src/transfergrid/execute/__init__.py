"""Executors: run the missing jobs of a study and commit their results to the store.

Both executors share the scheduling rules here: jobs are taken in plan order (per model, its
trainings before its evaluations), preferring the base model a worker already holds; an adapter
evaluation waits until its adapter is trained; every job is claimed in the store first, so
several `run` processes can share one study. A failing job is stored with its error and the run
goes on; `RunSummary.ok` is False at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from transfergrid.plan import EVAL, TRAIN, Job
from transfergrid.store import Store

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


def ready(store: Store, job: Job) -> bool:
    """An adapter evaluation can start only once its adapter is trained and verified."""
    return job.kind == TRAIN or job.adapter_key is None or store.adapter_ready(job.adapter_key)


def preferred(todo: Sequence[Job], source: str | None) -> list[Job]:
    """Plan order, with the jobs of the base model `source` (already loaded) first."""
    return sorted(todo, key=lambda j: j.source != source)


def claim_next(store: Store, todo: Sequence[Job], source: str | None) -> Job | None:
    for job in preferred(todo, source):
        if ready(store, job) and store.claim(job):
            return job
    return None


def units(job: Job) -> int:
    """Progress units: a training counts 1, an evaluation 1 per target cell."""
    return len(job.targets) if job.kind == EVAL else 1


def done_units(store: Store, jobs: Sequence[Job]) -> int:
    statuses = store.statuses(j.key for j in jobs)
    total = 0
    for j in jobs:
        if j.kind == TRAIN:
            total += statuses.get(j.key) is not None and statuses[j.key]["status"] == "done"
        else:
            total += len(store.done_cells(j.key, check_files=False))
    return total


def finish_summary(store: Store, jobs: Sequence[Job], summary: RunSummary) -> RunSummary:
    """Record evaluations left waiting for an adapter that failed to train."""
    left = store.missing(jobs)
    failed_here = {label for label, _, _ in summary.failed}
    summary.blocked = [j.label for j in left if not ready(store, j) and j.label not in failed_here]
    return summary


def execute(study, store: Store, jobs: Sequence[Job], data_dir: Path, *, executor: str = "local",
            address: str | None = None, progress: bool = True) -> RunSummary:
    if executor == "local":
        from transfergrid.execute.local import run_local

        return run_local(study, store, jobs, data_dir, progress=progress)
    if executor == "ray":
        from transfergrid.execute.ray import run_ray

        return run_ray(study, store, jobs, data_dir, address=address, progress=progress)
    from transfergrid.errors import UserError

    raise UserError(f"--executor {executor!r}: expected local or ray")


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
