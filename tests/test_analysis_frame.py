"""The tidy cell frame: reading, validation errors, derived columns, the headline Δ."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from transfergrid.analysis.frame import (
    RESULT_COLUMNS,
    headline_delta,
    prepare,
    read_results,
    write_results,
)
from transfergrid.analysis.simulate import simulate_results
from transfergrid.errors import DataError, UserError


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    return simulate_results(["arc_challenge", "global_mmlu", "truthfulqa"], ["en", "de", "fr"],
                            ["Qwen2.5-0.5B-Instruct", "Llama-3.1-8B-Instruct", "gemma-3-4b-it"], 2, seed=3)


def test_round_trip_keeps_every_value(grid, tmp_path):
    path = write_results(grid, tmp_path / "r.csv")
    back = read_results(path)
    assert list(back.columns) == RESULT_COLUMNS
    pd.testing.assert_frame_equal(back, grid.reset_index(drop=True), check_dtype=False, atol=1e-12)


def test_missing_column_is_named(grid, tmp_path):
    path = tmp_path / "r.csv"
    grid.drop(columns=["eval_language"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"r\.csv.*eval_language"):
        read_results(path)


def test_bad_number_names_line_and_column(grid, tmp_path):
    bad = grid.copy()
    bad["score_mean"] = bad["score_mean"].astype(object)
    bad.loc[4, "score_mean"] = "n/a?"
    path = tmp_path / "r.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"r\.csv:6, field 'score_mean': expected a number, got 'n/a\?'"):
        read_results(path)


def test_unknown_regime_label_is_named(grid, tmp_path):
    bad = grid.copy()
    bad.loc[2, "regime"] = "XX-YY"
    path = tmp_path / "r.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"r\.csv:4, field 'regime': unknown regime label 'XX-YY'"):
        read_results(path)


def test_known_regime_spellings_are_mapped_and_checked(grid, tmp_path):
    other = grid.copy()
    other["regime"] = other["regime"].map({"CT-ML": "ML-CT"}).fillna(other["regime"])
    path = tmp_path / "r.csv"
    other.to_csv(path, index=False)
    assert set(read_results(path)["regime"]) == {"MT-ML", "MT-CL", "CT-ML", "CT-CL"}
    wrong = grid.copy()
    i = int(np.flatnonzero(grid["regime"] == "CT-CL")[0])
    wrong.loc[i, "regime"] = "MT-CL"
    wrong.to_csv(path, index=False)
    with pytest.raises(DataError, match=rf"r\.csv:{i + 2}.*disagrees with its cells.*is CT-CL"):
        read_results(path)


def test_duplicate_cell_and_missing_file(grid, tmp_path):
    path = tmp_path / "r.csv"
    pd.concat([grid, grid.iloc[[7]]]).to_csv(path, index=False)
    with pytest.raises(DataError, match="a second row for the same cell"):
        read_results(path)
    with pytest.raises(UserError, match="not found"):
        read_results(tmp_path / "nope.csv")


def test_headline_delta_uses_acc_norm_only_where_the_task_has_it():
    frame = pd.DataFrame({"eval_dataset": ["arc_challenge", "m_hellaswag", "global_mmlu", "truthfulqa", "arc"],
                          "delta_score_mean": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "delta_score_norm_mean": [10.0, 20.0, 30.0, np.nan, np.nan]})
    assert headline_delta(frame).tolist() == [10.0, 20.0, 3.0, 4.0, 5.0]
    assert headline_delta(frame, "acc").tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_prepare_derives_cells_family_size_and_construction(grid):
    p = prepare(grid.assign(model_size=np.nan))  # sizes come from the names then
    row = p.loc[(p["model_name"] == "Llama-3.1-8B-Instruct") & (p["source"] == "global_mmlu:de")
                & (p["target"] == "arc_challenge:de")].iloc[0]
    assert (row["family"], row["size_b"], row["size_bucket"], row["regime"]) == ("llama", 8.0, "L", "CT-ML")
    assert row["construction"] == "translated"
    assert row["delta"] == row["delta_score_norm_mean"]
    sizes = p.groupby("model_name")["size_bucket"].first().to_dict()
    assert sizes == {"Qwen2.5-0.5B-Instruct": "S", "Llama-3.1-8B-Instruct": "L", "gemma-3-4b-it": "M"}
    assert set(p.loc[p["eval_dataset"] == "global_mmlu", "construction"]) == {"curated"}
    assert prepare(grid, {"gemma-3-4b-it": "g3"}).query("model_name == 'gemma-3-4b-it'")["family"].eq("g3").all()


def test_model_size_strings_are_parsed(grid, tmp_path):
    other = grid.copy()
    other["model_size"] = other["model_size"].map(lambda s: f"{s:g}B")
    path = tmp_path / "r.csv"
    other.to_csv(path, index=False)
    assert read_results(path)["model_size"].tolist() == grid["model_size"].tolist()


def test_acc_norm_and_construction_are_the_data_registry_s_in_every_spelling(monkeypatch):
    from transfergrid.analysis import frame
    from transfergrid.data.registry import BENCHMARKS

    spellings = {"arc_challenge": ["m_arc", "ARC"], "hellaswag": ["m_hellaswag"], "global_mmlu_lite": ["Global-MMLU"],
                 "truthfulqa_mc1": ["m_truthfulqa", "truthfulqa"], "mmlu": ["m_mmlu"]}
    for name, bench in BENCHMARKS.items():
        for spelling in [name, *spellings.get(name, [])]:
            assert (frame.has_norm(spelling), frame.construction(spelling)) == (bench.has_norm, bench.construction)
    assert (frame.has_norm("unknown_set"), frame.construction("unknown_set")) == (False, "translated")
    # the frame holds no copy: a registry change shows in the frame
    monkeypatch.setitem(BENCHMARKS, "xcopa", dataclasses.replace(BENCHMARKS["xcopa"], construction="translated"))
    assert frame.construction("xcopa") == "translated"
