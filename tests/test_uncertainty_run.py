"""A tiny study end to end (tiny model, real data, two seeds): the uncertainty columns of results.csv
and their use by `analyze`, with and without them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_runner import cli

from transfergrid.analysis import uncertainty as U
from transfergrid.export import COLUMNS

STUDY = """
name = "uncertainty"
seeds = [1, 2]

[[models]]
id = "tiny"
source = "tiny:seed=0"

[grid]
tasks = ["arc_challenge", "truthfulqa_mc1"]
languages = ["en", "es"]

[splits]
train = 8
test = 8

[training]
epochs = 1
batch_size = 4
rank = 4
alpha = 8
learning_rate = 0.05
target_modules = ["q_proj", "v_proj"]
max_length = 256
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("uncertainty")
    study = root / "study.toml"
    study.write_text(STUDY, encoding="utf-8")
    out = root / "out"
    assert cli("run", study, "--out", out, "--data-dir", data_dir, "--no-progress", "--no-report") == 0
    return study, out


def test_results_have_consistent_uncertainty_columns(run):
    _, out = run
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == [*COLUMNS, *U.COLUMNS]  # the release's schema first, unchanged
    assert len(results) == 16 and (results.n_seeds == 2).all() and (results.delta_n_items == 8).all()
    p, q = results.delta_p_value, results.delta_q_value
    delta = results.delta_score_norm_mean
    assert p.between(0, 1).all() and (q >= p - 1e-12).all() and q.le(1).all()
    assert (results.delta_ci_low <= delta + 1e-9).all() and (delta <= results.delta_ci_high + 1e-9).all()
    # recomputed from items.parquet, the columns are the same, and its Δ is the headline Δ of the CSV
    items = pd.read_parquet(out / "items.parquet")
    cells = U.cell_uncertainty(items).merge(results[[*U.KEYS, "delta_score_norm_mean"]], on=U.KEYS)
    np.testing.assert_allclose(cells.delta_items, cells.delta_score_norm_mean, atol=1e-9)
    merged = results.merge(cells, on=U.KEYS, suffixes=("", "_again"))
    for column in U.COLUMNS:
        np.testing.assert_allclose(merged[column], merged[f"{column}_again"])


def test_analyze_uses_the_columns_and_items(run, tmp_path, capsys):
    _, out = run
    report = tmp_path / "analysis"
    capsys.readouterr()
    assert cli("analyze", "--results", out / "results.csv", "--out", report) == 0
    assert "unavailable" not in capsys.readouterr().out
    html = (report / "report.html").read_text(encoding="utf-8")
    summary = pd.read_csv(report / "tables" / "significance_summary.csv").set_index("scope")
    results = pd.read_csv(out / "results.csv")
    n_sig = int(((results.regime != "MT-ML") & (results.delta_q_value <= 0.05)).sum())
    assert summary.loc["transfer", "n_significant"] == n_sig and summary.loc["transfer", "n_tested"] == 12
    assert f"{n_sig} of 12 transfer cells changed significantly (FDR 5 %), of which" in html
    assert "Wilson" in html and "win_ci_low" in (report / "tables" / "uplift_intervals.csv").read_text()
    roles = pd.read_csv(report / "tables" / "role_intervals.csv")
    assert set(roles.basis) == {"items"}  # one model: the interval is over items alone
    assert len(pd.read_csv(report / "tables" / "grid_significance.csv")) == 16


def test_analyze_a_release_style_csv_says_intervals_are_unavailable(run, tmp_path, capsys):
    _, out = run
    release = tmp_path / "release.csv"
    pd.read_csv(out / "results.csv")[COLUMNS].to_csv(release, index=False)
    capsys.readouterr()
    assert cli("analyze", "--results", release, "--out", tmp_path / "analysis") == 0
    assert "intervals over items are unavailable" in capsys.readouterr().out
    html = (tmp_path / "analysis" / "report.html").read_text(encoding="utf-8")
    assert "Intervals over items are unavailable" in html
    assert pd.read_csv(tmp_path / "analysis" / "tables" / "significance_summary.csv").empty
