"""`transfergrid analyze | report | recommend` on a small simulated grid in the released schema."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import transfergrid.cli.commands  # noqa: F401  (registers the commands on the app)
from transfergrid.analysis.frame import write_results
from transfergrid.analysis.simulate import simulate_results
from transfergrid.cli import main
from transfergrid.cli.app import app
from transfergrid.errors import UserError
from transfergrid.report.figures import FIGURES

TASKS = ["arc_challenge", "global_mmlu_lite"]
LANGS = ["en", "es", "hi"]
MODELS = ["Qwen2.5-0.5B-Instruct", "Qwen2.5-1.5B-Instruct", "Llama-3.2-1B-Instruct"]

runner = CliRunner()


@pytest.fixture(scope="module")
def results_csv(tmp_path_factory) -> Path:
    frame = simulate_results(TASKS, LANGS, MODELS, seeds=2, seed=7)
    return write_results(frame, tmp_path_factory.mktemp("results") / "results.csv")


@pytest.fixture(scope="module")
def analyzed(results_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "out"
    result = runner.invoke(app, ["analyze", "--results", str(results_csv), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


@pytest.fixture
def cached_tables(analyzed, results_csv, monkeypatch):
    """Tests that run `analyze` again on the same CSV reuse its tables (the mixed-model fits are the
    slow part and are tested in the analysis tests) and draw one figure; the rest runs for real."""
    from transfergrid.analysis import tables as tables_mod
    from transfergrid.analysis.frame import prepare, read_results
    from transfergrid.report import figures as figures_mod

    key = len(prepare(read_results(results_csv)))
    cache = {name: pd.read_csv(path) for path in (analyzed / "tables").glob("*.csv")
             for name in [path.stem] if name != "ling_pairs"}

    def compute_tables(frame, **_):  # items / uses_norm: the uncertainty inputs
        assert len(frame) == key
        return {name: table.copy() for name, table in cache.items()}

    monkeypatch.setattr(tables_mod, "compute_tables", compute_tables)
    monkeypatch.setattr(figures_mod, "FIGURES", tuple(f for f in figures_mod.FIGURES if f.name == "regime_bars"))


def _run_main(*args: str, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code, capsys.readouterr().err


def test_analyze_writes_tables_figures_and_report(analyzed):
    names = {p.stem for p in (analyzed / "tables").glob("*.csv")}
    assert {"uplift_summary", "harm_breakdown", "language_roles", "task_roles", "grid_matrix",
            "variance_decomposition", "consistency"} <= names
    uplift = pd.read_csv(analyzed / "tables" / "uplift_summary.csv")
    assert list(uplift.columns[:6]) == ["scope", "n", "mean", "median", "win_rate", "harm_rate"]
    pngs = {p.stem for p in (analyzed / "figures").glob("*.png")}
    svgs = {p.stem for p in (analyzed / "figures").glob("*.svg")}
    assert pngs == svgs and {"grid_heatmap", "regime_bars", "language_roles", "variance_shares"} <= pngs
    assert pngs <= {spec.name for spec in FIGURES}
    html = (analyzed / "report.html").read_text(encoding="utf-8")
    assert html.count("<img ") == len(pngs)
    assert "3 models" in html and "2 tasks" in html and "3 languages" in html
    # nothing staged is left next to the output
    assert [p.name for p in analyzed.parent.iterdir()] == ["out"]


def test_analyze_numbers_match_the_csv(analyzed, results_csv):
    from transfergrid.analysis.frame import prepare, read_results

    frame = prepare(read_results(results_csv))
    transfer = frame[frame["regime"] != "MT-ML"]["delta"]
    uplift = pd.read_csv(analyzed / "tables" / "uplift_summary.csv").set_index("scope")
    assert uplift.loc["transfer", "n"] == len(transfer)
    assert uplift.loc["transfer", "mean"] == pytest.approx(transfer.mean())
    assert uplift.loc["transfer", "win_rate"] == pytest.approx(100 * (transfer > 0).mean())


def test_analyze_reads_the_studys_exported_results(results_csv, tmp_path, monkeypatch, cached_tables):
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text('name = "mini"\nseeds = [1]\noutput_dir = "runs/mini"\n'
                     '[[models]]\nid = "q"\nsource = "bundled:x"\n'
                     '[grid]\ntasks = ["arc_challenge", "global_mmlu_lite"]\nlanguages = ["en", "es", "hi"]\n')
    result = runner.invoke(app, ["analyze", str(study)])
    assert isinstance(result.exception, UserError)
    assert "runs/mini/results.csv" in str(result.exception) and "transfergrid run" in str(result.exception)
    assert not (tmp_path / "runs" / "mini" / "analysis").exists()
    (tmp_path / "runs" / "mini").mkdir(parents=True)
    (tmp_path / "runs" / "mini" / "results.csv").write_bytes(results_csv.read_bytes())
    result = runner.invoke(app, ["analyze", str(study)])
    assert result.exit_code == 0, repr(result.exception)
    html = (tmp_path / "runs" / "mini" / "analysis" / "report.html").read_text(encoding="utf-8")
    assert "Transfer study: mini" in html and "study mini" in html


def test_bad_csv_is_one_line_exit_2_and_writes_nothing(results_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.read_csv(results_csv).drop(columns=["eval_language"]).to_csv(bad, index=False)
    out = tmp_path / "out"
    code, err = _run_main("analyze", "--results", str(bad), "--out", str(out), capsys=capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "eval_language" in lines[0] and "bad.csv" in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_unknown_regime_label_is_named(results_csv, tmp_path, capsys):
    frame = pd.read_csv(results_csv)
    frame.loc[3, "regime"] = "XX-YY"
    bad = tmp_path / "regime.csv"
    frame.to_csv(bad, index=False)
    code, err = _run_main("analyze", "--results", str(bad), "--out", str(tmp_path / "o"), capsys=capsys)
    assert code == 2 and "XX-YY" in err and "regime" in err


def test_analyze_needs_exactly_one_input(results_csv, tmp_path):
    for args in (["analyze", "--out", str(tmp_path / "o")],
                 ["analyze", "study.toml", "--results", str(results_csv), "--out", str(tmp_path / "o")]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, UserError) and "exactly one" in str(result.exception)
    result = runner.invoke(app, ["analyze", "--results", str(results_csv)])
    assert isinstance(result.exception, UserError) and "--out" in str(result.exception)


def test_a_failure_leaves_the_previous_output_untouched(results_csv, tmp_path, monkeypatch, cached_tables):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("previous report")
    (out / "notes.txt").write_text("mine")

    def broken(tables, figures_dir):
        Path(figures_dir).mkdir(parents=True)
        (Path(figures_dir) / "half.png").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setattr("transfergrid.report.figures.write_figures", broken)
    result = runner.invoke(app, ["analyze", "--results", str(results_csv), "--out", str(out)])
    assert isinstance(result.exception, RuntimeError)
    assert (out / "report.html").read_text() == "previous report"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_analyze_replaces_its_own_outputs_and_keeps_other_files(results_csv, tmp_path, cached_tables):
    out = tmp_path / "out"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "stale.csv").write_text("a\n1\n")
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["analyze", "--results", str(results_csv), "--out", str(out)])
    assert result.exit_code == 0, repr(result.exception)
    assert not (out / "tables" / "stale.csv").exists() and (out / "tables" / "uplift_summary.csv").is_file()
    assert (out / "notes.txt").read_text() == "mine"


def test_report_rebuilds_the_html_from_a_folder(analyzed, tmp_path):
    before = (analyzed / "report.html").read_text(encoding="utf-8")
    target = tmp_path / "elsewhere"
    result = runner.invoke(app, ["report", "--from", str(analyzed), "--out", str(target)])
    assert result.exit_code == 0, repr(result.exception)
    after = (target / "report.html").read_text(encoding="utf-8")
    assert after.count("<img ") == before.count("<img ") > 0
    assert sorted(p.name for p in target.iterdir()) == ["report.html"]  # HTML only, nothing redrawn
    strip = lambda text: re.sub(r"generated [^<]*", "", text)
    assert strip(after).count("<table>") == strip(before).count("<table>")


def test_report_adds_study_2_outputs_as_a_section(analyzed, tmp_path):
    folder = tmp_path / "both"
    (folder / "tables").mkdir(parents=True)
    for csv in (analyzed / "tables").glob("*.csv"):
        (folder / "tables" / csv.name).write_bytes(csv.read_bytes())
    pd.DataFrame({"model": ["m"], "language": ["he"], "group": ["related"], "gain": [4.5]}).to_csv(
        folder / "tables" / "relatedness_gains.csv", index=False)
    result = runner.invoke(app, ["report", "--from", str(folder)])
    assert result.exit_code == 0, repr(result.exception)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Relatedness vs task alignment (study 2)" in html and "relatedness_gains.csv" in html


def test_report_without_tables_is_a_user_error(tmp_path):
    result = runner.invoke(app, ["report", "--from", str(tmp_path)])
    assert isinstance(result.exception, UserError) and "transfergrid analyze" in str(result.exception)


def test_recommend_prints_a_ranked_table(results_csv):
    result = runner.invoke(app, ["recommend", "--results", str(results_csv), "--targets",
                                 "arc_challenge:hi,global_mmlu_lite:hi", "--top", "3"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "rank" in result.output
    ranks = re.findall(r"^\W*([123])\W", result.output, flags=re.MULTILINE)
    assert ranks[:3] == ["1", "2", "3"]
    assert re.search(r"(arc_challenge|global_mmlu_lite)", result.output)


def test_recommend_rejects_a_malformed_target(results_csv):
    result = runner.invoke(app, ["recommend", "--results", str(results_csv), "--targets", "arc_challenge"])
    assert isinstance(result.exception, UserError) and "TASK:LANG" in str(result.exception)
