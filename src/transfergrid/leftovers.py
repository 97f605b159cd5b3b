"""Housekeeping over a `store.Store`: the leftovers of killed jobs, and the grid's progress.

`clean_leftovers` runs when a run starts (`execute.schedule.Schedule`); `grid_status` is what
`transfergrid status` prints.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from transfergrid.plan import TRAIN, Job

log = logging.getLogger("transfergrid.store")


def clean_leftovers(store) -> list[Path]:
    """Remove what killed jobs left behind: temporary Parquet files, per-item Parquet files
    without a committed row, and training scratch directories. Only files older than this
    store's opening and of jobs no live process holds are touched (another run may be writing
    the rest right now). Returns the paths removed."""
    live = store.live_claims()
    cells = store.committed_cells()
    removed: list[Path] = []

    def old(entry: os.DirEntry) -> bool:
        try:
            return entry.stat(follow_symlinks=False).st_mtime < store.opened
        except FileNotFoundError:
            return False

    items = store.root / "artifacts" / "items"
    for key_dir in (os.scandir(items) if items.is_dir() else ()):
        if not key_dir.is_dir() or key_dir.name in live:
            continue
        rows = cells.get(key_dir.name, set())
        for task in os.scandir(key_dir.path):
            if not task.is_dir():
                continue
            for e in os.scandir(task.path):
                orphan = e.name.endswith(".tmp") or (
                    e.name.endswith(".parquet") and f"{task.name}:{e.name[:-8]}" not in rows)
                if orphan and e.is_file() and old(e):
                    Path(e.path).unlink(missing_ok=True)
                    removed.append(Path(e.path))
    adapters = store.root / "artifacts" / "adapters"
    for e in (os.scandir(adapters) if adapters.is_dir() else ()):
        # train_adapter's scratch: ".<key>.tmp-XXXX" (finished adapters are renamed out of it)
        if e.name.startswith(".") and ".tmp-" in e.name and e.name[1:].split(".tmp-")[0] not in live and old(e):
            shutil.rmtree(e.path, ignore_errors=True)
            removed.append(Path(e.path))
    for e in os.scandir(store.root):  # results.csv / items.parquet of an export that was killed
        if e.name.startswith(".") and e.name.endswith(".tmp") and e.is_file() and old(e):
            Path(e.path).unlink(missing_ok=True)
            removed.append(Path(e.path))
    if removed:
        log.info("removed %d leftovers of interrupted jobs", len(removed))
    return removed

def grid_status(store, jobs: Sequence[Job]) -> dict:
    """Progress per model: trainings and evaluated (variant, target) cells by state; failures;
    orphans (jobs in the store whose keys the current study no longer produces)."""
    rows = store.statuses()
    n_cells = store.cell_counts()
    counted = {"done": 0, "running": 0, "failed": 0, "missing": 0}
    models: dict[str, dict] = {}
    failed = []
    for job in jobs:
        m = models.setdefault(job.model, {"train": dict(counted), "cells": dict(counted)})
        row = rows.get(job.key)
        status = row["status"] if row is not None else "pending"
        state = {"pending": "missing"}.get(status, status)
        if job.kind == TRAIN:
            m["train"][state] += 1
        else:
            n_done = n_cells.get(job.key, 0)
            m["cells"]["done"] += n_done
            if state != "done":  # cells not committed yet share their job's state
                m["cells"][state] += len(job.targets) - n_done
        if status == "failed":
            failed.append({"job": job.label, "key": job.key, "error": row["error"], "attempts": row["attempts"],
                           "traceback": row["traceback_path"]})
    keys = {j.key for j in jobs}
    return {"models": models, "failed": failed, "orphans": sum(k not in keys for k in rows)}
