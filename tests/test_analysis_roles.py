"""Donor and recipient scores, on-task vs off-task, matrices: hand-worked grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _analysis_grid import hand_grid

from transfergrid.analysis.matrices import grid_matrix, language_matrix, task_matrix
from transfergrid.analysis.roles import (
    curated_vs_translated,
    family_roles,
    language_roles,
    on_off_task,
    task_roles,
)
from transfergrid.analysis.simulate import simulate_results


def test_language_roles_by_hand():
    t = language_roles(hand_grid()).set_index("language")
    # Donor en: MT-CL from English, A->B and C->D: model 1 (2 + 1)/2 = 1.5, model 2 (0 + 2)/2 = 1.
    assert t.loc["en"].to_dict() == pytest.approx(
        {"donor": 1.25, "donor_se": 0.25, "recipient": 0.5, "recipient_se": 0.0, "n_models": 2})
    assert t.loc["de", "donor"] == pytest.approx(0.5)
    assert t.loc["de", "recipient"] == pytest.approx(1.25)


def test_task_roles_by_hand():
    t = task_roles(hand_grid()).set_index("task")
    # Donor arc: CT-ML A->C, B->D: model 1 (-1 - 1.5)/2 = -1.25, model 2 (2 + 0)/2 = 1.
    assert t.loc["arc_challenge"].to_dict() == pytest.approx(
        {"donor": -0.125, "donor_se": 1.125, "recipient": 0.375, "recipient_se": 0.375, "n_models": 2})
    assert t.loc["global_mmlu", "donor"] == pytest.approx(0.375)


def test_single_model_has_no_se_and_family_roles_split_models():
    grid = hand_grid()
    one = language_roles(grid[grid["model_name"] == "Qwen2.5-0.5B-Instruct"])
    assert one["donor_se"].isna().all() and (one["n_models"] == 1).all()
    fam = family_roles(grid).set_index(["family", "unit", "name"])
    assert fam.loc[("qwen", "language", "en"), "donor"] == pytest.approx(1.5)
    assert fam.loc[("llama", "task", "arc_challenge"), "donor"] == pytest.approx(1.0)


def test_on_off_task_by_hand():
    t = on_off_task(hand_grid()).set_index(["model_name", "source_task", "source_lang"])
    row = t.loc[("Qwen2.5-0.5B-Instruct", "arc_challenge", "en")]
    # On task: A->B = 2. Off task: A->C = -1, A->D = 0.5.
    assert (row["mt_cl_mean"], row["off_task_mean"], row["off_task_harm_rate"]) == pytest.approx((2, -0.25, 50))
    assert (row["n_mt_cl"], row["n_off_task"]) == (1, 2)
    assert len(t) == 8


def test_matrices_by_hand():
    g = grid_matrix(hand_grid()).set_index("source")
    assert list(g.index) == sorted(g.columns) == sorted(["arc_challenge:en", "arc_challenge:de",
                                                        "global_mmlu:en", "global_mmlu:de"])
    assert g.loc["arc_challenge:en", "arc_challenge:en"] == 2.0  # (3 + 1) / 2
    assert g.loc["global_mmlu:de", "arc_challenge:en"] == -0.5
    lang = language_matrix(hand_grid()).set_index("source_lang")
    assert lang.loc["en", "de"] == pytest.approx(1.25) and np.isnan(lang.loc["en", "en"])
    task = task_matrix(hand_grid()).set_index("source_task")
    assert task.loc["arc_challenge", "global_mmlu"] == pytest.approx(-0.125)
    assert np.isnan(task.loc["arc_challenge", "arc_challenge"])


def test_curated_vs_translated():
    assert curated_vs_translated(hand_grid()).empty  # two languages: too few to correlate
    sim = simulate_results(["arc_challenge", "global_mmlu"], ["en", "de", "fr", "es", "it"], 3, 1, seed=2)
    out = curated_vs_translated(sim)
    p = sim.assign(delta=sim["delta_score_norm_mean"].fillna(sim["delta_score_mean"]))
    mtcl = p[(p["fine_tuned_dataset"] == p["eval_dataset"]) & (p["fine_tuned_language"] != p["eval_language"])]
    donor = mtcl.groupby(["eval_dataset", "fine_tuned_language", "model_name"])["delta"].mean() \
        .groupby(level=[0, 1]).mean().unstack(0)
    from scipy.stats import spearmanr
    expect = spearmanr(donor["global_mmlu"], donor["arc_challenge"])
    assert out.iloc[0].to_dict() == pytest.approx({"rho": expect.statistic, "p": expect.pvalue, "n": 5})
    assert isinstance(out, pd.DataFrame)
