"""Faults inside jobs, with the stand-in worker: each ends its job with a stored error, the rest
of the grid goes on, and the next run repairs what is missing. (The real tiny-model worker's
failing training and corrupt adapter are in test_runner.py.)"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from transfergrid.execute.local import run_local
from transfergrid.export import export_results
from transfergrid.simulate import SimulatedWorker, simulated_jobs
from transfergrid.store import Store
from transfergrid.study import parse_study

STUDY = {
    "name": "faults", "seeds": [1, 2],
    "models": [{"id": "a", "source": "org/model-a"}, {"id": "b", "source": "org/model-b"}],
    "grid": {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en", "es"]},
    "splits": {"train": 10, "test": 12},
}
TRAIN_LABEL = "train a on arc_challenge:es (seed 1)"
EVAL_LABEL = "eval b + truthfulqa_mc1:en (seed 2)"


@pytest.fixture(scope="module")
def study():
    return parse_study(STUDY)


@pytest.fixture(scope="module")
def jobs(study):
    return simulated_jobs(study)


def run(study, jobs, out: Path, faults=None):
    store = Store(out)
    summary = run_local(study, store, jobs, Path("."), progress=False,
                        worker=SimulatedWorker(study, faults=faults))
    return store, summary


@pytest.fixture(scope="module")
def reference(study, jobs, tmp_path_factory):
    store, summary = run(study, jobs, tmp_path_factory.mktemp("reference"))
    assert summary.ok and len(summary.done) == len(jobs)
    return export_results(study, store, jobs)


def rows(out: Path, sql: str, *args):
    con = sqlite3.connect(out / "transfergrid.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def assert_repaired(study, jobs, out: Path, reference, failed_label: str) -> None:
    """The next run (no fault) retries the failed job only and completes the grid."""
    store, summary = run(study, jobs, out)
    assert summary.ok, summary
    assert failed_label in summary.done
    assert rows(out, "SELECT COUNT(*) n FROM jobs WHERE status != 'done'")[0]["n"] == 0
    retried = rows(out, "SELECT key FROM jobs WHERE attempts > 1")
    assert [r["key"] for r in retried] == [j.key for j in jobs if j.label == failed_label]
    pd.testing.assert_frame_equal(export_results(study, store, jobs), reference)


@pytest.mark.parametrize(("kind", "error"), [("raise", "RuntimeError: train a on arc_challenge:es (seed 1): injected"),
                                             ("nan", "DivergenceError: arc_challenge:es: training loss is nan"),
                                             ("corrupt_adapter", ("RuntimeError: train a on arc_challenge:es (seed 1): "
                                                                 "adapter weights are missing or empty after training"))])
def test_a_failing_training_is_stored_and_repaired(study, jobs, reference, tmp_path, kind, error):
    out = tmp_path / "out"
    _, summary = run(study, jobs, out, faults={kind: [TRAIN_LABEL]})
    assert [label for label, _, _ in summary.failed] == [TRAIN_LABEL]
    assert summary.failed[0][1].startswith(error), summary.failed
    assert summary.blocked == ["eval a + arc_challenge:es (seed 1)"]  # its evaluation waits for it
    assert len(summary.done) == len(jobs) - 2  # the rest of the grid went on
    (row,) = rows(out, "SELECT * FROM jobs WHERE status = 'failed'")
    assert row["error"].startswith(error) and "Traceback" in (out / row["traceback_path"]).read_text()
    assert_repaired(study, jobs, out, reference, TRAIN_LABEL)


def test_a_failing_evaluation_is_stored_and_repaired(study, jobs, reference, tmp_path):
    out = tmp_path / "out"
    _, summary = run(study, jobs, out, faults={"raise": [EVAL_LABEL]})
    assert [label for label, _, _ in summary.failed] == [EVAL_LABEL] and not summary.blocked
    assert len(summary.done) == len(jobs) - 1
    assert_repaired(study, jobs, out, reference, EVAL_LABEL)


def test_a_full_disk_fails_the_job_and_leaves_no_partial_file(study, jobs, reference, tmp_path, monkeypatch):
    from transfergrid import itemfiles

    out = tmp_path / "out"
    target = next(j for j in jobs if j.label == EVAL_LABEL)
    real = itemfiles.write_parquet

    def full_disk(table, path):
        if target.key in str(path):
            path.write_bytes(b"PAR1 half a file")  # the write began, then the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device")
        real(table, path)

    monkeypatch.setattr(itemfiles, "write_parquet", full_disk)
    _, summary = run(study, jobs, out)
    assert [(label, err) for label, err, _ in summary.failed] == [
        (EVAL_LABEL, "OSError: [Errno 28] No space left on device")]
    assert len(summary.done) == len(jobs) - 1
    assert not list(out.rglob("*.tmp")), "a partial file was left behind"
    assert not list((out / "artifacts" / "items" / target.key).iterdir())
    assert rows(out, "SELECT COUNT(*) n FROM cell_scores WHERE job_key = ?", target.key)[0]["n"] == 0
    monkeypatch.setattr(itemfiles, "write_parquet", real)
    assert_repaired(study, jobs, out, reference, EVAL_LABEL)


def test_a_deleted_items_file_is_evaluated_again(study, jobs, reference, tmp_path):
    out = tmp_path / "out"
    store, summary = run(study, jobs, out)
    assert summary.ok
    target = next(j for j in jobs if j.label == EVAL_LABEL)
    lost = store.items_path(target.key, target.targets[0])
    in_it = [r["cell"] for r in rows(out, "SELECT cell FROM cell_scores WHERE items_path = ?",
                                     str(lost.relative_to(out)))]
    assert sorted(in_it) == sorted(map(str, target.targets))  # a finished evaluation: one file
    lost.unlink()
    before = rows(out, "SELECT COUNT(*) n FROM events WHERE event = 'cell'")[0]["n"]
    store, summary = run(study, jobs, out)
    assert summary.ok and summary.done == [EVAL_LABEL]
    new = rows(out, "SELECT job_key, cell FROM events WHERE event = 'cell' LIMIT -1 OFFSET ?", before)
    assert sorted((r["job_key"], r["cell"]) for r in new) == sorted((target.key, c) for c in in_it)  # those only
    pd.testing.assert_frame_equal(export_results(study, store, jobs), reference)


def test_a_corrupted_finished_adapter_is_trained_again(study, jobs, reference, tmp_path):
    out = tmp_path / "out"
    store, _ = run(study, jobs, out)
    train = next(j for j in jobs if j.label == TRAIN_LABEL)
    (store.adapter_dir(train.key) / "adapter_model.safetensors").write_bytes(b"")
    store, summary = run(study, jobs, out)
    assert summary.ok and summary.done == [TRAIN_LABEL]
    assert (store.adapter_dir(train.key) / "adapter_model.safetensors").stat().st_size > 0
    pd.testing.assert_frame_equal(export_results(study, store, jobs), reference)


@pytest.mark.ray
def test_a_ray_actor_killed_mid_job(study, jobs, reference, tmp_path):
    ray = pytest.importorskip("ray")
    from transfergrid.execute.ray import run_ray

    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_ray(study, Store(out), jobs, Path("."), progress=False, simulate=True,
                          faults={"exit": [EVAL_LABEL]})
        assert [label for label, _, _ in summary.failed] == [EVAL_LABEL], summary.failed
        assert "Actor" in summary.failed[0][1] or "actor" in summary.failed[0][1]
        assert len(summary.done) == len(jobs) - 1  # a new actor took the dead one's place
        summary = run_ray(study, Store(out), jobs, Path("."), progress=False, simulate=True)
        assert summary.ok and summary.done == [EVAL_LABEL]
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(export_results(study, Store(out), jobs), reference)


def test_queries_per_job_do_not_grow_with_the_grid(tmp_path):
    """The store's per-step work is O(1) queries: a grid three times larger costs the same number
    of SQL statements per job (the old scheduler re-read every done job's cells at each step)."""
    per_job = []
    for n_models in (1, 3):
        spec = {**STUDY, "models": [{"id": f"m{i}", "source": f"org/m{i}"} for i in range(n_models)]}
        study = parse_study(spec)
        jobs = simulated_jobs(study)
        store = Store(tmp_path / f"grid{n_models}")
        statements = []
        store._db.set_trace_callback(statements.append)
        summary = run_local(study, store, jobs, Path("."), progress=False, worker=SimulatedWorker(study))
        assert summary.ok and len(summary.done) == len(jobs)
        per_job.append(len(statements) / len(jobs))
    assert per_job[1] <= per_job[0] * 1.1 and per_job[1] < 25, per_job
