"""Uplift, win and harm rates on a hand-worked grid (tests/_analysis_grid.py)."""

from __future__ import annotations

import pytest
from _analysis_grid import hand_grid

from transfergrid.analysis.rates import (
    harm_breakdown,
    harm_rate,
    rule,
    uplift_summary,
    win_rate,
)


def test_uplift_summary_by_hand():
    table = uplift_summary(hand_grid()).set_index("scope")
    # MT-CL cells: 2, -2, 1, 3 (model 1) and 0, 2, 2, -1 (model 2).
    assert table.loc["MT-CL"].to_dict() == pytest.approx(
        {"n": 8, "mean": 0.875, "median": 1.5, "win_rate": 62.5, "harm_rate": 25.0})
    # CT-ML: -1, 1, -1.5, 0.5 | 2, -1, 0, 1.
    assert table.loc["CT-ML"].to_dict() == pytest.approx(
        {"n": 8, "mean": 0.125, "median": 0.25, "win_rate": 50.0, "harm_rate": 37.5})
    # CT-CL: 0.5, -1, 0, 0 | -3, 0, 1, -2.
    assert table.loc["CT-CL"].to_dict() == pytest.approx(
        {"n": 8, "mean": -0.5625, "median": 0.0, "win_rate": 25.0, "harm_rate": 37.5})
    assert table.loc["transfer"].to_dict() == pytest.approx(
        {"n": 24, "mean": 3.5 / 24, "median": 0.0, "win_rate": 100 * 11 / 24, "harm_rate": 100 * 8 / 24})
    assert table.loc["MT-ML"].to_dict() == pytest.approx(
        {"n": 8, "mean": 2.75, "median": 2.5, "win_rate": 100.0, "harm_rate": 0.0})
    assert list(table.index) == ["transfer", "MT-ML", "MT-CL", "CT-ML", "CT-CL"]


def test_default_rule_is_the_references_exact_comparison():
    # Δ > 0 and Δ <= -1.0 with no tolerance: float noise falls where it falls, as in the release.
    assert win_rate([0.0, 1e-12, 0.3]) == pytest.approx(200 / 3)
    assert harm_rate([-1.0, -0.9999999999999998, -0.99, -2.0]) == 50.0


def test_tolerance_is_an_opt_in_option():
    assert win_rate([0.0, 1e-12, 0.3], tolerance=1e-9) == pytest.approx(100 / 3)
    assert harm_rate([-1.0, -0.9999999999999998, -0.99, -2.0], tolerance=1e-9) == 75.0
    assert "exact" in rule() and "1e-09" in rule(1e-9)


def test_harm_breakdown_by_hand():
    table = harm_breakdown(hand_grid()).set_index(["dimension", "value"])
    # MT-CL cells into English: B->A (-2, 2) and D->C (3, -1).
    assert table.loc[("eval_language", "en")].to_dict() == pytest.approx(
        {"n": 4, "mean": 0.5, "median": 0.5, "win_rate": 50.0, "harm_rate": 50.0})
    # All MT-CL cells: 2, -2, 1, 3 | 0, 2, 2, -1 -> sorted -2 -1 0 1 2 2 2 3, median 1.5.
    assert table.loc[("all", "all")].to_dict() == pytest.approx(
        {"n": 8, "mean": 0.875, "median": 1.5, "win_rate": 62.5, "harm_rate": 25.0})
    assert table.loc[("family", "qwen")].to_dict() == pytest.approx(
        {"n": 4, "mean": 1.0, "median": 1.5, "win_rate": 75.0, "harm_rate": 25.0})
    assert table.loc[("size_bucket", "L")].to_dict() == pytest.approx(
        {"n": 4, "mean": 0.75, "median": 1.0, "win_rate": 50.0, "harm_rate": 25.0})
    # Curated = Global-MMLU targets: C->D (1, 2) and D->C (3, -1).
    assert table.loc[("construction", "curated")].to_dict() == pytest.approx(
        {"n": 4, "mean": 1.25, "median": 1.5, "win_rate": 75.0, "harm_rate": 25.0})
    assert set(table.index.get_level_values(0)) == {"all", "eval_language", "eval_dataset", "size_bucket", "family",
                                                    "construction"}
