"""Executors: run the missing jobs of a study and commit their results to the store.

Both executors share the scheduling rules of `shared.py` and `schedule.py`: jobs are taken in plan order
(per model, its trainings before its evaluations), preferring the base model a worker already
holds; an adapter evaluation waits until its adapter is trained; every job is claimed in the store
first, so several `run` processes can share one study. Evaluated cells are committed in batches
of about `COMMIT_EVERY_S` of work, one transaction each. A failing job is stored with its error and the run
goes on; `RunSummary.ok` is False at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transfergrid.execute.schedule import Schedule, units
from transfergrid.execute.shared import (
    COMMIT_EVERY_S,
    POLL_S,
    GridProgress,
    RunSummary,
    evaluate_batch,
    make_worker,
    train_into,
)
from transfergrid.plan import Job
from transfergrid.store import Store


def execute(study, store: Store, jobs: Sequence[Job], data_dir: Path, *, executor: str = "local",
            address: str | None = None, progress: bool = True, simulate: bool = False) -> RunSummary:
    if executor == "local":
        from transfergrid.execute.local import run_local

        return run_local(study, store, jobs, data_dir, progress=progress,
                         worker=make_worker(study, data_dir, simulate))
    if executor == "ray":
        from transfergrid.execute.ray import run_ray

        return run_ray(study, store, jobs, data_dir, address=address, progress=progress, simulate=simulate)
    from transfergrid.errors import UserError

    raise UserError(f"--executor {executor!r}: expected local or ray")


__all__ = ["COMMIT_EVERY_S", "POLL_S", "GridProgress", "RunSummary", "Schedule", "evaluate_batch", "execute",
           "make_worker", "train_into", "units"]
