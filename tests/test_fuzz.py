"""Bad input (issue 13.5): a seeded small run of benchmarks/fuzz_inputs.py, and the crashes it found.

The full run (1,000 study files, 500 benchmark files, 500 results CSVs) is the benchmark; here 40 +
24 + 16 mutants, one of each category again through a real subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from transfergrid.errors import DataError, StudyError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_inputs as F


@pytest.fixture(scope="module")
def fuzzed(data_dir, tmp_path_factory):
    return F.fuzz(40, 24, 16, seed=13, n_subprocess=1, work=tmp_path_factory.mktemp("fuzz"), progress=False,
                  shared=data_dir)


def test_every_mutant_ends_in_exit_0_or_one_located_error_line(fuzzed):
    bad = [c for c in fuzzed["cases"] if c.outcome not in ("exit 0", "exit 2", "known crash")]
    assert not bad, "\n".join(f"[{c.outcome}] {c.path.name} ({c.what}): {c.detail}" for c in bad)
    counts = fuzzed["counts"]
    assert [sum(counts[cat].values()) for cat in ("study", "benchmark", "results")] == [40, 24, 16]
    for cat, counter in counts.items():  # the mutants reach both outcomes: neither all rejected nor all accepted
        assert counter["exit 0"] > 0 and counter["exit 2"] > 0, (cat, counter)


def test_a_subprocess_agrees_with_the_in_process_run(fuzzed):
    for cat, sub in fuzzed["subprocess"].items():
        assert sub["checked"] == 1 and not sub["disagree"], (cat, sub)


def test_judge_tells_a_traceback_a_second_error_line_and_a_half_written_folder(tmp_path):
    tb = 'Traceback (most recent call last):\n  File "/x/transfergrid/data/base.py", line 9\nTypeError: boom'
    assert F.judge(F.Result(None, "", "", tb), ["f.json"])[0] == "traceback"
    assert F.judge(F.Result(2, "", "error: f.json: a\nerror: f.json: b\n"), ["f.json"])[0] == "other"
    assert F.judge(F.Result(2, "", "error: something is wrong\n"), ["f.json"])[0] == "other"
    assert F.judge(F.Result(1, "", "error: f.json: a\n"), ["f.json"])[0] == "other"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.html").write_text("x")
    assert F.judge(F.Result(2, "", "error: f.json: a\n"), ["f.json"], tmp_path / "out")[0] == "other"
    assert F.judge(F.Result(2, "", "error: f.json, field 'x': a\n"), ["f.json"], tmp_path / "none") == (
        "exit 2", "error: f.json, field 'x': a")


# --- the crashes the fuzzer found, one test each ------------------------------------------------------
@pytest.fixture(scope="module")
def small_root(data_dir, tmp_path_factory):
    return F.build_data_root(tmp_path_factory.mktemp("data"), data_dir)


def _rewrite_first_row(path: Path, change) -> None:
    rows, write = F._rows(path)
    change(rows[0])
    path.unlink()  # small_root's files are the module's: write a new file, not through a link
    path.write_text(write(rows), encoding="utf-8")


def _labels_with_a_dict(row):  # as many labels as choices, so only the label's type is wrong
    row["mc1_targets_labels"] = [1, {}] + [0] * (len(row["mc1_targets_choices"]) - 2)


def _int_mc2_choices(row):
    row["mc2_targets_choices"] = list(range(len(row["mc2_targets_labels"])))


@pytest.mark.parametrize("change, field", [(_labels_with_a_dict, "mc1_targets_labels"),
                                           (_int_mc2_choices, "mc2_targets_labels")])
def test_truthfulqa_labels_and_choices_of_the_wrong_type_are_a_data_error(small_root, tmp_path, change, field):
    import shutil

    from transfergrid.data import load_items

    root = tmp_path / "root"
    shutil.copytree(small_root, root)
    _rewrite_first_row(root / "okapi" / "m_truthfulqa" / "es_validation.json", change)
    with pytest.raises(DataError, match=rf"es_validation\.json, field '{field}'"):
        load_items("truthfulqa_mc1", "es", "validation", root)


@pytest.mark.parametrize("label", [float("inf"), 1.5, True])
def test_a_gold_answer_that_is_not_a_whole_number_is_outside_the_choices(small_root, tmp_path, label):
    import shutil

    from transfergrid.data import load_items

    root = tmp_path / "root"
    shutil.copytree(small_root, root)
    _rewrite_first_row(root / "xcopa" / "vi" / "val.vi.jsonl", lambda row: row.__setitem__("label", label))
    with pytest.raises(DataError, match=r"val\.vi\.jsonl:1.*field 'label'.*not one of the 2 choices"):
        load_items("xcopa", "vi", "val", root)


@pytest.mark.parametrize("table, lang", [("grid", "x" * 5000), ("grid", "../es"), ("relatedness", "e s")])
def test_a_language_code_that_is_no_file_name_is_a_study_error(table, lang):
    from transfergrid.study import parse_study

    study = {"name": "s", "models": [{"id": "m", "source": "tiny"}]}
    if table == "grid":
        study["grid"] = {"tasks": ["arc_challenge"], "languages": ["en", lang]}
    else:
        study |= {"kind": "relatedness", "relatedness": {"source_languages": ["id"],
                                                         "groups": {"related": ["ms", lang]}}}
    with pytest.raises(StudyError, match=rf"{table}(\.languages)?: .* is not a language code"):
        parse_study(study, "s.toml")


def test_a_list_as_the_global_mmlu_answer_is_outside_the_choices(small_root, tmp_path):
    import shutil

    from transfergrid.data import load_items

    root = tmp_path / "root"
    shutil.copytree(small_root, root)
    _rewrite_first_row(root / "global_mmlu_lite_sea" / "global_mmlu_lite_en_test.jsonl",
                       lambda row: row.__setitem__("label", [0]))
    with pytest.raises(DataError, match=r"global_mmlu_lite_en_test\.jsonl:1.*field 'label': answer \[0\] is not one"):
        load_items("global_mmlu_lite", "en", "test", root)


def test_an_empty_english_truthfulqa_file_is_an_empty_split(small_root, tmp_path):
    import shutil

    from transfergrid.data import load_items

    root = tmp_path / "root"
    shutil.copytree(small_root, root)
    (root / "truthfulqa_en" / "mc_task.json").unlink()
    (root / "truthfulqa_en" / "mc_task.json").write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match=r"mc_task\.json: empty split"):
        load_items("truthfulqa_mc1", "en", "validation", root)
