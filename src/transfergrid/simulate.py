"""Stand-in work for the grid runner: instant, deterministic train / evaluate (`run --simulate`).

Only the two job functions are replaced; plan, keys, claims, commits, the store's files and the
export are the real ones, so the paper's whole grid (9 models x 44 x 44 x 3 seeds: 1,188 trainings,
1,197 evaluations over 44 target cells each) runs through the runner in minutes on a laptop.

Planning is offline: a simulated run never reads benchmark items nor resolves model revisions.
Its keys use the study's *declared* split sizes in place of the data manifests, and the model
source (prefixed "simulated:") in place of the weights' fingerprint. Simulated keys therefore never
equal real keys, so simulated scores can never be taken for real ones in a shared store.

Scores are a function of the job key (and of the spec it hashes): the base accuracy of a
(model, target cell), an effect of the (source, target) pair and a small per-seed term, turned
into per-item records (ids "sim-0" ...) whose mean is the stored accuracy. A source set's effect
is its members' mean effect plus a small term of its own (composition.py).

Fault injection (tests and benchmarks): `SimulatedWorker(faults={kind: [label substrings]})`, or the
JSON of the same dict in $TRANSFERGRID_SIMULATE_FAULTS. Kinds: "raise" (the job raises),
"nan" (a `DivergenceError`, as training's NaN guard raises), "corrupt_adapter" (training writes
empty adapter weights), "exit" (the worker process dies mid-job, e.g. a Ray actor).
$TRANSFERGRID_SIMULATE_SECONDS makes each training and each cell take that long (kill tests).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from transfergrid.plan import COT_VARIANTS, Job, build_jobs
from transfergrid.records import Cell

SIMULATED = "simulated:"
FAULTS_ENV = "TRANSFERGRID_SIMULATE_FAULTS"
SECONDS_ENV = "TRANSFERGRID_SIMULATE_SECONDS"  # how long each stand-in training / cell takes (default 0)


def simulated_fingerprint(source: str) -> str:
    return f"{SIMULATED}{source}"


def declared_manifest_hash(study, task: str) -> str:
    """What a data manifest hash stands for, from the study file alone: task, languages, split
    sizes and seeds (no item ids: those need the data)."""
    payload = {"simulated": True, "task": task, "languages": sorted(study.languages),
               "splits": study.splits.model_dump(mode="json"),
               "relatedness": study.relatedness.model_dump(mode="json") if study.relatedness else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def simulated_jobs(study) -> list[Job]:
    """`plan.build_jobs` with declared manifests and simulated fingerprints: no data, no network."""
    return build_jobs(study, lambda task: declared_manifest_hash(study, task), simulated_fingerprint)


def declared_test_size(study, cell: Cell) -> int:
    """The number of test items a cell declares (what a real evaluation would score)."""
    if study.kind == "relatedness":
        n = study.relatedness.test_items
    else:
        n = study.splits.sizes(cell.task)[1]
    return min(n, study.evaluation.limit) if study.evaluation.limit else n


@functools.lru_cache(maxsize=8)
def _ids(n: int) -> list[str]:
    return [f"sim-{i}" for i in range(n)]


def _unit(*parts: Any) -> float:
    """A deterministic number in [0, 1) from its arguments."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def simulated_accuracy(job: Job, cell: Cell) -> float:
    s = job.spec
    base = 0.25 + 0.5 * _unit("base", s["model"], cell)
    cot = s.get("variant") in COT_VARIANTS
    if cot:  # reasoning first: a higher base score (study 2's CoT bump)
        base = min(1.0, base + 0.05 * _unit("cot", s["model"], cell))
    if job.adapter_key is None:
        return base
    members = s.get("source_cells") or [s["source_cell"]]
    # a source set (composition.py): its members' mean effect plus a composition term of its own
    effect = sum(_pair_effect(s["model"], m, cell, cot) for m in members) / len(members)
    if len(members) > 1:
        effect += 0.02 * (_unit("compose", s["model"], s["source_cell"], cell) - 0.5)
    noise = 0.02 * (_unit("seed", job.key, cell) - 0.5)
    return min(1.0, max(0.0, base + effect + noise))


def _pair_effect(model: str, source: str, cell: Cell, cot: bool = False) -> float:
    if cot:  # a transfer grid's CoT variant: its own, smaller adapter effect
        return 0.03 * (_unit("pair-cot", model, source, cell) - 0.4)
    return 0.06 * (_unit("pair", model, source, cell) - 0.4)


class SimulatedWorker:
    """The `jobs.Worker` interface with stand-in work: no model, no data."""

    def __init__(self, study, data_dir=None, device=None, data=None, faults: dict | None = None):
        self.study = study
        self._source: str | None = None
        if faults is None and os.environ.get(FAULTS_ENV):
            faults = json.loads(os.environ[FAULTS_ENV])
        self.faults = {kind: list(labels) for kind, labels in (faults or {}).items()}
        self.seconds = float(os.environ.get(SECONDS_ENV) or 0)

    def _fault(self, job: Job, kind: str) -> bool:
        return any(m in job.label for m in self.faults.get(kind, ()))

    def _inject(self, job: Job) -> None:
        if self.seconds:
            time.sleep(self.seconds)
        if self._fault(job, "exit"):
            os._exit(17)  # the process dies mid-job, no clean-up (a killed Ray actor, an OOM kill)
        if self._fault(job, "raise"):
            raise RuntimeError(f"{job.label}: injected fault")
        if self._fault(job, "nan"):
            from transfergrid.errors import DivergenceError

            raise DivergenceError(f"{job.spec['source_cell']}: training loss is nan at step 1 (injected)")

    def train(self, job: Job, out_dir: Path) -> dict[str, Any]:
        """Write a small adapter directory that `store.verify_adapter` accepts, atomically (a
        scratch directory next to it, renamed into place, as `train_adapter` does)."""
        start = time.perf_counter()
        self._source = job.source
        self._inject(job)
        out_dir = Path(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
        weights = b"" if self._fault(job, "corrupt_adapter") else hashlib.sha256(job.key.encode()).digest()
        (scratch / "adapter_config.json").write_text(json.dumps({"simulated": True}), encoding="utf-8")
        (scratch / "adapter_model.safetensors").write_bytes(weights)
        meta = {"key": job.key, "simulated": True, "model_id": job.model, "source_cell": job.spec["source_cell"],
                "cells": job.spec.get("source_cells") or [job.spec["source_cell"]], "seed": job.spec["seed"]}
        (scratch / "transfergrid.json").write_text(json.dumps(meta), encoding="utf-8")
        os.replace(scratch, out_dir)
        return {"simulated": True, "seconds": time.perf_counter() - start}

    def evaluate(self, job: Job, cell: Cell, adapter_dir: Path | None = None):
        from transfergrid.jobs import CellResult

        start = time.perf_counter()
        self._source = job.source
        self._inject(job)
        n = declared_test_size(self.study, cell)
        acc = simulated_accuracy(job, cell)
        k, k_norm = round(acc * n), round(min(1.0, acc + 0.02) * n)
        if self.study.kind == "transfer" and job.spec.get("variant") in COT_VARIANTS:  # labels equally long
            k_norm = k
        seed = int.from_bytes(hashlib.sha256(f"{job.key}/{cell}".encode()).digest()[:8], "big")
        order = np.random.default_rng(seed).permutation(n)
        correct, correct_norm = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        correct[order[:k]] = True
        correct_norm[order[:k_norm]] = True
        gold = np.arange(n) % 4
        # columns (not row dicts): the store writes them straight to Parquet
        items = {"id": _ids(n), "task": [cell.task] * n, "lang": [cell.lang] * n, "gold": gold,
                 "pred": np.where(correct, gold, (gold + 1) % 4), "pred_norm": np.where(correct_norm, gold, (gold + 1) % 4),
                 "correct": correct, "correct_norm": correct_norm, "correct_bytes": correct}
        nan = float("nan")
        metrics = {"n": n, "acc": k / n if n else nan, "acc_norm": k_norm / n if n else nan,
                   "acc_bytes": k / n if n else nan}
        return CellResult(cell, metrics, items, time.perf_counter() - start)

    def unload(self, job: Job) -> None:
        pass


__all__ = [
    "SimulatedWorker",
    "declared_manifest_hash",
    "declared_test_size",
    "simulated_accuracy",
    "simulated_fingerprint",
    "simulated_jobs",
]
