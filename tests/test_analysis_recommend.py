"""Risk-aware source recommendations, on the hand-worked grid (tests/_analysis_grid.py)."""

from __future__ import annotations

import pytest
from _analysis_grid import hand_grid

from transfergrid.analysis.recommend import recommend
from transfergrid.errors import UserError
from transfergrid.records import Cell


def test_ranking_by_hand():
    table = recommend(hand_grid(), ["arc:de"]).set_index("source")  # "arc" finds arc_challenge
    # Δ on arc_challenge:de per source: A 2|0, B 4|2, C 0|-2, D 0.5|1 (model 1 | model 2).
    assert table.loc["arc_challenge:de", ["gain", "gain_se", "gain_lower", "worst_case"]].tolist() == \
        pytest.approx([3.0, 1.0, 2.0, 2.0])
    assert table.loc["global_mmlu:de", ["gain", "gain_se", "gain_lower"]].tolist() == pytest.approx([0.75, 0.25, 0.5])
    assert list(table.index) == ["arc_challenge:de", "global_mmlu:de", "arc_challenge:en", "global_mmlu:en"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    # Off target for source B: A, C, D = -2, 0, -1.5 | 2, 1, 0.
    row = table.loc["arc_challenge:de"]
    assert (row["off_target_mean"], row["off_target_harm_rate"], row["n_off_target"]) == \
        pytest.approx((-0.5 / 6, 100 / 3, 6))


def test_harm_tolerance_drops_risky_sources():
    table = recommend(hand_grid(), [Cell("arc_challenge", "de")], max_harm=40)
    # Harm rates off target: A 50 %, B 33 %, C 25 %, D 50 %.
    assert table["source"].tolist() == ["arc_challenge:de", "global_mmlu:en"]


def test_unknown_target_is_a_user_error():
    with pytest.raises(UserError, match="target mgsm:de is not a target cell"):
        recommend(hand_grid(), ["mgsm:de"])
    with pytest.raises(UserError, match="TASK:LANG"):
        recommend(hand_grid(), ["arc_challenge"])
