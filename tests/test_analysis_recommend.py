"""Risk-aware source recommendations, on the hand-worked grid (tests/_analysis_grid.py), and what
`transfergrid recommend` prints (a table for people, csv / json for scripts)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pandas as pd
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


# --- the `recommend` command's output: whole key cells in a pipe or a narrow terminal, csv / json --------
def _results_csv(tmp_path):
    from transfergrid.analysis.frame import write_results
    from transfergrid.analysis.simulate import simulate_results

    frame = simulate_results(["arc_challenge", "global_mmlu_lite"], ["en", "es", "hi"],
                             ["Qwen2.5-0.5B-Instruct", "Llama-3.2-1B-Instruct"], seeds=2, seed=7)
    return write_results(frame, tmp_path / "results.csv")


def test_recommend_in_a_narrow_pipe_prints_every_source_whole(tmp_path):
    results = _results_csv(tmp_path)
    args = [sys.executable, "-m", "transfergrid", "recommend", "--results", str(results),
            "--targets", "arc_challenge:hi", "--top", "6"]
    env = {**os.environ, "COLUMNS": "60", "PYTHONPATH": os.pathsep.join(sys.path)}
    table = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    expected = recommend(pd.read_csv(results), ["arc_challenge:hi"])
    for source in expected["source"]:  # six sources: every one of them reads whole, on its own row
        assert re.search(rf"│\s+\d+\s+│ {re.escape(source)}\s+│", table), table
    # nothing cut or left out, not even a header
    assert "…" not in table and "left out" not in table and re.search(r"┃ off_target_harm_rate\s+┃", table)
    # csv and json: the ranking itself, every column, parsed back
    csv_out = subprocess.run([*args, "--format", "csv"], capture_output=True, text=True, env=env, check=True).stdout
    parsed = pd.read_csv(io.StringIO(csv_out))
    pd.testing.assert_frame_equal(parsed, expected, check_dtype=False)
    json_out = subprocess.run([*args, "--format", "json"], capture_output=True, text=True, env=env, check=True).stdout
    records = json.loads(json_out)
    assert [r["source"] for r in records] == expected["source"].tolist()
    assert [r["gain"] for r in records] == pytest.approx(expected["gain"].tolist())


def test_a_narrow_terminal_keeps_the_key_columns_whole():
    from rich.console import Console

    from transfergrid.cli.tables import print_table

    columns = ["rank", "source", "gain", "gain_lower", "off_target_harm_rate", "n_off_target"]
    rows = [["1", "global_mmlu_lite:es", "1.67", "1.12", "0.00", "12"],
            ["2", "arc_challenge:es", "1.42", "0.76", "41.67", "12"]]
    for width in (60, 40):
        console = Console(width=width, force_terminal=True, color_system=None, record=True)
        print_table(console, "t", columns, rows, key={"rank", "source"}, numeric={"rank", "gain"})
        text = console.export_text()
        assert "global_mmlu_lite:es" in text and "arc_challenge:es" in text and "…" not in text
        assert max(map(len, text.splitlines())) <= width
        if width == 40:  # no room for the values: columns are left out, and a line says which
            assert "left out to fit the terminal" in text and "n_off_target" in text
        else:  # every value whole (headers fold)
            assert "41.67" in text and "1.12" in text and "left out" not in text


def test_recommend_rejects_an_unknown_format(tmp_path, capsys):
    from transfergrid.cli import main

    with pytest.raises(SystemExit) as info:
        main(["recommend", "--results", str(_results_csv(tmp_path)), "-t", "arc_challenge:hi", "--format", "xml"])
    assert info.value.code == 2 and "--format 'xml': expected one of table, csv, json" in capsys.readouterr().err
