"""The Ray executor on a local Ray cluster gives the local executor's results."""

from __future__ import annotations

import pandas as pd
import pytest
from test_runner import assert_nothing_done_twice, cli, run_args, write_study

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_executor_matches_local(ray_cluster, tmp_path, data_dir):
    study = write_study(tmp_path / "study.toml")
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert cli(*run_args(study, local, data_dir)) == 0
    assert cli(*run_args(study, remote, data_dir), "--executor", "ray") == 0
    assert_nothing_done_twice(remote)
    pd.testing.assert_frame_equal(pd.read_csv(remote / "results.csv"), pd.read_csv(local / "results.csv"))
    # the work was spread over the cluster's two actors, and the driver alone wrote the store
    items = pd.read_parquet(remote / "items.parquet")
    assert len(items) == len(pd.read_parquet(local / "items.parquet"))
    assert cli(*run_args(study, remote, data_dir), "--executor", "ray") == 0  # nothing left to do


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
