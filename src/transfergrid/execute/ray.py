"""The Ray executor: the same job functions in Ray actors, the store written by the driver only.

One actor per worker slot (one per GPU when the cluster has GPUs, else one per CPU) keeps its base
model loaded across jobs, and the driver prefers to give it jobs of that model. An evaluation job
is sent in batches of cells (about `COMMIT_EVERY_S` of work each: one cell of a real model), and
the driver commits each batch as it returns, exactly as the local executor does (an interrupted
run resumes at the next uncommitted cell). Adapters are written by the actors
into the output directory, which must therefore be on a filesystem every node shares.
"""

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
    make_worker,
    train_into,
)
from transfergrid.plan import TRAIN, Job
from transfergrid.store import LostClaim, Store

log = logging.getLogger(__name__)


class _Actor:
    """One worker slot: a `jobs.Worker` (or the simulated stand-in) kept across jobs."""

    def __init__(self, study, data_dir: str, simulate: bool = False, faults: dict | None = None):
        kwargs = {"faults": faults} if simulate and faults is not None else {}
        self.worker = make_worker(study, Path(data_dir), simulate, **kwargs)

    def train_into(self, job: Job, out_dir: str) -> dict:
        return train_into(self.worker, job, Path(out_dir))

    def evaluate_batch(self, job: Job, cells: list, adapter_dir: str | None) -> list:
        return evaluate_batch(self.worker, job, cells, Path(adapter_dir) if adapter_dir else None)

    def unload(self, job: Job) -> None:
        self.worker.unload(job)


def _slots(ray, workers: int | None) -> tuple[int, dict]:
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus:
        # one actor per GPU (Ray sets its CUDA_VISIBLE_DEVICES, so "cuda" is that GPU); more actors
        # than GPUs would wait for a GPU forever
        if workers and workers > gpus:
            log.warning("--workers %d: the cluster has %d GPUs; starting %d workers", workers, gpus, gpus)
        return min(workers or gpus, gpus), {"num_gpus": 1, "num_cpus": 1}
    return workers or max(1, int(res.get("CPU", 1))), {"num_cpus": 1}


def run_ray(study, store: Store, jobs: Sequence[Job], data_dir: Path, *, address: str | None = None,
            progress: bool = True, workers: int | None = None, simulate: bool = False,
            faults: dict | None = None) -> RunSummary:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    n, options = _slots(ray, workers)
    n = max(1, min(n, len(jobs)))
    remote = ray.remote(_Actor).options(**options)

    def new_actor():
        return remote.remote(study, str(data_dir), simulate, faults)

    actors = [new_actor() for _ in range(n)]
    source: dict[int, str | None] = {i: None for i in range(n)}
    idle = list(range(n))
    inflight: dict = {}  # ObjectRef -> (actor index, job, cells sent, remaining cells)
    summary = RunSummary()
    schedule = Schedule(store, jobs)

    def submit(i: int, job: Job, remaining: list):
        if job.kind == TRAIN:
            ref = actors[i].train_into.remote(job, str(store.adapter_dir(job.key)))
        else:
            adapter = str(store.adapter_dir(job.adapter_key)) if job.adapter_key else None
            ref = actors[i].evaluate_batch.remote(job, remaining, adapter)
        inflight[ref] = (i, job, remaining)

    def release(i: int, job: Job):
        if job.kind != TRAIN:
            actors[i].unload.remote(job)
        ui.stop(job)
        idle.append(i)

    try:
        with store.keepalive(), GridProgress(schedule.total_units(), schedule.done_units(), enabled=progress) as ui:
            while True:
                for i in list(idle):
                    job = schedule.claim_next(source[i])
                    if job is None:
                        break
                    idle.remove(i)
                    source[i] = job.source
                    done = store.done_cells(job.key) if job.kind != TRAIN else set()
                    ui.start(job, len(done))
                    remaining = [c for c in job.targets if c not in done]
                    if job.kind != TRAIN and not remaining:
                        _finish(store, schedule, job, summary)
                        release(i, job)
                        continue
                    submit(i, job, remaining)
                if not inflight:
                    if schedule.waiting_on_others():
                        time.sleep(POLL_S)
                        continue
                    break
                (ref,), _ = ray.wait(list(inflight), num_returns=1)
                i, job, remaining = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                    if job.kind == TRAIN:
                        ui.advance(job)
                        _finish(store, schedule, job, summary)
                    else:  # a batch of cells: commit it; the last one also marks the job done
                        rest = remaining[len(result):]
                        store.commit_cells(job, result, finish=not rest)
                        ui.advance(job, len(result))
                        if rest:
                            submit(i, job, rest)
                            continue
                        schedule.mark(job, True)
                        summary.done.append(job.label)
                except LostClaim as exc:
                    log.warning("%s: %s", job.label, exc)
                except Exception as exc:  # noqa: BLE001 - a failing job must not stop the grid
                    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
                    path = store.fail(job, cause)
                    log.error("%s failed: %s (traceback: %s)", job.label, cause, path)
                    summary.failed.append((job.label, f"{type(cause).__name__}: {cause}".splitlines()[0], str(path)))
                    if isinstance(exc, ray.exceptions.RayActorError):  # the actor died: replace it
                        actors[i] = new_actor()
                        source[i] = None
                release(i, job)
    except BaseException:
        for _, job, _ in inflight.values():
            store.release(job)
        raise
    finally:
        for actor in actors:
            ray.kill(actor)
    summary.blocked = schedule.blocked({label for label, _, _ in summary.failed})
    return summary


def _finish(store: Store, schedule: Schedule, job: Job, summary: RunSummary) -> None:
    store.finish(job)
    schedule.mark(job, True)
    summary.done.append(job.label)
