"""The local executor: one process, one base model loaded at a time, adapters switched in place."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from transfergrid.execute.schedule import Schedule
from transfergrid.execute.shared import (
    POLL_S,
    GridProgress,
    RunSummary,
    evaluate_batch,
    train_into,
)
from transfergrid.plan import TRAIN, Job
from transfergrid.store import LostClaim, Store

log = logging.getLogger(__name__)


def run_local(study, store: Store, jobs: Sequence[Job], data_dir: Path, *, progress: bool = True,
              worker=None) -> RunSummary:
    """Run every missing job of `jobs`; returns what was done, what failed, what is blocked.
    `worker` is a `jobs.Worker` (the default) or any object with its interface, such as
    `simulate.SimulatedWorker`."""
    if worker is None:
        from transfergrid.jobs import Worker

        worker = Worker(study, data_dir)
    summary = RunSummary()
    schedule = Schedule(store, jobs)
    with store.keepalive(), GridProgress(schedule.total_units(), schedule.done_units(), enabled=progress) as ui:
        while True:
            job = schedule.claim_next(worker._source)
            if job is None:
                if schedule.waiting_on_others():
                    time.sleep(POLL_S)  # another process holds what is left (or its adapters)
                    continue
                break
            schedule.mark(job, run_job(worker, store, job, summary, ui))
    summary.blocked = schedule.blocked({label for label, _, _ in summary.failed})
    return summary


def run_job(worker, store: Store, job: Job, summary: RunSummary, ui: GridProgress) -> bool:
    """Run one claimed job to its commit; a failure is stored and reported, never raised.
    True if the job is done."""
    done = set() if job.kind == TRAIN else store.done_cells(job.key)
    ui.start(job, len(done))
    try:
        if job.kind == TRAIN:
            train_into(worker, job, store.adapter_dir(job.key))
            ui.advance(job)
            store.finish(job)
        else:
            adapter = store.adapter_dir(job.adapter_key) if job.adapter_key else None
            left = [c for c in job.targets if c not in done]  # an interrupted attempt committed the rest
            if not left:
                store.finish(job)
            try:
                while left:
                    batch = evaluate_batch(worker, job, left, adapter)
                    left = left[len(batch):]
                    store.commit_cells(job, batch, finish=not left)  # the last batch also marks it done
                    ui.advance(job, len(batch))
            finally:
                worker.unload(job)
        summary.done.append(job.label)
        return True
    except LostClaim as exc:
        log.warning("%s: %s", job.label, exc)
    except (KeyboardInterrupt, SystemExit):
        store.release(job)
        raise
    except Exception as exc:  # noqa: BLE001 - a failing job must not stop the grid
        path = store.fail(job, exc)
        log.error("%s failed: %s (traceback: %s)", job.label, exc, path)
        summary.failed.append((job.label, f"{type(exc).__name__}: {exc}".splitlines()[0], str(path)))
    finally:
        ui.stop(job)
    return False
