"""The paper's ablations (analysis/ablation.py, `transfergrid compare`) on hand-built result sets."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import transfergrid.cli.commands  # noqa: F401  (registers the commands on the app)
from transfergrid.analysis.ablation import compare
from transfergrid.analysis.frame import write_results
from transfergrid.cli import main
from transfergrid.cli.app import app
from transfergrid.errors import UserError

RELEASE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dnr_release" / "transfer_results.csv"
MODEL = "Qwen2.5-0.5B-Instruct"
# Sources arc_challenge:en (A) and arc_challenge:de (B) on targets A, B and global_mmlu:en (C):
# A→A MT-ML, A→B MT-CL, A→C CT-ML, B→A MT-CL, B→B MT-ML, B→C CT-CL.
CELLS = [("arc_challenge", "en", "arc_challenge", "en"), ("arc_challenge", "en", "arc_challenge", "de"),
         ("arc_challenge", "en", "global_mmlu", "en"), ("arc_challenge", "de", "arc_challenge", "en"),
         ("arc_challenge", "de", "arc_challenge", "de"), ("arc_challenge", "de", "global_mmlu", "en")]
R32_NORM = [3, -1, 0, 2, 4, -2]
R64_NORM = [4, -0.9999999999999998, 1, 2, 5, -3]  # float noise: -1 - 2e-16 is not harm (Δ ≤ -1.0 exactly)
LORA_ACC = [1, 0, -1, 2, 3, -2]
FULL_ACC = [2, 1, -1, -1, 3, 0]

runner = CliRunner()


def result_set(norm, acc=None, model=MODEL, cells=CELLS) -> pd.DataFrame:
    acc = norm if acc is None else acc
    return pd.DataFrame([{"model_name": model, "fine_tuned_dataset": s, "fine_tuned_language": sl,
                          "eval_dataset": t, "eval_language": tl, "delta_score_norm_mean": float(n),
                          "delta_score_mean": float(a)} for (s, sl, t, tl), n, a in zip(cells, norm, acc)])


def textbook_pearson(x, y) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def test_rank_distribution_matches_hand_values():
    _, tables = compare({"r32": result_set(R32_NORM), "r64": result_set(R64_NORM)}, "rank")
    dist = tables["rank_distribution"].set_index("set")
    # r32 sorted: -2 -1 0 2 3 4; quantiles by linear interpolation at (n-1)·q
    assert dist.loc["r32", ["n", "mean", "median", "p10", "p25", "p75", "p90"]].tolist() == \
        pytest.approx([6, 1.0, 1.0, -1.5, -0.75, 2.75, 3.5])
    assert dist.loc["r32", "harm_rate"] == pytest.approx(100 * 2 / 6)
    assert dist.loc["r32", "win_rate"] == pytest.approx(50.0)
    assert dist.loc["r64", "harm_rate"] == pytest.approx(100 * 1 / 6)  # -0.9999999999999998 is not harm


def test_rank_regime_split_matches_hand_values():
    _, tables = compare({"r32": result_set(R32_NORM), "r64": result_set(R64_NORM)}, "rank")
    reg = tables["rank_regimes"]
    r32 = reg[reg["set"] == "r32"].set_index("regime")
    assert list(r32.index) == ["MT-ML", "MT-CL", "off-task"]
    assert r32["n"].tolist() == [2, 2, 2]
    assert r32["mean"].tolist() == pytest.approx([3.5, 0.5, -1.0])
    assert r32["harm_rate"].tolist() == pytest.approx([0.0, 50.0, 50.0])


def test_rank_correlation_pairs_cells_against_the_first_set():
    r128 = result_set(R64_NORM[:5], cells=CELLS[:5])  # one cell fewer: pairs on the 5 shared cells
    _, tables = compare({"r32": result_set(R32_NORM), "r64": result_set(R64_NORM), "r128": r128}, "rank")
    corr = tables["rank_correlation"].set_index("set")
    assert list(corr["reference"]) == ["r32", "r32"]
    assert corr.loc["r64", "n_cells"] == 6 and corr.loc["r128", "n_cells"] == 5
    assert corr.loc["r64", "pearson_acc_norm"] == pytest.approx(textbook_pearson(R32_NORM, R64_NORM))
    assert corr.loc["r128", "pearson_acc_norm"] == pytest.approx(textbook_pearson(R32_NORM[:5], R64_NORM[:5]))
    # differences r64 − r32: 1 0 1 0 1 -1
    assert corr.loc["r64", ["mean_diff", "median_diff"]].tolist() == pytest.approx([2 / 6, 0.5])
    assert corr.loc["r64", "sign_agreement"] == pytest.approx(100 * 5 / 6)  # 0 vs + at A→C
    paired = tables["paired_cells"]
    assert len(paired) == 6 and paired["delta_r128"].isna().sum() == 1


def test_common_only_restricts_distributions_to_shared_cells():
    r64 = result_set(R64_NORM[:5], cells=CELLS[:5])
    _, tables = compare({"r32": result_set(R32_NORM), "r64": r64}, "rank", common_only=True)
    dist = tables["rank_distribution"].set_index("set")
    assert dist.loc["r32", "n"] == 5 and dist.loc["r32", "mean"] == pytest.approx(8 / 5)


def test_fullft_uses_the_acc_delta_for_sign_and_difference():
    lora = result_set(R32_NORM, LORA_ACC)
    full = result_set(R64_NORM, FULL_ACC)
    kind, tables = compare({"lora": lora, "full_ft": full})  # auto: a label says "full"
    assert kind == "fullft"
    row = tables["fullft_comparison"].iloc[0]
    assert row["n_cells"] == 6
    assert row["sign_agreement"] == pytest.approx(50.0)  # agree at A→A, A→C, B→B
    assert row["mean_diff"] == pytest.approx(-1 / 6)  # lora − full: -1 -1 0 3 0 -2
    assert row["median_diff"] == pytest.approx(-0.5)
    assert row["pearson_acc"] == pytest.approx(textbook_pearson(LORA_ACC, FULL_ACC))
    assert row["pearson_acc_norm"] == pytest.approx(textbook_pearson(R32_NORM, R64_NORM))


def test_cells_pair_across_task_spellings():
    other = result_set(R64_NORM)
    other["fine_tuned_dataset"] = other["fine_tuned_dataset"].replace("arc_challenge", "m_arc")
    _, tables = compare({"r32": result_set(R32_NORM), "r64": other}, "rank")
    assert tables["rank_correlation"]["n_cells"].iloc[0] == 6


def test_no_shared_cell_is_a_user_error():
    with pytest.raises(UserError, match="share no"):
        compare({"a": result_set(R32_NORM), "b": result_set(R32_NORM, model="gemma-3-1b-it")}, "rank")
    with pytest.raises(UserError, match="exactly two"):
        compare({"a": result_set(R32_NORM), "b": result_set(R32_NORM), "c": result_set(R32_NORM)}, "fullft")


def _csv(tmp_path, name, frame) -> str:
    return str(write_results(frame, tmp_path / name))


def test_compare_command_writes_csv_markdown_latex(tmp_path):
    a, b = _csv(tmp_path, "r32.csv", result_set(R32_NORM)), _csv(tmp_path, "r64.csv", result_set(R64_NORM))
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", "--results", a, "--results", b, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Per-cell agreement with r32" in result.output
    for stem in ("rank_distribution", "rank_regimes", "rank_correlation"):
        assert {(out / f"{stem}.{ext}").is_file() for ext in ("csv", "md", "tex")} == {True}
    assert "\\begin{tabular}" in (out / "rank_correlation.tex").read_text()
    table = pd.read_csv(out / "rank_distribution.csv")
    assert table["mean"].tolist() == pytest.approx([1.0, 8 / 6])


def _run_main(*args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


def test_compare_errors_are_one_line_exit_2(tmp_path, capsys):
    a = _csv(tmp_path, "a.csv", result_set(R32_NORM))
    b = _csv(tmp_path, "b.csv", result_set(R32_NORM, model="gemma-3-1b-it"))
    out = tmp_path / "cmp"
    code, err = _run_main("compare", "-r", a, "-r", b, "--out", str(out), capsys=capsys)
    assert code == 2 and "share no" in err and "Traceback" not in err and not out.exists()
    code, err = _run_main("compare", "-r", a, "-r", a, "--out", str(out), capsys=capsys)
    assert code == 2 and "distinct labels" in err
    code, err = _run_main("compare", "-r", a, "-r", b, "-l", "x", "--out", str(out), capsys=capsys)
    assert code == 2 and "one label per" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("model_name,whatever\nx,1\n")
    code, err = _run_main("compare", "-r", a, "-r", str(bad), "--out", str(out), capsys=capsys)
    assert code == 2 and "bad.csv" in err and "missing required column" in err


@pytest.mark.skipif(not RELEASE.is_file(), reason=f"the paper's released results are not at {RELEASE}")
def test_release_against_itself_agrees_perfectly(tmp_path):
    out = tmp_path / "self"
    result = runner.invoke(app, ["compare", "-r", str(RELEASE), "-r", str(RELEASE), "-l", "lora", "-l", "full",
                                 "--kind", "fullft", "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out / "fullft_comparison.csv").iloc[0]
    assert row["n_cells"] == 17424
    assert row["pearson_acc"] == pytest.approx(1.0, abs=1e-12)
    assert row["pearson_acc_norm"] == pytest.approx(1.0, abs=1e-12)
    assert row["sign_agreement"] == 100.0
    assert row["mean_diff"] == 0.0 and row["median_diff"] == 0.0


def test_two_spellings_of_one_task_in_one_set_is_a_user_error():
    frame = pd.concat([result_set(R32_NORM), result_set(R32_NORM).replace({"fine_tuned_dataset": {"arc_challenge": "arc"}})])
    with pytest.raises(UserError, match="r32: two rows for the cell"):
        compare({"r32": frame, "r64": result_set(R64_NORM)}, "rank")
