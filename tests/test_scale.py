"""The runner under stress with the stand-in worker (`--simulate`): SIGKILLs of the whole process
group at random moments, concurrent runners (processes and Ray drivers), the start-up clean-up."""

from __future__ import annotations

import importlib.util
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

STUDY = """
name = "sim"
seeds = [1, 2]

[[models]]
id = "a"
source = "org/model-a"
[[models]]
id = "b"
source = "org/model-b"

[grid]
tasks = ["arc_challenge", "truthfulqa_mc1"]
languages = ["en", "es", "de"]

[splits]
train = 20
test = 30
"""
N_JOBS = 2 * 6 * 2 + 2 * (1 + 12)  # trainings + evaluations
N_CELLS = 2 * 13 * 6


def _kill_resume():
    spec = importlib.util.spec_from_file_location("tg_kill_resume", REPO / "benchmarks" / "kill_resume.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kr = _kill_resume()


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study") / "study.toml"
    path.write_text(STUDY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(study, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(kr.command(study, out), check=True, env=kr.env(), capture_output=True)
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 6 * 6
    return results


def test_simulated_scores_are_a_function_of_the_key(study, reference, tmp_path):
    out = tmp_path / "again"
    subprocess.run(kr.command(study, out), check=True, env=kr.env(), capture_output=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference)
    # not constant: base models differ per cell, fine-tuned scores per source and seed
    assert reference.score_base_mean.nunique() > 6 and reference.score_std.notna().all()
    assert (reference.score_std > 0).any()


def test_ten_sigkills_of_the_process_group_then_resume(study, reference, tmp_path):
    out = tmp_path / "killed"
    seed = int(os.environ.get("TRANSFERGRID_TEST_SEED", "20261202"))  # fixed; set it to explore
    rng = random.Random(seed)
    # each stand-in training and cell takes 20 ms: the grid lasts a few seconds, and kills land in it
    slow = {"TRANSFERGRID_SIMULATE_SECONDS": "0.02"}
    landed = kr.kill_rounds(study, out, 10, rng, 0.6, slow, log=lambda *_: None)
    assert landed >= 5, f"only {landed} kills landed (seed {seed})"
    before = kr.leftovers(out)
    final = subprocess.run(kr.command(study, out), check=False, env=kr.env(), capture_output=True, text=True)
    assert final.returncode == 0, (seed, final.stderr[-2000:])
    assert kr.leftovers(out) == {"tmp_parquet": 0, "orphan_parquet": 0, "train_scratch": 0}, (seed, before)
    counts = kr.check_store(out)
    assert counts["jobs"] == N_JOBS and counts["cells"] == N_CELLS
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference, obj=f"results (seed {seed})")


def test_leftovers_of_killed_jobs_are_removed_at_the_next_start(study, reference, tmp_path):
    out = tmp_path / "out"
    subprocess.run(kr.command(study, out), check=True, env=kr.env(), capture_output=True)
    items = next((out / "artifacts" / "items").iterdir())
    planted = [items / ".xx.parquet.tmp", items / "xx.parquet",  # a temp file, a Parquet no row names
               out / "artifacts" / "adapters" / f".{'0' * 64}.tmp-abcd" / "adapter_model.safetensors",
               out / ".results.csv.99999999.tmp"]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert kr.leftovers(out) == {"tmp_parquet": 1, "orphan_parquet": 1, "train_scratch": 1}
    subprocess.run(kr.command(study, out), check=True, env=kr.env(), capture_output=True)
    assert not any(p.exists() for p in planted)
    assert not planted[2].parent.exists()
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference)


def _one_claim_per_job(out: Path) -> set[str]:
    con = sqlite3.connect(out / "transfergrid.sqlite")
    claims = con.execute("SELECT job_key, COUNT(*) FROM events WHERE event = 'claim' GROUP BY job_key").fetchall()
    assert len(claims) == N_JOBS and all(n == 1 for _, n in claims)  # no job was even started twice
    workers = {r[0] for r in con.execute("SELECT DISTINCT worker FROM events WHERE event = 'done'")}
    con.close()
    return workers


def test_four_runner_processes_share_the_grid(study, reference, tmp_path):
    out = tmp_path / "out"
    slow = kr.env({"TRANSFERGRID_SIMULATE_SECONDS": "0.01"})
    procs = [subprocess.Popen(kr.command(study, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=slow) for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    counts = kr.check_store(out)
    assert counts["jobs"] == N_JOBS and counts["cells"] == N_CELLS
    assert len(_one_claim_per_job(out)) >= 2, "the processes should have shared the grid"
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference)


@pytest.mark.ray
def test_two_ray_drivers_share_the_grid(study, reference, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    cmd = [*kr.command(study, out), "--executor", "ray"]
    slow = kr.env({"TRANSFERGRID_SIMULATE_SECONDS": "0.02", "RAY_ADDRESS": ""})
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=slow)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    counts = kr.check_store(out)
    assert counts["jobs"] == N_JOBS and counts["cells"] == N_CELLS
    _one_claim_per_job(out)
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference)


if sys.platform == "win32":  # process groups and SIGKILL
    pytestmark = pytest.mark.skip("POSIX only")
