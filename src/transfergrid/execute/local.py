"""The local executor: one process, one base model loaded at a time, adapters switched in place."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from transfergrid.execute import (
    POLL_S,
    GridProgress,
    RunSummary,
    claim_next,
    done_units,
    finish_summary,
    units,
)
from transfergrid.jobs import Worker
from transfergrid.plan import TRAIN, Job
from transfergrid.store import LostClaim, Store, verify_adapter

log = logging.getLogger(__name__)


def run_local(study, store: Store, jobs: Sequence[Job], data_dir: Path, *, progress: bool = True,
              worker: Worker | None = None) -> RunSummary:
    """Run every missing job of `jobs`; returns what was done, what failed, what is blocked."""
    worker = worker or Worker(study, data_dir)
    summary = RunSummary()
    attempted: set[str] = set()
    total = sum(units(j) for j in jobs)
    with store.keepalive(), GridProgress(total, done_units(store, jobs), enabled=progress) as ui:
        while True:
            todo = [j for j in store.missing(jobs) if j.key not in attempted]
            if not todo:
                break
            job = claim_next(store, todo, worker._source)
            if job is None:
                if store.running_elsewhere([j.key for j in todo] + [j.adapter_key for j in todo if j.adapter_key]):
                    time.sleep(POLL_S)  # another process holds what is left (or its adapters)
                    continue
                break
            attempted.add(job.key)
            run_job(worker, store, job, summary, ui)
    return finish_summary(store, jobs, summary)


def run_job(worker: Worker, store: Store, job: Job, summary: RunSummary, ui: GridProgress) -> None:
    """Run one claimed job to its commit; a failure is stored and reported, never raised."""
    done = set() if job.kind == TRAIN else store.done_cells(job.key)
    ui.start(job, len(done))
    try:
        if job.kind == TRAIN:
            train(worker, store, job)
            ui.advance(job)
        else:
            adapter = store.adapter_dir(job.adapter_key) if job.adapter_key else None
            try:
                for cell in job.targets:
                    if cell in done:
                        continue  # committed by an earlier, interrupted attempt
                    r = worker.evaluate(job, cell, adapter)
                    store.commit_cell(job, cell, r.metrics, r.items, r.seconds)
                    ui.advance(job)
            finally:
                worker.unload(job)
        store.finish(job)
        summary.done.append(job.label)
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


def train(worker: Worker, store: Store, job: Job) -> None:
    out = store.adapter_dir(job.key)
    if verify_adapter(out, job.key) is None:
        return  # finished by an attempt that died before it could commit
    if out.exists():
        log.warning("%s: removing an unusable adapter directory %s", job.label, out)
        shutil.rmtree(out)
    worker.train(job, out)
