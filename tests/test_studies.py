"""The study kinds (`transfergrid.studies`): the report `run` ends with is `analyze`'s, for both kinds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_runner import cli

from transfergrid.studies import REPORT_DIR, for_study
from transfergrid.study import load_study

TRANSFER = """
name = "mini"
seeds = [1]
output_dir = "{out}"

[[models]]
id = "m1"
source = "tiny:seed=0"

[grid]
tasks = ["arc_challenge", "global_mmlu_lite"]
languages = ["en", "es", "hi"]

[splits]
train = 8
test = 20
"""

RELATEDNESS = """
name = "rel"
kind = "relatedness"
seeds = [1, 2]
output_dir = "{out}"

[[models]]
id = "m1"
source = "tiny:seed=0"

[[models]]
id = "m2"
source = "tiny:seed=1"

[relatedness]
source_languages = ["id"]
test_items = 12
weak_baseline = 0.4
groups = {{ related = ["ms"], control = ["vi", "th"] }}

[relatedness.cot]
enabled = true
"""


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every table and figure file of an analysis folder, by its path inside it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.suffix in (".csv", ".png", ".svg")}


def _html(folder: Path) -> str:
    return re.sub(r"generated [^<]*", "", (folder / "report.html").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text, kind, must_have", [
    (TRANSFER, "transfer", {"tables/uplift_summary.csv", "tables/ling_pairs.csv", "figures/distance_scatter.png"}),
    (RELATEDNESS, "relatedness", {"tables/relatedness_gains.csv", "figures/relatedness_ft_vs_cot.png"}),
])
def test_runs_report_is_analyzes_report(tmp_path, text, kind, must_have):
    out = tmp_path / "out"
    study_file = tmp_path / "study.toml"
    study_file.write_text(text.format(out=out), encoding="utf-8")
    assert for_study(load_study(study_file)).name == kind
    assert cli("run", study_file, "--simulate", "--no-progress") == 0
    assert cli("analyze", study_file) == 0  # the same exported results, <output_dir>/analysis
    ran, analyzed = _outputs(out / REPORT_DIR), _outputs(out / "analysis")
    assert must_have <= set(ran)
    assert sorted(ran) == sorted(analyzed)  # the same tables and figures ...
    # ... with the same numbers and pictures (SVGs carry random element ids: names only)
    assert [name for name in ran if not name.endswith(".svg") and ran[name] != analyzed[name]] == []
    assert _html(out / REPORT_DIR) == _html(out / "analysis")


def test_an_output_folder_that_is_a_file_is_a_user_error_and_stays(tmp_path, capsys):
    from transfergrid.analysis.frame import write_results
    from transfergrid.analysis.simulate import simulate_results

    results = write_results(simulate_results(["arc_challenge"], ["en", "es"], ["m"], seeds=1, seed=1),
                            tmp_path / "results.csv")
    taken = tmp_path / "taken"
    taken.write_text("mine")
    capsys.readouterr()
    assert cli("analyze", "--results", results, "--out", taken) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "taken: exists and is not a directory" in err[0]
    assert taken.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "taken"]
