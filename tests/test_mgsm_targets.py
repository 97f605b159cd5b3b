"""MGSM (generative) as target-only cells of a study-1 grid (`grid.extra_targets`): validation,
test-only manifests, and a tiny end-to-end run whose results.csv scores them as exact match."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from transfergrid.cli import main
from transfergrid.errors import StudyError
from transfergrid.records import Cell
from transfergrid.study import parse_study

BASE = {"name": "mg", "models": [{"id": "t", "source": "tiny:"}],
        "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es"], "extra_targets": ["mgsm:en", "mgsm:es"]},
        "splits": {"train": 8, "test": 3, "per_task": {"mgsm": {"test": 4}}}}


def _study(**grid):
    return parse_study({**BASE, "grid": {**BASE["grid"], **grid}})


def test_extra_targets_are_targets_never_sources():
    s = _study()
    assert s.target_cells()[-2:] == [Cell("mgsm", "en"), Cell("mgsm", "es")]
    assert all(c.task == "arc_challenge" for c in s.source_cells())
    assert s.target_only_tasks() == ["mgsm"]
    assert s.tasks == ["arc_challenge"]
    # zero extra targets: the study hashes as before the field existed
    plain = parse_study({**BASE, "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es"]}})
    assert plain.content_hash() == _study(extra_targets=[]).content_hash() != s.content_hash()


@pytest.mark.parametrize(("grid", "evaluation", "message"), [
    ({"extra_targets": ["arc_challenge:en"]}, {}, "is a task of the grid; list it in targets"),
    ({"extra_targets": ["mgsm"]}, {}, "is not a TASK:LANG cell"),
    ({"extra_targets": ["mgsm:en", "mgsm:en"]}, {}, "listed twice"),
    ({"extra_targets": ["mgsmm:en"]}, {}, "unknown task 'mgsmm' (did you mean 'mgsm'?)"),
    ({}, {"fewshot": 2}, "the extra targets (mgsm) have none"),
])
def test_invalid_extra_targets_are_one_line_errors(grid, evaluation, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        parse_study({**BASE, "grid": {**BASE["grid"], **grid}, "evaluation": evaluation})


def test_manifest_is_test_only_and_parallel(data_dir):
    from transfergrid.data import StudyData

    data = StudyData(_study(), data_dir)
    en, es = data.items(Cell("mgsm", "en"), "test"), data.items(Cell("mgsm", "es"), "test")
    assert len(en) == 4 and [i.id for i in en] == [i.id for i in es]
    assert data.items(Cell("mgsm", "en"), "train") == []
    assert data.manifest("mgsm")["target_only"] is True
    # without a per-task size: all of MGSM's 250 problems when splits.test is larger
    full = parse_study({**BASE, "splits": {"train": 8, "test": 400}})
    assert len(StudyData(full, data_dir).items(Cell("mgsm", "en"), "test")) == 250


def test_run_scores_mgsm_targets_as_exact_match(tmp_path, data_dir):
    from transfergrid.generation import extract_number, numeric_match

    study = tmp_path / "study.toml"
    study.write_text("""
name = "mgsm-targets"
seeds = [1]
[[models]]
id = "tiny"
source = "tiny:seed=0"
[grid]
tasks = ["arc_challenge"]
languages = ["en", "es"]
sources = ["arc_challenge:en"]
extra_targets = ["mgsm:en", "mgsm:es"]
[splits]
train = 6
test = 3
per_task = { mgsm = { test = 3 } }
[training]
epochs = 1
batch_size = 4
rank = 4
alpha = 8
target_modules = ["q_proj", "v_proj"]
max_length = 128
[evaluation]
format = "letters"
max_new_tokens = 6
""", encoding="utf-8")
    out = tmp_path / "out"
    try:
        main(["run", str(study), "--out", str(out), "--data-dir", str(data_dir), "--no-progress", "--no-report"])
    except SystemExit as exc:
        assert not exc.code
    results = pd.read_csv(out / "results.csv")
    mgsm = results[results["eval_dataset"] == "mgsm"]
    assert sorted(mgsm["eval_language"]) == ["en", "es"]
    assert set(mgsm["regime"]) == {"CT-ML", "CT-CL"}
    assert (mgsm["score_mean"] == mgsm["score_norm_mean"]).all()
    assert (mgsm["score_base_mean"] == mgsm["score_norm_base_mean"]).all()
    assert set(results["fine_tuned_dataset"]) == {"arc_challenge"}
    # the stored generations, re-scored by the harness's flexible-extract filter, give the score
    from transfergrid.export import export_items
    from transfergrid.store import Store
    from transfergrid.study import load_study

    items = export_items(load_study(study), Store(out))
    gen = items[items["task"] == "mgsm"]
    assert len(gen) == 2 * 3 * 2  # base and one adapter, 3 items, 2 languages
    from transfergrid.data import load_items

    answers = {(lang, it.id): it.meta["answer"] for lang in ("en", "es")
               for it in load_items("mgsm", lang, "test", data_dir)}
    rescored = [numeric_match(extract_number(g), answers[(lang, i)])
                for g, lang, i in zip(gen["generation"], gen["lang"], gen["id"])]
    assert rescored == list(gen["correct"])
    # and the harness's remove_whitespace filter (the whole stripped generation) as correct_strict
    strict = [numeric_match(g.strip(), answers[(lang, i)]) for g, lang, i in zip(gen["generation"], gen["lang"], gen["id"])]
    assert strict == list(gen["correct_strict"])
    assert "correct_strict" not in items[items["task"] == "arc_challenge"].dropna(axis=1, how="all").columns
    base_es = gen[(gen["variant"] == "base") & (gen["lang"] == "es")]["correct"].mean()
    row = mgsm[mgsm["eval_language"] == "es"].iloc[0]
    assert row["score_base_mean"] == pytest.approx(base_es)


def test_flexible_extract_and_strict_match_as_the_harness_filters():
    from transfergrid.generation import generative_score
    from transfergrid.records import Item

    item = Item("0", "mgsm", "en", "How many?", (), -1, {"answer": "1000"})
    wordy, bare, wrong = (generative_score(item, g) for g in (" It is $1,000.\n", " 1,000.\n\n", " 999 or 1000 no, 7"))
    assert (wordy.correct, wordy.correct_strict) == (True, False)  # the last number; not the whole text
    assert (bare.correct, bare.correct_strict) == (True, True)  # case, punctuation, whitespace ignored
    assert (wrong.correct, wrong.correct_strict) == (False, False)
    assert wordy.correct == wordy.correct_norm and "correct_strict" in wordy.to_dict()
