"""Study 2 report: every table and figure written; the example study files validate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_relatedness import _synthetic

from transfergrid.analysis import relatedness as rel
from transfergrid.report.relatedness_figures import (
    FIGURES,
    TABLES,
    relatedness_report,
    with_groups,
)
from transfergrid.study import load_study, parse_study

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"he": "Hebr", "am": "Ethi", "mt": "Latn", "ja": "Jpan", "ko": "Hang", "fr": "Latn"}


def _study(groups=None, **extra):
    relatedness = {"source_languages": ["arb"], "scripts": SCRIPTS, "weak_baseline": 0.6,
                   "groups": groups or {"related": ["he", "am", "mt"], "control": ["ja", "ko", "fr"]}, **extra}
    return parse_study({"name": "t", "kind": "relatedness", "seeds": [42],
                        "models": [{"id": "a", "source": "bundled:x"}], "relatedness": relatedness})


def test_report_writes_every_table_and_figure(tmp_path):
    frame = _synthetic(n_items=40)
    tables = relatedness_report(frame, _study(), tmp_path, n_boot=200)
    assert set(tables) == set(TABLES)
    for name in TABLES:
        on_disk = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        assert len(on_disk) == len(tables[name]) > 0
    for name in FIGURES:
        for ext in ("png", "svg"):
            path = tmp_path / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
    gains = pd.read_csv(tmp_path / "tables" / "relatedness_gains.csv")
    pd.testing.assert_frame_equal(gains, rel.gains_table(frame), check_dtype=False, atol=1e-9)
    weak = tables["relatedness_weak_strong"].set_index("class")
    assert weak.loc["weak", "threshold_acc"] == 60.0  # spec.weak_baseline as %
    assert "script[T.Latn]" in set(tables["relatedness_regression"]["term"])


def test_groups_come_from_the_spec_when_the_frame_has_none(tmp_path):
    frame = _synthetic(n_items=20).drop(columns=["group"])
    filled = with_groups(frame, _study())
    assert set(filled.loc[filled["language"] == "he", "group"]) == {"related"}
    auto = with_groups(frame, _study(groups="auto", auto_targets=["he", "am", "mt", "ja", "ko", "fr"]))
    assert set(auto.loc[auto["language"] == "mt", "group"]) == {"related"}
    assert set(auto.loc[auto["language"] == "fr", "group"]) == {"control"}


def test_report_without_cot_rows_skips_the_cot_figure(tmp_path):
    frame = _synthetic(n_items=20)
    tables = relatedness_report(frame[frame["variant"] != "cot"], _study(), tmp_path, n_boot=50)
    assert tables["relatedness_gains"]["cot_gain"].isna().all()
    assert tables["cot_correlation"]["n"].tolist() == [0, 0]
    assert not (tmp_path / "figures" / "relatedness_ft_vs_cot.png").exists()
    assert (tmp_path / "figures" / "relatedness_gains.png").exists()


@pytest.mark.parametrize("name", ["relatedness.toml", "relatedness-arabic.toml"])
def test_example_studies_validate(name):
    study = load_study(REPO / "examples" / name)
    assert study.kind == "relatedness"
    r = study.relatedness
    assert r.related_group in r.groups
    groups = rel.resolve_groups(r)
    assert not set(groups[r.related_group]) & set(r.source_languages)
    if name == "relatedness-arabic.toml":
        assert len(r.source_languages) == 6 and all(code.endswith("_Arab") for code in r.source_languages)
        assert r.train_items_per_language * len(r.source_languages) == 4800 and r.test_items == 100
        # the explicit groups agree with the language families (URIEL / Glottolog)
        assert rel.auto_groups(r.source_languages, r.target_languages()) == {
            "related": groups["related"], "control": groups["control"]}
