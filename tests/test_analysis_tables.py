"""compute_tables / write_tables: every table, ragged and degenerate grids, the files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _analysis_grid import hand_grid

from transfergrid.analysis.composition import TABLES as COMPOSITION_TABLES
from transfergrid.analysis.intervals import NEEDS_CELL_UNCERTAINTY
from transfergrid.analysis.simulate import simulate_results
from transfergrid.analysis.tables import (
    SUMMARY_TABLES,
    TABLE_COLUMNS,
    TABLES,
    compute_tables,
    write_tables,
)


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    return simulate_results(["arc_challenge", "global_mmlu", "hellaswag"], ["en", "de", "fr", "es"],
                            ["Qwen2.5-0.5B-Instruct", "Qwen2.5-7B-Instruct", "gemma-3-4b-it"], 2, seed=11)


def test_every_table_with_its_columns(sim, tmp_path):
    tables = compute_tables(sim, urielplus=False, permutations=199)
    assert list(tables) == list(TABLES)
    for name, table in tables.items():
        assert list(table.columns[:len(TABLE_COLUMNS[name])]) == TABLE_COLUMNS[name], name
        # a simulated release-style frame has no per-cell tests (tests/test_uncertainty*.py cover them)
        assert not table.empty or name in NEEDS_CELL_UNCERTAINTY or name in COMPOSITION_TABLES, name  # no sets
    assert tables["grid_matrix"].shape == (12, 13)
    # 3 models × 12 cells: each subset's "transfer" fit, and its regimes with >= 50 cells (the
    # reference's minimum): all: MT-CL 108, CT-ML 72, CT-CL 216; curated (source or target is global_mmlu):
    # MT-CL 36 and CT-ML 48 (skipped), CT-CL 144; translated: MT-CL 72, CT-ML 24 (skipped), CT-CL 72.
    fits = tables["variance_decomposition"].groupby(["subset", "scope"]).size() / (2 * 4)
    assert fits.to_dict() == {(s, r): 1 for s, r in [
        ("all", "transfer"), ("all", "MT-CL"), ("all", "CT-ML"), ("all", "CT-CL"), ("curated", "transfer"),
        ("curated", "CT-CL"), ("translated", "transfer"), ("translated", "MT-CL"),
        ("translated", "CT-CL")]}
    written = write_tables(tables, tmp_path / "tables")
    names = {p.name for p in written}
    assert {f"{t}.csv" for t in TABLES} <= names
    assert {f"{t}.md" for t in SUMMARY_TABLES} | {f"{t}.tex" for t in SUMMARY_TABLES} <= names
    back = pd.read_csv(tmp_path / "tables" / "uplift_summary.csv")
    pd.testing.assert_frame_equal(back, tables["uplift_summary"], check_dtype=False)
    assert "\\begin{tabular}" in (tmp_path / "tables" / "uplift_summary.tex").read_text()
    rows = (tmp_path / "tables" / "pareto_appendix.tex").read_text().splitlines()
    assert len(rows) == len(tables["pareto_appendix"]) and rows[0].endswith(" \\\\") and rows[0].count(" & ") == 4
    assert not list((tmp_path / "tables").glob(".*.tmp"))


def test_ragged_grid_single_seed_and_single_model(sim):
    ragged = sim.drop(sim.sample(frac=0.3, random_state=0).index)
    ragged = ragged[~((ragged["model_name"] == "gemma-3-4b-it") & (ragged["eval_language"] == "fr"))]
    tables = compute_tables(ragged, distance=False)
    assert tables["uplift_summary"].loc[0, "n"] == (ragged["fine_tuned_dataset"] != ragged["eval_dataset"]).sum() + \
        ((ragged["fine_tuned_dataset"] == ragged["eval_dataset"])
         & (ragged["fine_tuned_language"] != ragged["eval_language"])).sum()
    assert tables["ling_correlation"].empty and tables["consistency"]["index"].notna().any()

    one = simulate_results(["arc_challenge", "global_mmlu"], ["en", "de", "fr"], ["Qwen2.5-0.5B-Instruct"], 1)
    assert one["delta_score_norm_se"].isna().all()  # one seed: SE absent, not zero
    tables = compute_tables(one, distance=False)
    assert tables["consistency"].empty and tables["consistency_summary"].empty  # needs 2 models
    assert tables["language_roles"]["donor_se"].isna().all()
    assert not tables["variance_decomposition"].empty


def test_hand_grid_without_curated_pairs_or_languages():
    grid = hand_grid()
    no_curated = grid[(grid["eval_dataset"] != "global_mmlu")]
    tables = compute_tables(no_curated, variance=False, distance=False)
    assert tables["curated_vs_translated"].empty
    assert list(tables["curated_vs_translated"].columns) == ["rho", "p", "n"]
    assert tables["variance_decomposition"].empty and tables["harm_breakdown"]["n"].sum() > 0
    assert np.isclose(tables["uplift_summary"].set_index("scope").loc["MT-CL", "mean"], (2 - 2 + 0 + 2) / 4)
