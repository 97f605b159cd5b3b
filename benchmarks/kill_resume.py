"""Crash safety at paper scale: SIGKILL the runner's whole process group at random moments of the
simulated full grid, resume each time, and compare with an uninterrupted run.

Each round starts `transfergrid run STUDY --simulate` in a new session, waits until it has
written something (an event: a claim, a commit), sleeps a random time and kills the whole process
group with SIGKILL (no clean-up runs). After the kills a last run finishes the grid. Checks: its
results.csv equals the uninterrupted run's; no job was marked done twice and no cell committed
twice (the events table); every job done, every cell present; the leftovers of killed jobs
(temporary Parquet files, Parquet files without a committed row, training scratch directories)
are gone after the next start.

    PYTHONPATH=src python benchmarks/kill_resume.py                    # 100 kills, the paper's grid
    PYTHONPATH=src python benchmarks/kill_resume.py --kills 10 --models 1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def command(study: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "transfergrid", "run", str(study), "--simulate", "--out", str(out),
            "--no-progress", "--no-report"]


def env(extra: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONUNBUFFERED": "1", **(extra or {})}


def events(out: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{out / 'transfergrid.sqlite'}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or the schema is being written
        return 0


def leftovers(out: Path) -> dict[str, int]:
    """What killed jobs can leave behind (and `Store.clean_leftovers` removes at the next start)."""
    committed = set()
    if (out / "transfergrid.sqlite").is_file():
        con = sqlite3.connect(out / "transfergrid.sqlite", timeout=60)
        committed = {r[0] for r in con.execute("SELECT items_path FROM cell_scores")}
        con.close()
    items = out / "artifacts" / "items"
    tmp = orphan = 0
    for path in items.rglob("*") if items.is_dir() else ():
        if path.name.endswith(".tmp"):
            tmp += 1
        elif path.suffix == ".parquet" and str(path.relative_to(out)) not in committed:
            orphan += 1
    adapters = out / "artifacts" / "adapters"
    scratch = sum(1 for p in adapters.iterdir() if ".tmp-" in p.name) if adapters.is_dir() else 0
    return {"tmp_parquet": tmp, "orphan_parquet": orphan, "train_scratch": scratch}


def check_store(out: Path) -> dict[str, int]:
    """Nothing done twice, nothing lost. Returns counts for the report."""
    con = sqlite3.connect(out / "transfergrid.sqlite", timeout=60)
    dup_done = con.execute("SELECT COUNT(*) FROM (SELECT job_key FROM events WHERE event = 'done' "
                           "GROUP BY job_key HAVING COUNT(*) > 1)").fetchone()[0]
    dup_cells = con.execute("SELECT COUNT(*) FROM (SELECT job_key, cell FROM events WHERE event = 'cell' "
                            "GROUP BY job_key, cell HAVING COUNT(*) > 1)").fetchone()[0]
    not_done = con.execute("SELECT COUNT(*) FROM jobs WHERE status != 'done'").fetchone()[0]
    counts = {"jobs": con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0],
              "cells": con.execute("SELECT COUNT(*) FROM cell_scores").fetchone()[0],
              "claims": con.execute("SELECT COUNT(*) FROM events WHERE event = 'claim'").fetchone()[0],
              "jobs_claimed_more_than_once": con.execute(
                  "SELECT COUNT(*) FROM (SELECT job_key FROM events WHERE event = 'claim' "
                  "GROUP BY job_key HAVING COUNT(*) > 1)").fetchone()[0]}
    con.close()
    assert dup_done == 0, f"{dup_done} jobs marked done twice"
    assert dup_cells == 0, f"{dup_cells} cells committed twice"
    assert not_done == 0, f"{not_done} jobs not done"
    return counts


def kill_rounds(study: Path, out: Path, kills: int, rng: random.Random, max_delay: float,
                extra_env: dict | None = None, log=print) -> int:
    """Start, wait for it to write, sleep a random time, SIGKILL the process group; `kills` times
    (fewer if the grid completes first). Returns the number of kills that landed."""
    landed = 0
    for k in range(kills):
        before = events(out)
        proc = subprocess.Popen(command(study, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env(extra_env), start_new_session=True)
        while proc.poll() is None and events(out) == before:
            time.sleep(0.02)
        try:
            proc.wait(timeout=rng.uniform(0.0, max_delay))
            log(f"round {k + 1}: the run finished before its kill (exit {proc.returncode})")
            if proc.returncode == 0:
                break
            continue
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            landed += 1
        if (k + 1) % 10 == 0:
            log(f"{k + 1} rounds, {landed} kills, {events(out)} events")
    return landed


def main() -> None:
    import pandas as pd
    from grid_scale import study_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--models", type=int, default=9, help="models of the paper's grid to keep (default: all 9)")
    ap.add_argument("--max-delay", type=float, default=0.8,
                    help="longest wait before a kill, seconds (the paper grid takes ~1 min: 100 kills fit)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, help="working directory (default: a temporary one, removed)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    root = args.out or Path(tempfile.mkdtemp(prefix="kill-resume-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        study = study_file(args.models, root)
        reference, killed = root / "reference", root / "killed"
        for d in (reference, killed):
            shutil.rmtree(d, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(command(study, reference), check=True, env=env(), stdout=subprocess.DEVNULL)
        print(f"uninterrupted run: {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        landed = kill_rounds(study, killed, args.kills, rng, args.max_delay)
        left = leftovers(killed)
        print(f"{landed} kills landed in {time.perf_counter() - start:.1f} s (seed {seed}); "
              f"leftovers before the last start: {left}")
        start = time.perf_counter()
        subprocess.run(command(study, killed), check=True, env=env(), stdout=subprocess.DEVNULL)
        print(f"final resume: {time.perf_counter() - start:.1f} s")
        after = leftovers(killed)
        assert not any(after.values()), f"leftovers after the next start: {after}"
        counts = check_store(killed)
        pd.testing.assert_frame_equal(pd.read_csv(killed / "results.csv"), pd.read_csv(reference / "results.csv"))
        import pyarrow.parquet as pq

        # items.parquet is 21 million rows at paper size: compare the columns that carry the scores
        columns = ["model", "variant", "seed", "task", "lang", "id", "correct", "correct_norm"]
        items_k = pq.read_table(killed / "items.parquet", columns=columns)
        assert items_k.equals(pq.read_table(reference / "items.parquet", columns=columns)), "items.parquet differs"
        print(f"OK: results.csv and items.parquet ({items_k.num_rows} rows) equal the uninterrupted run's; "
              f"{counts['jobs']} jobs done once each, {counts['cells']} cells committed once each; "
              f"{counts['claims']} claims, {counts['jobs_claimed_more_than_once']} jobs claimed again after a kill; "
              f"leftovers after the next start: {after}")
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
