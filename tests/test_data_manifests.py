"""Split manifest files (`split,id`, the reference's format): reading, writing, the reference's
validation split, and the check that every id exists in every language."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfergrid.cli.app import main
from transfergrid.data import StudyData
from transfergrid.data.manifests import (
    manifest_path,
    read_manifest_csv,
    reference_order,
    reference_validation_split,
    split_ids,
    write_manifest_csv,
)
from transfergrid.errors import DataError, UserError
from transfergrid.records import Cell
from transfergrid.study import load_study, parse_study

MODEL = [{"id": "tiny", "source": "bundled:tiny"}]
DNR = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dnr_manifests").resolve()
OKAPI_LANGS = ["ar", "bn", "de", "es", "fr", "hi", "id", "it", "pt", "zh"]


@pytest.fixture
def dnr() -> Path:
    if not (DNR / "arc_challenge.csv").is_file():
        pytest.skip(f"the reference's split manifests are not at {DNR}")
    return DNR


def study_with(tasks, langs, manifests, **splits):
    return parse_study({"name": "t", "models": MODEL, "grid": {"tasks": tasks, "languages": langs},
                        "splits": {"manifests": str(manifests), **splits}})


# --- the file format ----------------------------------------------------------------------------
def test_write_then_read(tmp_path):
    path = write_manifest_csv(tmp_path / "x.csv", ["b", "a"], ["c"])
    assert path.read_text(encoding="utf-8") == "split,id\ntrain,b\ntrain,a\ntest,c\n"
    m = read_manifest_csv(path)
    assert m.train == ("b", "a") and m.test == ("c",)


@pytest.mark.parametrize("text, message", [
    ("id,split\ntrain,a\n", "header 'split,id'"),
    ("split,id\ntrain,a\ndev,b\ntest,c\n", "split 'dev' is not one of train, test"),
    ("split,id\ntrain,a\ntrain,a\ntest,c\n", "id repeated train"),
    ("split,id\ntrain,a\ntest,a\n", "in both train"),
    ("split,id\ntrain,a\n", "no test ids"),
    ("split,id\ntrain,a,x\ntest,b\n", "expected 2 comma-separated columns"),
])
def test_bad_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        read_manifest_csv(path)
    assert "m.csv" in str(info.value)


def test_reference_file_names(tmp_path):
    (tmp_path / "truthfulqa.csv").write_text("split,id\ntrain,1\ntest,2\n", encoding="utf-8")
    assert manifest_path(tmp_path, "truthfulqa_mc1").name == "truthfulqa.csv"
    (tmp_path / "truthfulqa_mc1.csv").write_text("split,id\ntrain,1\ntest,2\n", encoding="utf-8")
    assert manifest_path(tmp_path, "truthfulqa_mc1").name == "truthfulqa_mc1.csv"  # ours first
    with pytest.raises(UserError, match=r"no manifest for hellaswag in .* \(expected hellaswag.csv\)"):
        manifest_path(tmp_path, "hellaswag")


# --- the reference's train / validation split --------------------------------------------------
@pytest.mark.filterwarnings("ignore::FutureWarning")  # pyarrow's, inside datasets' sort
@pytest.mark.parametrize("ids", [
    [f"ARC-Challenge/train/Q{i}" for i in range(300)],
    [f"astronomy/dev/{i}" for i in range(215)],
    [str(i) for i in range(0, 1400, 2)][:300],  # TruthfulQA's integer truth_id
])
def test_validation_split_is_the_references(ids):
    """The reference: its train split sorted by the id column, then
    `train_test_split(test_size=0.1, seed=42)`. Checked against `datasets` itself."""
    datasets = pytest.importorskip("datasets")
    column = [int(i) for i in ids] if ids[0].isdigit() else ids
    ds = datasets.Dataset.from_dict({"id": list(reversed(column))}).sort("id")
    split = ds.train_test_split(test_size=0.1, seed=42)
    want_train = [str(i) for i in split["train"]["id"]]
    want_val = [str(i) for i in split["test"]["id"]]
    train, validation = reference_validation_split(list(reversed(ids)), 0.1, 42)
    assert (train, validation) == (want_train, want_val)
    assert len(validation) == {300: 30, 215: 22}[len(ids)]


def test_reference_order_is_numeric_for_row_ids():
    assert reference_order(["10", "9", "100"]) == ["9", "10", "100"]
    assert reference_order(["b/10", "b/9"]) == ["b/10", "b/9"]


def test_split_ids_without_data(dnr):
    ids = split_ids(read_manifest_csv(dnr / "arc_challenge.csv"), "arc_challenge")
    assert {k: len(v) for k, v in ids.items()} == {"train": 270, "validation": 30, "test": 400}
    assert not any("/" in i for v in ids.values() for i in v)
    tqa = split_ids(read_manifest_csv(dnr / "truthfulqa.csv"), "truthfulqa_mc1")
    assert tqa["test"][:3] == ["0", "1", "3"]  # numeric truth_id order


# --- the reference's manifests on the real files -----------------------------------------------
def test_reference_arc_ids_exist_in_every_language(data_dir, dnr):
    study = study_with(["arc_challenge"], [*OKAPI_LANGS, "en"], dnr)
    data = StudyData(study, data_dir)
    m = data.manifest("arc_challenge")
    assert (len(m["train"]), len(m["validation"]), len(m["test"])) == (270, 30, 400)
    assert m["test"][0] == "ACTAAP_2009_5_8"  # ARC-Challenge/test/ACTAAP_2009_5_8 -> the AI2 id
    for lang in ("en", "zh"):
        assert [i.id for i in data.items(Cell("arc_challenge", lang), "test")] == m["test"]


def test_reference_global_mmlu_ids_exist(data_dir, dnr):
    data = StudyData(study_with(["global_mmlu_lite"], ["en", "id", "zh"], dnr), data_dir)
    m = data.manifest("global_mmlu_lite")
    assert (len(m["train"]), len(m["validation"]), len(m["test"])) == (193, 22, 400)
    assert all(i.split("/")[1] == "dev" for i in m["train"] + m["validation"])


def test_missing_ids_by_count_and_example(data_dir, dnr):
    study = study_with(["arc_challenge"], ["es", "eu", "ta"], dnr)
    with pytest.raises(UserError, match=r"arc_challenge: manifest .*arc_challenge.csv: ids missing from the data "
                                        r"\(of 700, per language\): eu \d+ \(e\.g\. \S+\), ta \d+ \(e\.g\. \S+\)$"):
        StudyData(study, data_dir).manifest("arc_challenge")


def test_check_reports_one_line_per_task(tmp_path, data_dir, dnr, capsys):
    study = tmp_path / "s.toml"
    study.write_text(f'name = "s"\n[[models]]\nid = "m"\nsource = "bundled:x"\n'
                     f'[grid]\ntasks = ["arc_challenge", "global_mmlu_lite"]\nlanguages = ["en", "id", "zh"]\n'
                     f'[splits]\nmanifests = "{dnr}"\n', encoding="utf-8")
    main(["data", "check", str(study), "--data-dir", str(data_dir)])
    assert "all 6 cells ok" in capsys.readouterr().out

    bad = tmp_path / "bad"
    bad.mkdir()
    for task in ("arc_challenge", "global_mmlu_lite"):
        text = (dnr / manifest_path(dnr, task).name).read_text(encoding="utf-8")
        (bad / f"{task}.csv").write_text(text + "test,nope-1\ntest,nope-2\n", encoding="utf-8")
    study.write_text(study.read_text(encoding="utf-8").replace(str(dnr), "bad"), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["data", "check", str(study), "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert info.value.code == 2
    lines = [line.strip() for line in err.strip().splitlines()]
    assert len(lines) == 3 and lines[0].endswith("6 of 6 cells have problems:")
    assert lines[1].startswith("arc_challenge: manifest") and "en 2 (e.g. nope-1), id 2" in lines[1]
    assert lines[2].startswith("global_mmlu_lite: manifest")


# --- our manifests in the same format ----------------------------------------------------------
def test_written_manifests_read_back_identically(tmp_path, data_dir):
    study = parse_study({"name": "t", "models": MODEL, "grid": {"tasks": ["arc_challenge", "truthfulqa_mc1"],
                                                               "languages": ["en", "es"]},
                         "splits": {"train": 40, "test": 20}})
    drawn = StudyData(study, data_dir)
    written = drawn.write_manifests(tmp_path / "m")
    assert sorted(p.name for p in written) == ["arc_challenge.csv", "truthfulqa_mc1.csv"]
    arc = read_manifest_csv(tmp_path / "m" / "arc_challenge.csv")
    assert len(arc.train) == 40 and all(i.startswith("ARC-Challenge/") for i in arc.train + arc.test)
    assert drawn.write_manifests(tmp_path / "m") == []  # an agreeing file is kept
    fixed = StudyData(study_with(["arc_challenge", "truthfulqa_mc1"], ["en", "es"], tmp_path / "m"), data_dir)
    for task in study.tasks:
        for split in ("train", "validation", "test"):
            assert fixed.manifest(task)[split] == drawn.manifest(task)[split], (task, split)
    assert len(drawn.manifest("arc_challenge")["validation"]) == 4


def test_study_file_path_is_relative_to_the_study(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.toml").write_text('name = "s"\n[[models]]\nid = "m"\nsource = "bundled:x"\n'
                                             '[grid]\ntasks = ["arc_challenge"]\nlanguages = ["en"]\n'
                                             '[splits]\nmanifests = "../m"\n', encoding="utf-8")
    study = load_study(tmp_path / "sub" / "s.toml")
    assert Path(study.splits.manifests) == (tmp_path / "m").resolve()
    plain = load_study_text(tmp_path, "")
    assert plain.content_hash() == study.content_hash()  # where the files lie is not a result


def load_study_text(tmp_path, splits: str):
    path = tmp_path / "p.toml"
    path.write_text('name = "s"\n[[models]]\nid = "m"\nsource = "bundled:x"\n'
                    f'[grid]\ntasks = ["arc_challenge"]\nlanguages = ["en"]\n{splits}', encoding="utf-8")
    return load_study(path)


def test_relatedness_study_refuses_manifest_files(tmp_path):
    study = parse_study({"name": "r", "kind": "relatedness", "models": MODEL, "splits": {"manifests": str(tmp_path)},
                         "relatedness": {"source_languages": ["id"], "groups": {"related": ["ms"]}}})
    with pytest.raises(UserError, match="splits.manifests: manifest files fix a transfer study"):
        StudyData(study, tmp_path)
