"""The SQLite store: atomic claims, dead-claim recovery, per-cell commits, failures, adapter checks."""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time

import pytest

from transfergrid.plan import EVAL, TRAIN, Job
from transfergrid.records import Cell
from transfergrid.store import LostClaim, Store, grid_status, verify_adapter

CELLS = ["arc_challenge:en", "arc_challenge:es"]
M = {"n": 2, "acc": 0.5, "acc_norm": 1.0, "acc_bytes": 0.5}


def _eval(key="e1", adapter=None):
    spec = {"model": "m", "model_source": "tiny:seed=0", "seed": 1 if adapter else None,
            "source_cell": "arc_challenge:en" if adapter else None, "adapter_key": adapter, "targets": CELLS}
    return Job(EVAL, key, spec)


def _train(key="t1"):
    return Job(TRAIN, key, {"model": "m", "model_source": "tiny:seed=0", "seed": 1, "source_cell": "arc_challenge:en"})


def _fake_adapter(path, key, weights=b"w" * 10):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(weights)
    (path / "transfergrid.json").write_text(json.dumps({"meta": {"key": key}}))


def test_claim_is_exclusive_and_cells_commit_one_by_one(tmp_path):
    a, b = Store(tmp_path), Store(tmp_path)
    job = _eval()
    assert a.claim(job)
    assert not b.claim(job)  # alive elsewhere (same host, live pid, fresh heartbeat)
    a.commit_cell(job, Cell.parse(CELLS[0]), M, [{"id": "q1", "correct": True}, {"id": "q2", "correct": False}])
    assert a.done_cells(job.key) == {Cell.parse(CELLS[0])}
    assert a.items_path(job.key, Cell.parse(CELLS[0])).is_file()
    with pytest.raises(RuntimeError, match="not evaluated"):
        a.finish(job)  # one target cell is still missing
    a.commit_cell(job, Cell.parse(CELLS[1]), M, [{"id": "q1"}])
    a.finish(job)
    assert a.missing([job]) == []
    assert not b.claim(job)  # done
    rows = a.cell_scores()
    assert list(rows["cell"]) == CELLS and list(rows["variant"]) == ["base", "base"]


def test_a_dead_claim_is_taken_over_and_the_old_owner_cannot_commit(tmp_path):
    a, b = Store(tmp_path), Store(tmp_path)
    job = _eval()
    assert a.claim(job)
    # a killed process: its pid is gone on this host
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    a._db.execute("UPDATE jobs SET pid = ? WHERE key = ?", (int(dead.stdout), job.key))
    assert b.claim(job)
    with pytest.raises(LostClaim):
        a.commit_cell(job, Cell.parse(CELLS[0]), M, [{"id": "q"}])
    assert a.done_cells(job.key) == set()
    # a claim from another host counts as dead only once its heartbeat is stale
    b._db.execute("UPDATE jobs SET host = 'elsewhere', heartbeat = ? WHERE key = ?", (time.time(), job.key))
    c = Store(tmp_path)
    assert not c.claim(job)
    b._db.execute("UPDATE jobs SET heartbeat = ? WHERE key = ?", (time.time() - 3600, job.key))
    assert c.claim(job)
    assert c.statuses()[job.key]["attempts"] == 3


def _race(root, keys, out):
    store = Store(root)
    won = [k for k in keys if store.claim(_eval(k))]
    out.put(won)


def test_concurrent_processes_never_claim_the_same_job(tmp_path):
    keys = [f"job{i}" for i in range(40)]
    Store(tmp_path)  # create the schema once
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path, keys, out)) for _ in range(4)]
    for p in procs:
        p.start()
    won = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    claimed = [k for w in won for k in w]
    assert sorted(claimed) == sorted(keys)  # every job once, none twice


def test_failure_is_stored_and_retried_only_by_the_next_run(tmp_path):
    store = Store(tmp_path)
    job = _train()
    assert store.claim(job)
    try:
        raise ValueError("loss is nan\nsecond line")
    except ValueError as exc:
        path = store.fail(job, exc)
    row = store.statuses()[job.key]
    assert row["status"] == "failed" and row["error"] == "ValueError: loss is nan"
    assert "Traceback" in path.read_text() and (tmp_path / row["traceback_path"]) == path
    assert not store.claim(job)  # not again in the same run
    status = grid_status(store, [job])
    assert status["models"]["m"]["train"]["failed"] == 1 and status["failed"][0]["attempts"] == 1
    again = Store(tmp_path)  # the next run
    assert again.claim(job)


def test_adapter_checks(tmp_path):
    store = Store(tmp_path)
    job = _train()
    out = store.adapter_dir(job.key)
    assert verify_adapter(out, job.key) == "adapter directory is missing"
    _fake_adapter(out, job.key)
    assert verify_adapter(out, job.key) is None
    assert verify_adapter(out, "another") == "transfergrid.json belongs to another job"
    assert store.claim(job)
    store.finish(job)
    assert store.missing([job]) == []
    # a corrupt adapter of a done job is detected; the job is pending again
    (out / "transfergrid.json").write_text("{not json")
    assert store.missing([job]) == [job]
    assert store.statuses()[job.key]["status"] == "pending"
    assert "not valid JSON" in store.statuses()[job.key]["error"]
    # empty weights
    (out / "transfergrid.json").write_text(json.dumps({"meta": {"key": job.key}}))
    (out / "adapter_model.safetensors").write_bytes(b"")
    assert "empty" in verify_adapter(out, job.key)


def test_finish_refuses_a_train_job_without_its_adapter(tmp_path):
    store = Store(tmp_path)
    job = _train()
    assert store.claim(job)
    with pytest.raises(RuntimeError, match="adapter directory is missing"):
        store.finish(job)
    assert store.statuses()[job.key]["status"] == "running"


def test_a_deleted_item_file_sends_its_cells_back(tmp_path):
    store = Store(tmp_path)
    job = _eval()
    assert store.claim(job)
    for c in CELLS:  # one commit, one file each
        store.commit_cell(job, Cell.parse(c), M, [{"id": "q"}])
    store.items_path(job.key, Cell.parse(CELLS[1])).unlink()
    assert store.done_cells(job.key) == {Cell.parse(CELLS[0])}  # the other file still holds its cell
    with pytest.raises(RuntimeError, match="not evaluated"):
        store.finish(job)
    store.commit_cell(job, Cell.parse(CELLS[1]), M, [{"id": "q"}])
    store.finish(job)  # both cells gathered into one file
    store.items_path(job.key, Cell.parse(CELLS[1])).unlink()
    assert store.missing([job]) == [job]
    assert store.done_cells(job.key) == set()
    assert store.cell_scores().empty


def test_export_seed_statistics(tmp_path):
    """Released-CSV columns from per-seed cell scores: means, sample std, SE, Δ in pp, regimes."""
    import math

    from transfergrid.export import COLUMNS, export_results
    from transfergrid.plan import build_jobs
    from transfergrid.study import parse_study

    study = parse_study({"name": "x", "seeds": [1, 2, 3], "models": [{"id": "m", "source": "tiny:seed=0"}],
                         "grid": {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en"],
                                  "sources": ["arc_challenge:en"]}})
    jobs = build_jobs(study, lambda t: "h", lambda s: "fp")
    store = Store(tmp_path)
    acc = {"base": (0.50, 0.40), 1: (0.60, 0.45), 2: (0.70, 0.35), 3: (0.80, 0.40)}  # (acc, acc_norm)
    for job in (j for j in jobs if j.kind == EVAL):
        a, an = acc[job.spec["seed"] or "base"]
        assert store.claim(job)
        for cell in job.targets:
            store.commit_cell(job, cell, {"n": 10, "acc": a, "acc_norm": an, "acc_bytes": a}, [{"id": "q"}])
    frame = export_results(study, store, jobs)
    from transfergrid.analysis.uncertainty import COLUMNS as EXTRA

    # the released schema in its order, then the uncertainty columns (empty: these items have no scores)
    assert list(frame.columns) == [*COLUMNS, *EXTRA] and len(frame) == 2 and frame[EXTRA].isna().all().all()
    arc = frame[frame.eval_dataset == "arc_challenge"].iloc[0]
    tqa = frame[frame.eval_dataset == "truthfulqa_mc1"].iloc[0]
    assert (arc.regime, tqa.regime) == ("MT-ML", "CT-ML")
    assert arc.n_seeds == 3 and math.isclose(arc.score_mean, 0.7) and math.isclose(arc.score_std, 0.1)
    assert math.isclose(arc.score_se, 0.1 / math.sqrt(3))
    assert arc.score_base_mean == 0.5 and arc.score_base_std == 0.0 and arc.score_base_se == 0.0
    assert math.isclose(arc.delta_score_mean, 20.0) and math.isclose(arc.delta_score_std, 10.0)
    # ARC's headline is acc_norm; TruthfulQA has none, so its norm columns hold acc
    assert math.isclose(arc.score_norm_mean, 0.4) and abs(arc.delta_score_norm_mean) < 1e-9
    assert math.isclose(arc.delta_score_norm_std, 5.0)
    assert math.isclose(tqa.score_norm_mean, 0.7) and math.isclose(tqa.delta_score_norm_mean, 20.0)
