"""The Ray executor on a local Ray cluster gives the local executor's results."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest
from test_runner import assert_nothing_done_twice, cli, db, run_args, write_study

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def watched_actor(log_dir: Path):
    """The executor's actor class, noting in `log_dir` its process id for every job it runs and
    every SQLite file its process opens (defined here so that Ray ships it to the workers by value)."""
    from transfergrid.execute import ray as ray_executor

    class Watched(ray_executor._Actor):
        def __init__(self, *args, **kwargs):
            import sqlite3

            connect = sqlite3.connect

            def noted_connect(database, *a, **k):
                self._note("sqlite", str(database))
                return connect(database, *a, **k)

            sqlite3.connect = noted_connect  # the store opens its database through sqlite3.connect
            super().__init__(*args, **kwargs)

        def _note(self, kind: str, text: str) -> None:
            (log_dir / f"{kind}-{os.getpid()}-{uuid.uuid4().hex}").write_text(text)

        def train_into(self, job, out_dir):
            self._note("job", job.key)
            return super().train_into(job, out_dir)

        def evaluate_batch(self, job, cells, adapter_dir):
            self._note("job", job.key)
            return super().evaluate_batch(job, cells, adapter_dir)

    return Watched


def test_ray_executor_matches_local(ray_cluster, tmp_path, data_dir, monkeypatch):
    from transfergrid.execute import ray as ray_executor

    study = write_study(tmp_path / "study.toml")
    local, remote = tmp_path / "local", tmp_path / "ray"
    notes = tmp_path / "notes"
    notes.mkdir()
    assert cli(*run_args(study, local, data_dir)) == 0
    monkeypatch.setattr(ray_executor, "_Actor", watched_actor(notes))
    assert cli(*run_args(study, remote, data_dir), "--executor", "ray") == 0
    assert_nothing_done_twice(remote)
    pd.testing.assert_frame_equal(pd.read_csv(remote / "results.csv"), pd.read_csv(local / "results.csv"))
    items = pd.read_parquet(remote / "items.parquet")
    assert len(items) == len(pd.read_parquet(local / "items.parquet"))
    # the work was spread over the cluster's two actors: two processes other than this one ran jobs,
    # and every job of the grid ran in one of them
    runs = [(int(p.name.split("-")[1]), p.read_text()) for p in notes.glob("job-*")]
    pids = {pid for pid, _ in runs}
    assert len(pids) == 2 and os.getpid() not in pids, pids
    con = db(remote)
    assert {key for _, key in runs} == {r[0] for r in con.execute("SELECT key FROM jobs")}
    # the driver alone wrote the store: no actor opened the database, and every claim, cell and
    # event in it carries this process's worker id
    opened = [p.read_text() for p in notes.glob("sqlite-*")]
    assert not [path for path in opened if Path(path).name.startswith("transfergrid.sqlite")], opened
    writers = {r[0] for table in ("jobs", "cell_scores", "events") for r in con.execute(f"SELECT worker FROM {table}")}
    assert len(writers) == 1 and writers.pop().split(":")[1] == str(os.getpid())
    assert {r[0] for r in con.execute("SELECT pid FROM jobs")} == {os.getpid()}
    assert cli(*run_args(study, remote, data_dir), "--executor", "ray") == 0  # nothing left to do
    assert len(list(notes.glob("job-*"))) == len(runs)


def test_ray_executor_runs_a_relatedness_study_with_cot_like_local(ray_cluster, tmp_path, data_dir):
    from test_relatedness_run import ITEMS_FILE, RUN_STUDY

    study = tmp_path / "rel.toml"
    study.write_text(RUN_STUDY.format(cot="true"), encoding="utf-8")
    outputs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        args = ["run", study, "--out", out, "--data-dir", data_dir, "--no-progress", "--no-report",
                "--executor", executor]
        assert cli(*map(str, args)) == 0
        assert_nothing_done_twice(out)
        records = pd.read_parquet(out / ITEMS_FILE)
        outputs[executor] = records.sort_values(["variant", "language", "item"]).reset_index(drop=True)
    local, remote = outputs["local"], outputs["ray"]
    assert remote.groupby("variant").size().to_dict() == {"base": 18, "cot": 18, "ft": 18}
    # the same reasoning texts, answers and scores, whichever executor ran the jobs
    for column in ("reasoning", "correct", "pred"):
        assert remote[column].tolist() == local[column].tolist(), column
    # log-likelihoods equal up to float32 summation order (a Ray actor runs torch on one thread)
    diff = max(abs(a - b) for r, l in zip(remote["loglik"], local["loglik"]) for a, b in zip(r, l, strict=True))
    assert diff < 1e-4
