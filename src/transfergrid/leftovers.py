"""Housekeeping over a `store.Store`: the start-up checks of a run, and the grid's progress.

When a run starts (`execute.schedule.Schedule`), `clean_leftovers` removes what killed jobs left and
`check_done` (`Store.missing`) checks done work against its files, in bulk; `grid_status` is what
`transfergrid status` prints.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from transfergrid.plan import TRAIN, Job

log = logging.getLogger("transfergrid.store")


def verify_adapter(path: Path, key: str) -> str | None:
    """None if `path` holds the finished adapter of train job `key`, else what is wrong."""
    if not path.is_dir():
        return "adapter directory is missing"
    meta_file = path / "transfergrid.json"
    if not meta_file.is_file():
        return "transfergrid.json is missing"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "transfergrid.json is not valid JSON"
    if key not in (meta.get("key"), (meta.get("meta") or {}).get("key")):
        return "transfergrid.json belongs to another job"
    if (path / "adapter_config.json").is_file():
        weights = [p for p in path.iterdir() if p.name.startswith("adapter_model.")]
    else:  # full fine-tuning: a whole model directory
        weights = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin")]
    if not weights or any(p.stat().st_size == 0 for p in weights):
        return "adapter weights are missing or empty"
    return None


def check_done(store, jobs: Sequence[Job]) -> list[Job]:
    """The jobs not done yet (in the given order), after checking done work against its files: a
    done train job needs its verified adapter, a done eval job the per-item file of every cell
    (a job whose files are gone is sent back, its lost cells forgotten). Two queries, one adapter
    check per done training and one directory listing per folder of item files."""
    status = {r[0]: r[1] for r in store._db.execute("SELECT key, status FROM jobs")}
    files = store.item_files()
    listed: dict[str, set[str]] = {}  # folder -> the names in it

    def present(rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        if folder not in listed:
            try:
                listed[folder] = {e.name for e in os.scandir(store.root / folder)}
            except (FileNotFoundError, NotADirectoryError):
                listed[folder] = set()
        return name in listed[folder]

    out = []
    for job in jobs:
        if status.get(job.key) != "done":
            out.append(job)
        elif job.kind == TRAIN:
            problem = verify_adapter(store.adapter_dir(job.key), job.key)
            if problem:
                store.reset(job.key, f"{job.label}: {problem} ({store.adapter_dir(job.key)}); it will be trained again")
                out.append(job)
        else:
            cells = files.get(job.key, {})
            lost = [str(c) for c in job.targets if str(c) in cells and not present(cells[str(c)])]
            if lost:
                store.reset(job.key, f"{job.label}: per-item results of {', '.join(lost)} are missing; "
                                     "those cells will be evaluated again", lost)
                out.append(job)
    return out


def clean_leftovers(store) -> list[Path]:
    """Remove what killed jobs left behind: temporary Parquet files, per-item Parquet files
    without a committed row, and training scratch directories. Only files older than this
    store's opening and of jobs no live process holds are touched (another run may be writing
    the rest right now). Returns the paths removed."""
    now = time.time()  # keys running under a claim that is alive (this process's own included)
    live = {r["key"] for r in store._db.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
            if r["worker"] == store.worker or not store._claim_dead(r, now)}
    named = {p for cells in store.item_files().values() for p in cells.values()}
    removed: list[Path] = []

    def old(entry: os.DirEntry) -> bool:
        try:
            return entry.stat(follow_symlinks=False).st_mtime < store.opened
        except FileNotFoundError:
            return False

    def sweep(folder: str, depth: int) -> None:  # <key>/ files, and <key>/<task>/ of the earlier layout
        for e in os.scandir(store.root / folder):
            rel = f"{folder}/{e.name}"
            if e.is_dir(follow_symlinks=False):
                if depth:
                    sweep(rel, depth - 1)
            elif (e.name.endswith(".tmp") or (e.name.endswith(".parquet") and rel not in named)) and old(e):
                Path(e.path).unlink(missing_ok=True)
                removed.append(Path(e.path))

    items = store.root / "artifacts" / "items"
    for key_dir in (os.scandir(items) if items.is_dir() else ()):
        if key_dir.is_dir() and key_dir.name not in live:
            sweep(f"artifacts/items/{key_dir.name}", 1)
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
