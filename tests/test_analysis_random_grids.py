"""Property test (issue 11, point 6): the whole analysis completes on any valid grid.

A seeded random loop (no extra dependency) draws small grids: 1-9 models, 1-4 tasks, 1-5
languages, missing cells, tied and constant Δ, one seed or several. Each must give every table
without an exception; a few also go through the figures and the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transfergrid.analysis.simulate import (
    REFERENCE_LANGUAGES,
    REFERENCE_MODELS,
    REFERENCE_TASKS,
    simulate_results,
)
from transfergrid.analysis.tables import TABLES, compute_tables

N_GRIDS = 8
EXTRA_MODELS = ["SmolLM2-135M-Instruct", "acme-lm", "Phi-3-mini-4k-instruct"]


def random_grid(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pool = REFERENCE_MODELS + EXTRA_MODELS
    models = list(rng.choice(pool, size=rng.integers(1, 10), replace=False))
    tasks = list(rng.choice(REFERENCE_TASKS, size=rng.integers(1, 5), replace=False))
    langs = list(rng.choice(REFERENCE_LANGUAGES, size=rng.integers(1, 6), replace=False))
    frame = simulate_results(tasks, langs, models, int(rng.integers(1, 4)), seed=seed)
    kind = seed % 4
    delta_cols = ["delta_score_mean", "delta_score_norm_mean"]
    if kind == 1:  # ties: Δ on a coarse lattice, many exactly -1.0 and 0
        frame[delta_cols] = np.round(frame[delta_cols] / 2.0).clip(-1, 1)
    elif kind == 2:  # constant Δ (all cells, or all of one model)
        which = frame["model_name"] == models[0] if rng.random() < 0.5 else slice(None)
        frame.loc[which, delta_cols] = 0.5
    elif kind == 3:  # exactly additive: no residual variance at all
        codes = {c: i for i, c in enumerate(sorted(set(frame["eval_dataset"] + frame["eval_language"])))}
        frame[delta_cols] = np.asarray((frame["eval_dataset"] + frame["eval_language"]).map(codes),
                                       dtype=float)[:, None] * [1.0, 1.0]
    keep = rng.random(len(frame)) >= rng.choice([0.0, 0.1, 0.5])  # missing cells
    return frame.loc[keep].reset_index(drop=True) if keep.any() else frame.head(1)


@pytest.mark.parametrize("seed", range(N_GRIDS))
def test_every_table_on_a_random_grid(seed):
    frame = random_grid(seed)
    tables = compute_tables(frame, urielplus=False, permutations=49)
    assert set(TABLES) <= set(tables)
    uplift = tables["uplift_summary"]
    assert uplift["n"].sum() >= len(frame)  # every cell is counted (transfer + per-regime rows)
    variance = tables["variance_decomposition"]
    sums = variance.dropna(subset=["share"]).groupby(["subset", "scope", "spec"])["share"].sum()
    assert np.allclose(sums, 100.0)


@pytest.mark.parametrize("seed", [3, 5])
def test_figures_and_report_on_a_random_grid(seed, tmp_path):
    from transfergrid.analysis.tables import write_tables
    from transfergrid.report.figures import write_figures
    from transfergrid.report.html import write_report

    tables = compute_tables(random_grid(seed), urielplus=False, permutations=49)
    write_tables(tables, tmp_path / "tables")
    figures = write_figures(tables, tmp_path / "figures")
    report = write_report(tmp_path, tables, figures, title="random grid")
    assert report.read_text(encoding="utf-8").count("<table") >= 1
