"""The paper's whole grid through the runner with stand-in work (`transfergrid.simulate`).

9 models x 44 source cells x 3 seeds = 1,188 trainings and 1,197 evaluations over 44 target cells
(52,668 committed cells), planned offline from examples/donors-recipients.toml, through the real
store, keys, claims, commits and export. Prints: jobs per second; the store + scheduler overhead
per job (from the end of one job's work to the start of the next one's: commit, finish, claim) at
the start and at the end of the grid; `status` and `export` times on the finished store (the CLI,
in a fresh process); the SQLite file size; optionally the analysis and the same grid on Ray.

    PYTHONPATH=src python benchmarks/grid_scale.py                 # local executor
    PYTHONPATH=src python benchmarks/grid_scale.py --ray           # and Ray, ray.init(num_cpus=2)
    PYTHONPATH=src python benchmarks/grid_scale.py --models 2      # a smaller grid
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
STUDY = REPO / "examples" / "donors-recipients.toml"
WINDOW = 200  # jobs averaged at the start and at the end of the grid


class TimedWorker:
    """The simulated worker, recording when each job's work starts and ends."""

    def __init__(self, inner):
        self.inner = inner
        self.spans: list[tuple[float, float]] = []

    @property
    def _source(self):
        return self.inner._source

    def _timed(self, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.spans.append((start, time.perf_counter()))

    def train(self, job, out_dir):
        return self._timed(self.inner.train, job, out_dir)

    def evaluate(self, job, cell, adapter_dir=None):
        return self._timed(self.inner.evaluate, job, cell, adapter_dir)

    def unload(self, job):
        self.inner.unload(job)


def study_file(models: int, where: Path) -> Path:
    """The paper's study file, or the same with its first `models` models (a study file's
    `[[models]]` replaces the profile's list whole)."""
    if models >= 9:
        return STUDY
    from transfergrid.profiles import get_profile

    chosen = get_profile("donors-recipients")["models"][:models]
    blocks = "".join(f'\n[[models]]\nid = "{m["id"]}"\nsource = "{m["source"]}"\ndtype = "{m["dtype"]}"\n'
                     for m in chosen)
    path = where / "study.toml"
    path.write_text(STUDY.read_text(encoding="utf-8") + blocks, encoding="utf-8")
    return path


def job_overheads(worker: TimedWorker, jobs_done: list, writes: list) -> tuple[list[float], list[float]]:
    """Per job: the time between the end of its work and the start of the next job's work, as
    (store + scheduler time without the Parquet writes, Parquet writes)."""
    # spans are per train call / per evaluated cell; group them per job by their order
    starts, ends = [], []
    i = 0
    for job in jobs_done:
        n = 1 if job.kind == "train" else len(job.targets)
        span = worker.spans[i:i + n]
        starts.append(span[0][0])
        ends.append(span[-1][1])
        i += n
    gaps, files = [], []
    w = 0
    for k in range(len(starts) - 1):
        spent = 0.0
        while w < len(writes) and writes[w][0] < starts[k + 1]:
            if writes[w][0] >= ends[k]:
                spent += writes[w][1] - writes[w][0]
            w += 1
        gaps.append(starts[k + 1] - ends[k] - spent)
        files.append(spent)
    return gaps, files


def cli(*args) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "transfergrid", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_local_grid(path: Path, out: Path) -> None:
    from transfergrid.execute.local import run_local
    from transfergrid.plan import TRAIN
    from transfergrid.simulate import SimulatedWorker, simulated_jobs
    from transfergrid.store import Store
    from transfergrid.study import load_study

    study = load_study(path)
    start = time.perf_counter()
    jobs = simulated_jobs(study)
    plan_s = time.perf_counter() - start
    store = Store(out)
    worker = TimedWorker(SimulatedWorker(study))
    order: list = []
    claim = store.claim

    def recording_claim(job):  # the order jobs were run in, for per-job overheads
        ok = claim(job)
        if ok:
            order.append(job)
        return ok

    store.claim = recording_claim
    import transfergrid.itemfiles as store_module

    writes: list[tuple[float, float]] = []
    write_file = store_module.write_parquet

    def timed_write(table, target):
        t0 = time.perf_counter()
        write_file(table, target)
        writes.append((t0, time.perf_counter()))

    store_module.write_parquet = timed_write
    start = time.perf_counter()
    summary = run_local(study, store, jobs, Path("."), progress=False, worker=worker)
    run_s = time.perf_counter() - start
    assert summary.ok and len(summary.done) == len(jobs), summary
    cells = sum(len(j.targets) for j in jobs if j.kind != TRAIN)
    work_s = sum(e - s for s, e in worker.spans)
    store_module.write_parquet = write_file
    over, files = job_overheads(worker, order, writes)
    print(f"grid: {sum(j.kind == TRAIN for j in jobs)} trainings, {len(jobs) - sum(j.kind == TRAIN for j in jobs)} "
          f"evaluations, {cells} cells")
    print(f"local: plan {plan_s:.2f} s; run {run_s:.1f} s = {len(jobs) / run_s:.1f} jobs/s, "
          f"{cells / run_s:.0f} cells/s (stand-in work {work_s:.1f} s)")
    for kind in ("train", "eval"):
        idx = [k for k, j in enumerate(order[:-1]) if j.kind == kind]
        first, last = idx[:WINDOW // 2], idx[-WINDOW // 2:]
        ms = lambda ks, xs: 1000 * statistics.mean(xs[k] for k in ks)
        print(f"local: after a {kind} job, store + scheduler overhead (commit, finish, next claim; Parquet "
              f"writes apart): first {len(first)} {ms(first, over):.2f} ms, last {len(last)} {ms(last, over):.2f} ms; "
              f"Parquet writes {ms(first, files):.1f} / {ms(last, files):.1f} ms")
    print(f"local: per-item Parquet writes: {len(writes)} files, {sum(e - s for s, e in writes):.1f} s, "
          f"{1000 * statistics.mean(e - s for s, e in writes):.2f} ms per file")
    store.close()


def run_ray_grid(path: Path, out: Path, cpus: int) -> None:
    import ray

    from transfergrid.execute.ray import run_ray
    from transfergrid.simulate import simulated_jobs
    from transfergrid.store import Store
    from transfergrid.study import load_study

    study = load_study(path)
    jobs = simulated_jobs(study)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        store = Store(out)
        start = time.perf_counter()
        summary = run_ray(study, store, jobs, Path("."), progress=False, simulate=True)
        run_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    assert summary.ok and len(summary.done) == len(jobs), summary
    print(f"ray ({cpus} actors): run {run_s:.1f} s = {len(jobs) / run_s:.1f} jobs/s")


def concurrent_runs(path: Path, out: Path, runners: int) -> None:
    """`runners` processes run the same grid at once: every job must be claimed and done once."""
    from kill_resume import check_store, command, env

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    procs = [subprocess.Popen(command(path, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
             for _ in range(runners)]
    codes = [p.wait() for p in procs]
    took = time.perf_counter() - start
    assert codes == [0] * runners, codes
    counts = check_store(out)
    import sqlite3

    con = sqlite3.connect(out / "transfergrid.sqlite")
    per_worker = con.execute("SELECT worker, COUNT(*) FROM events WHERE event = 'done' GROUP BY worker").fetchall()
    con.close()
    print(f"{runners} concurrent runners: {took:.1f} s (each exports at its end); {counts['jobs']} jobs done once "
          f"each, {counts['cells']} cells committed once each, {counts['claims']} claims "
          f"({counts['jobs_claimed_more_than_once']} jobs claimed twice); jobs done per runner: "
          f"{sorted(n for _, n in per_worker)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=9, help="models of the paper's grid to keep (default: all 9)")
    ap.add_argument("--out", type=Path, help="output directory (default: a temporary one, removed)")
    ap.add_argument("--ray", action="store_true", help="also run the grid on a local Ray cluster")
    ap.add_argument("--ray-only", action="store_true", help="only the Ray run")
    ap.add_argument("--runners", type=int, default=0,
                    help="only this many concurrent `run --simulate` processes on one store, then check it")
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--analyze", action="store_true", help="also time `transfergrid analyze` on the export")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="grid-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        path = study_file(args.models, root)
        if args.runners:
            concurrent_runs(path, root / "concurrent", args.runners)
            return
        if args.ray_only:
            shutil.rmtree(root / "ray", ignore_errors=True)
            run_ray_grid(path, root / "ray", args.ray_cpus)
            return
        local = root / "local"
        shutil.rmtree(local, ignore_errors=True)
        run_local_grid(path, local)
        status_s = cli("status", path, "--simulate", "--out", local, "--json")
        export_s = cli("export", path, "--simulate", "--store", local, "--out", root / "results.csv")
        items_s = cli("export", path, "--simulate", "--store", local, "--out", root / "with-items.csv", "--items")
        size = (local / "transfergrid.sqlite").stat().st_size
        files = sum(1 for _ in (local / "artifacts" / "items").rglob("*.parquet"))
        print(f"status {status_s:.2f} s; export (results.csv) {export_s:.2f} s; export --items (and items.parquet) "
              f"{items_s:.2f} s; SQLite {size / 2**20:.1f} MiB; {files} per-item files")
        start = time.perf_counter()
        from transfergrid.export import export_results
        from transfergrid.simulate import simulated_jobs
        from transfergrid.store import Store
        from transfergrid.study import load_study

        study = load_study(path)
        frame = export_results(study, Store(local), simulated_jobs(study))
        print(f"export_results with its uncertainty columns (in process, per-item files read): "
              f"{time.perf_counter() - start:.2f} s, {len(frame)} rows")
        if args.analyze:
            analyze_s = cli("analyze", "--results", root / "results.csv", "--out", root / "analysis")
            print(f"analyze {analyze_s:.1f} s")
        if args.ray:
            ray_out = root / "ray"
            shutil.rmtree(ray_out, ignore_errors=True)
            run_ray_grid(path, ray_out, args.ray_cpus)
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
