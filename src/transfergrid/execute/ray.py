"""The Ray executor: the same job functions in Ray actors, the store written by the driver only.

One actor per worker slot (one per GPU when the cluster has GPUs, else one per CPU) keeps its base
model loaded across jobs, and the driver prefers to give it jobs of that model. An evaluation job
is sent cell by cell, so the driver commits each target cell as it finishes, exactly as the local
executor does (an interrupted run resumes at the next cell). Adapters are written by the actors
into the output directory, which must therefore be on a filesystem every node shares.
"""

from __future__ import annotations

import logging
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


class _ActorWorker(Worker):
    def train_into(self, job: Job, out_dir: str) -> dict:
        out = Path(out_dir)
        if verify_adapter(out, job.key) is None:
            return {"reused": True}  # finished by an attempt that died before it could commit
        if out.exists():
            import shutil

            shutil.rmtree(out)
        return self.train(job, out)


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
            progress: bool = True, workers: int | None = None) -> RunSummary:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    n, options = _slots(ray, workers)
    n = max(1, min(n, len(jobs)))
    remote = ray.remote(_ActorWorker).options(**options)
    actors = [remote.remote(study, str(data_dir)) for _ in range(n)]
    source: dict[int, str | None] = {i: None for i in range(n)}
    idle = list(range(n))
    inflight: dict = {}  # ObjectRef -> (actor index, job, cell or None, remaining cells)
    attempted: set[str] = set()
    summary = RunSummary()

    def submit(i: int, job: Job, remaining: list):
        if job.kind == TRAIN:
            ref = actors[i].train_into.remote(job, str(store.adapter_dir(job.key)))
            inflight[ref] = (i, job, None, [])
        else:
            cell, rest = remaining[0], remaining[1:]
            adapter = str(store.adapter_dir(job.adapter_key)) if job.adapter_key else None
            ref = actors[i].evaluate.remote(job, cell, adapter)
            inflight[ref] = (i, job, cell, rest)

    def release(i: int, job: Job):
        if job.kind != TRAIN:
            actors[i].unload.remote(job)
        ui.stop(job)
        idle.append(i)

    total = sum(units(j) for j in jobs)
    try:
        with store.keepalive(), GridProgress(total, done_units(store, jobs), enabled=progress) as ui:
            while True:
                for i in list(idle):
                    todo = [j for j in store.missing(jobs) if j.key not in attempted]
                    job = claim_next(store, todo, source[i])
                    if job is None:
                        break
                    attempted.add(job.key)
                    idle.remove(i)
                    source[i] = job.source
                    done = store.done_cells(job.key) if job.kind != TRAIN else set()
                    ui.start(job, len(done))
                    remaining = [c for c in job.targets if c not in done]
                    if job.kind != TRAIN and not remaining:
                        _finish(store, job, summary)
                        release(i, job)
                        continue
                    submit(i, job, remaining)
                if not inflight:
                    todo = [j for j in store.missing(jobs) if j.key not in attempted]
                    keys = [j.key for j in todo] + [j.adapter_key for j in todo if j.adapter_key]
                    if todo and store.running_elsewhere(keys):
                        time.sleep(POLL_S)
                        continue
                    break
                (ref,), _ = ray.wait(list(inflight), num_returns=1)
                i, job, cell, rest = inflight.pop(ref)
                try:
                    result = ray.get(ref)
                    if job.kind != TRAIN:
                        store.commit_cell(job, cell, result.metrics, result.items, result.seconds)
                    ui.advance(job)
                    if rest:
                        submit(i, job, rest)
                        continue
                    _finish(store, job, summary)
                except LostClaim as exc:
                    log.warning("%s: %s", job.label, exc)
                except Exception as exc:  # noqa: BLE001 - a failing job must not stop the grid
                    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
                    path = store.fail(job, cause)
                    log.error("%s failed: %s (traceback: %s)", job.label, cause, path)
                    summary.failed.append((job.label, f"{type(cause).__name__}: {cause}".splitlines()[0], str(path)))
                    if isinstance(exc, ray.exceptions.RayActorError):  # the actor died: replace it
                        actors[i] = remote.remote(study, str(data_dir))
                        source[i] = None
                release(i, job)
    except BaseException:
        for _, job, _, _ in inflight.values():
            store.release(job)
        raise
    finally:
        for actor in actors:
            ray.kill(actor)
    return finish_summary(store, jobs, summary)


def _finish(store: Store, job: Job, summary: RunSummary) -> None:
    store.finish(job)
    summary.done.append(job.label)
