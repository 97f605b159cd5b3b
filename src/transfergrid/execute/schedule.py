"""The scheduling rule both executors share, kept in memory so that a step costs O(1) queries.

At start-up the store checks the done work once (`Store.clean_leftovers`, `Store.missing`); from
then on the schedule holds the jobs still to do, per base model in plan order, and the done keys.
A step reads only the events other processes appended since the last step (`Store.changes`), then
tries to claim the first ready job, preferring the base model the worker already holds. An adapter
evaluation is ready once its training is done (known in memory); its adapter directory is verified
once, when the evaluation is about to be claimed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from transfergrid.plan import EVAL, TRAIN, Job
from transfergrid.store import Store, verify_adapter

log = logging.getLogger(__name__)

RETRY_S = 2.0  # a job another live process holds is not asked for again before this


def units(job: Job) -> int:
    """Progress units: a training counts 1, an evaluation 1 per target cell."""
    return len(job.targets) if job.kind == EVAL else 1


class Schedule:
    def __init__(self, store: Store, jobs: Sequence[Job]):
        self.store = store
        self.jobs = list(jobs)
        self.by_key = {j.key: j for j in self.jobs}
        store.clean_leftovers()
        self.cursor = store.event_cursor()
        todo = store.missing(self.jobs, reuse=True)
        self.done = set(self.by_key) - {j.key for j in todo}
        self.todo: dict[str, dict[str, Job]] = {}  # base model source -> key -> job, plan order
        for job in todo:
            self.todo.setdefault(job.source, {})[job.key] = job
        self.attempted: set[str] = set()  # claimed by this run (done or failed): never again
        self.elsewhere: dict[str, float] = {}  # key -> when a claim was refused
        self.verified: set[str] = set()  # adapters checked by this run
        self.requeue: list[Job] = []

    # --- progress -------------------------------------------------------------------------
    def total_units(self) -> int:
        return sum(units(j) for j in self.jobs)

    def done_units(self) -> int:
        counts = self.store.cell_counts()
        return sum(1 if j.kind == TRAIN else counts.get(j.key, 0)
                   for j in self.jobs if j.kind == EVAL or j.key in self.done)

    def remaining(self) -> list[Job]:
        return [j for jobs in self.todo.values() for j in jobs.values()]

    # --- a step ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Apply what other processes finished (or found broken) since the last step."""
        self.cursor, changes = self.store.changes(self.cursor)
        for key, event in changes:
            job = self.by_key.get(key)
            if job is None:
                continue
            if event == "done":
                self.done.add(key)
                self.todo.get(job.source, {}).pop(key, None)
            elif event == "reset" and key in self.done:
                self.done.discard(key)
                self.verified.discard(key)
                self.attempted.discard(key)
                self.todo.setdefault(job.source, {})[key] = job

    def mark(self, job: Job, done: bool) -> None:
        """The claimed `job` is over (done, failed or lost)."""
        if done:
            self.done.add(job.key)

    def ready(self, job: Job) -> bool:
        key = job.adapter_key
        if job.kind == TRAIN or key is None:
            return True
        if key not in self.done:
            return False
        if key not in self.verified:
            problem = verify_adapter(self.store.adapter_dir(key), key)
            if problem:  # broken since it was checked: train it again first
                train = self.by_key.get(key)
                self.store.reset(key, f"{train.label if train else key}: {problem}; it will be trained again")
                self.done.discard(key)
                if train is not None:
                    self.requeue.append(train)  # added after the scan (the scan iterates self.todo)
                return False
            self.verified.add(key)
        return True

    def claim_next(self, source: str | None) -> Job | None:
        """Claim the next ready job (of base model `source` first); None if nothing is claimable."""
        self.refresh()
        now = time.time()
        order = ([source] if source in self.todo else []) + [s for s in self.todo if s != source]
        for s in order:
            jobs = self.todo[s]
            claimed = None
            for key, job in jobs.items():  # in plan order; the first ready job is usually the first
                if now - self.elsewhere.get(key, -RETRY_S) < RETRY_S or not self.ready(job):
                    continue
                if self.store.claim(job):
                    claimed = job
                    break
                self.elsewhere[key] = now  # done, failed this run, or alive in another process
            if claimed is not None:
                del jobs[claimed.key]
                self.attempted.add(claimed.key)
                self.elsewhere.pop(claimed.key, None)
                break
        else:
            claimed = None
        for job in self.requeue:
            self.todo.setdefault(job.source, {})[job.key] = job
        self.requeue.clear()
        return claimed

    def waiting_on_others(self) -> bool:
        """True while another live process holds a remaining job or an adapter one of them needs."""
        left = self.remaining()
        if not left:
            return False
        keys = [j.key for j in left] + [j.adapter_key for j in left if j.adapter_key]
        return bool(self.store.running_elsewhere(keys))

    def blocked(self, failed_labels: set[str]) -> list[str]:
        """Evaluations left waiting for an adapter that could not be trained."""
        self.refresh()
        return [j.label for j in self.remaining()
                if j.kind == EVAL and j.adapter_key and j.adapter_key not in self.done
                and j.label not in failed_labels]
