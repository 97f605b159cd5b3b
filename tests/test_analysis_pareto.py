"""The reference's on/off-task (Pareto) tables and language-family / construction roles, on the
hand-worked grid of tests/_analysis_grid.py (numbers worked out by hand in the comments)."""

from __future__ import annotations

import pytest
from _analysis_grid import M1, hand_grid

from transfergrid.analysis import pareto
from transfergrid.analysis.roles import language_family_roles, language_roles_on


def test_task_on_off_summary_by_hand():
    table = pareto.task_on_off_summary(hand_grid()).set_index("source_task")
    # arc sources: on (MT-CL) 2, -2 | 0, 2; off: -1, 0.5, 0, -1.5 | 2, -3, 1, 0.
    assert table.loc["arc_challenge"].to_dict() == pytest.approx(
        {"on_mean": 0.5, "on_win_rate": 50.0, "on_harm_rate": 25.0, "off_mean": -0.25, "off_win_rate": 37.5,
         "off_harm_rate": 37.5, "n_on": 4, "n_off": 8})
    # global_mmlu sources: on 1, 3 | 2, -1; off 1, 0, -1, 0.5 | -1, -2, 0, 1.
    assert table.loc["global_mmlu"].to_dict() == pytest.approx(
        {"on_mean": 1.25, "on_win_rate": 75.0, "on_harm_rate": 25.0, "off_mean": -0.1875, "off_win_rate": 37.5,
         "off_harm_rate": 37.5, "n_on": 4, "n_off": 8})


def test_profiles_keep_the_references_minimum_counts(monkeypatch):
    assert pareto.pareto_profiles(hand_grid()).empty  # 1 MT-CL cell per adapter < 3
    monkeypatch.setattr(pareto, "MIN_ON", 1)
    monkeypatch.setattr(pareto, "MIN_OFF", 2)
    prof = pareto.pareto_profiles(hand_grid()).set_index(["model_name", "source_task", "source_lang"])
    assert len(prof) == 8
    # M1 arc:en: on A->B = 2; off A->C -1, A->D 0.5 (one harmful of two).
    assert prof.loc[(M1, "arc_challenge", "en"), ["mt_cl_mean", "off_task_mean", "off_task_harm_rate"]].tolist() \
        == pytest.approx([2.0, -0.25, 50.0])
    summary = pareto.pareto_family_summary(prof.reset_index()).set_index(["model_name", "source_task"])
    # M1 arc: en (2, -0.25) and de (B->A -2; off 0, -1.5 -> -0.75) averaged.
    assert summary.loc[(M1, "arc_challenge"), ["mt_cl_mean", "off_task_mean", "n_languages"]].tolist() \
        == pytest.approx([0.0, -0.5, 2])
    assert summary.loc[(M1, "arc_challenge"), "size_b"] == 0.5
    rows = pareto.appendix_latex_rows(pareto.pareto_appendix(prof.reset_index())).splitlines()
    assert f"{M1} & arc\\_challenge & de & -2.00 & -0.75 \\\\" in rows and len(rows) == 8


def test_language_family_and_construction_roles_by_hand():
    # MT-CL donors: en gives A->B, C->D (M1 2, 1; M2 0, 2) = 1.25; de gives B->A, D->C (M1 -2, 3; M2 2, -1) = 0.5.
    fam = language_family_roles(hand_grid()).set_index("language_family")
    assert fam.loc["Germanic"].to_dict() == pytest.approx({"donor": 0.875, "recipient": 0.875, "n_languages": 2})
    curated = language_roles_on(hand_grid(), "curated").set_index("language")
    # Global-MMLU targets only: en gives C->D (1, 2), de gives D->C (3, -1).
    assert curated.loc["de", ["donor", "recipient"]].tolist() == pytest.approx([1.0, 1.5])
    assert curated.loc["en", ["donor", "recipient"]].tolist() == pytest.approx([1.5, 1.0])
    translated = language_roles_on(hand_grid(), "translated").set_index("language")
    assert translated.loc["en", "donor"] == pytest.approx(1.0)  # A->B: 2, 0
