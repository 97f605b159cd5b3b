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
