"""The data layer on the real files in ../shared/data and on small broken copies in tmp dirs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from transfergrid.data import (
    StudyData,
    benchmark_names,
    get_benchmark,
    load_items,
    manifest_hash,
    resolve_data_dir,
)
from transfergrid.errors import DataError, UserError
from transfergrid.prompts import render
from transfergrid.records import Cell
from transfergrid.study import parse_study

MODEL = [{"id": "tiny", "source": "bundled:tiny"}]


def transfer_study(tasks, languages, train=20, test=30, **extra) -> object:
    return parse_study({"name": "t", "models": MODEL, "grid": {"tasks": tasks, "languages": languages},
                        "splits": {"train": train, "test": test}, **extra})


# --- every benchmark on the real files ---------------------------------------------------------
EXPECTED = {  # (task, lang, split): item count, from ../shared/data/README.md
    ("arc_challenge", "en", "test"): 1172, ("arc_challenge", "es", "test"): 1170,
    ("mmlu", "en", "validation"): 1531, ("mmlu", "en", "dev"): 285,
    ("truthfulqa_mc1", "en", "validation"): 817, ("truthfulqa_mc1", "es", "validation"): 789,
    ("xstorycloze", "es", "train"): 360, ("xstorycloze", "es", "eval"): 1511,
    ("xcopa", "it", "val"): 100, ("xcopa", "it", "test"): 500, ("xcopa", "en", "train"): 400,
    ("belebele", "id", "eval"): 895, ("belebele", "tl", "eval"): 100,
    ("global_mmlu_lite", "id", "dev"): 215, ("global_mmlu_lite", "id", "test"): 400,
    ("mgsm", "en", "test"): 250,
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_counts(data_dir, key):
    assert len(load_items(*key, data_dir)) == EXPECTED[key]


@pytest.mark.parametrize("task", [t for t in benchmark_names() if t != "hellaswag"])
def test_every_benchmark_loads_and_renders(data_dir, task):
    bench = get_benchmark(task)
    langs = bench.languages(data_dir)
    assert langs, task
    for lang in langs:
        for split in bench.splits(lang, data_dir):
            items = load_items(task, lang, split, data_dir)
            assert items and len({i.id for i in items}) == len(items)
            for item in items:
                assert item.task == task and item.lang == lang and item.context.strip()
                if bench.generative:
                    assert item.gold == -1 and math.isfinite(float(item.meta["answer"]))
                else:
                    assert 0 <= item.gold < len(item.choices) and all(c.strip() for c in item.choices)
        prompt = render(items[0], "cloze")  # the prompt layer finds every meta key it needs
        assert prompt.context.strip() and len(prompt.continuations) == len(items[0].choices)


def test_benchmark_properties():
    assert get_benchmark("arc_challenge").has_norm and get_benchmark("hellaswag").has_norm
    assert not get_benchmark("mmlu").has_norm
    assert get_benchmark("global_mmlu_lite").construction == "curated"
    assert get_benchmark("truthfulqa_mc1").construction == "translated"
    assert get_benchmark("mgsm").generative and not get_benchmark("belebele").generative
    with pytest.raises(UserError, match="did you mean 'arc_challenge'"):
        get_benchmark("arc_chalenge")


def test_loading_is_cached(data_dir):
    a = load_items("arc_challenge", "es", "test", data_dir)
    b = load_items("arc_challenge", "es", "test", data_dir)
    assert a == b and a is not b and a[0] is b[0]


# --- alignment: one id = one question in every language ------------------------------------
def test_arc_ids_align_across_languages(data_dir):
    en = {i.id: i for i in load_items("arc_challenge", "en", "test", data_dir)}
    es = {i.id: i for i in load_items("arc_challenge", "es", "test", data_dir)}
    shared = set(en) & set(es)
    assert len(shared) > 1100 and "Mercury_SC_415719" in shared
    assert "hielo" in es["Mercury_SC_415719"].context and "ice" in en["Mercury_SC_415719"].context
    agree = sum(en[i].gold == es[i].gold for i in shared)
    assert agree / len(shared) > 0.99


def test_arc_option_e(data_dir):
    es = {i.id: i for i in load_items("arc_challenge", "es", "test", data_dir)}
    assert len(es["TIMSS_1995_8_N4"].choices) == 5


def test_mmlu_ids_align_and_carry_subject(data_dir):
    en = {i.id: i for i in load_items("mmlu", "en", "validation", data_dir)}
    de = {i.id: i for i in load_items("mmlu", "de", "validation", data_dir)}
    shared = set(en) & set(de)
    assert len(shared) > 1000
    assert sum(en[i].gold == de[i].gold for i in shared) / len(shared) > 0.99
    assert de["abstract_algebra/val/0"].meta["subject"] == "abstract_algebra"


def test_truthfulqa_alignment(data_dir):
    langs = ["en", "es", "fr", "zh"]
    items = {lang: {i.id: i for i in load_items("truthfulqa_mc1", lang, "validation", data_dir)} for lang in langs}
    shared = set.intersection(*(set(v) for v in items.values()))
    assert len(shared) > 450
    for i in shared:
        # same question: same number of choices, and the gold answer moved by the same permutation
        assert len({len(items[lang][i].choices) for lang in langs}) == 1
        assert len({items[lang][i].gold for lang in langs}) == 1
    golds = [items["es"][i].gold for i in shared]
    assert len(set(golds)) > 2  # shuffled: the correct answer is not always first
    # spot check by content: numbers and names survive translation
    en_by_q = {v.context: k for k, v in items["en"].items()}
    tid = en_by_q.get("In real life, who lives at 4 Privet Drive?")
    assert tid in shared and "Privet" in items["es"][tid].context and "4" in items["fr"][tid].context


def test_xstorycloze_and_xcopa_align(data_dir):
    en = {i.id: i for i in load_items("xstorycloze", "en", "eval", data_dir)}
    es = {i.id: i for i in load_items("xstorycloze", "es", "eval", data_dir)}
    assert set(en) == set(es) and all(en[i].gold == es[i].gold for i in en)
    copa = {i.id: i for i in load_items("xcopa", "en", "test", data_dir)}
    it = {i.id: i for i in load_items("xcopa", "it", "test", data_dir)}
    assert set(copa) == set(it) and all(copa[i].gold == it[i].gold for i in it)
    assert copa["test/0"].meta["question"] == "cause"


def test_belebele_shared_ids_and_passages(data_dir):
    en = {i.id: i for i in load_items("belebele", "en", "eval", data_dir)}
    ms = {i.id: i for i in load_items("belebele", "ms", "eval", data_dir)}
    assert set(en) == set(ms) and all(en[i].gold == ms[i].gold for i in en)
    assert en["0"].meta["passage"]
    tl = load_items("belebele", "tl", "eval", data_dir)  # a separate sample: never parallel
    assert not {i.id for i in tl} & set(en)


def test_global_mmlu_and_mgsm(data_dir):
    gm = {i.id: i for i in load_items("global_mmlu_lite", "my", "test", data_dir)}
    en = {i.id: i for i in load_items("global_mmlu_lite", "en", "test", data_dir)}
    assert "management/test/5" not in gm and len(gm) == 399  # null question upstream
    assert all(gm[i].gold == en[i].gold for i in gm)  # Burmese letter labels map to A-D
    assert en["astronomy/test/58"].meta["subject"] == "astronomy"
    mg = load_items("mgsm", "es", "test", data_dir)
    assert mg[0].meta["answer"] == "18" and mg[0].choices == ()


def test_hellaswag_needs_a_source(data_dir):
    with pytest.raises(UserError, match="data.sources.hellaswag"):
        load_items("hellaswag", "es", "validation", data_dir)


def test_unknown_language_and_split(data_dir):
    with pytest.raises(UserError, match="unknown language 'xx'"):
        load_items("arc_challenge", "xx", "test", data_dir)
    with pytest.raises(UserError, match="did you mean 'test'"):
        load_items("arc_challenge", "es", "tset", data_dir)


# --- the reference study's HF dataset layouts, from local copies ------------------------------
def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_hf_layouts_from_local_copies(tmp_path):
    write_jsonl(tmp_path / "hs" / "es" / "validation.jsonl", [
        {"ind": 7, "activity_label": "Cocinar", "ctx_a": "Un hombre corta cebollas.", "ctx_b": "luego",
         "endings": ["las fríe.", "canta.", "vuela.", "duerme."], "label": "0"}])
    hs = load_items("hellaswag", "es", "validation", tmp_path, source="hs")
    assert hs[0].id == "7" and hs[0].meta["ctx_b"] == "luego" and hs[0].gold == 0
    assert render(hs[0], "cloze").context == "Cocinar: Un hombre corta cebollas. Luego"

    import pandas as pd

    (tmp_path / "gm").mkdir()
    pd.DataFrame([{"sample_id": "astronomy/test/1", "subject": "astronomy", "question": "¿Q?",
                   "option_a": "a", "option_b": "b", "option_c": "c", "option_d": "d", "answer": "C"}]
                 ).to_parquet(tmp_path / "gm" / "es_test.parquet")
    gm = load_items("global_mmlu_lite", "es", "test", tmp_path, source=str(tmp_path / "gm"))
    assert gm[0].gold == 2 and gm[0].meta["subject"] == "astronomy"

    (tmp_path / "arc" / "es").mkdir(parents=True)
    (tmp_path / "arc" / "es" / "val.json").write_text(json.dumps([
        {"id": "ARC-Challenge/validation/X1", "instruction": "¿Q?", "option_a": "a", "option_b": "b",
         "option_c": "c", "option_d": "d", "option_e": "e", "answer": "E"}]), encoding="utf-8")
    arc = load_items("arc_challenge", "es", "validation", tmp_path, source="arc")
    assert arc[0].id == "X1" and arc[0].gold == 4

    write_jsonl(tmp_path / "tqa" / "es" / "val.jsonl", [
        {"question": "¿Q?", "mc1_targets_choices": ["sí", "no", "quizá"], "mc1_targets_labels": [1, 0, 0],
         "mc2_targets_choices": ["sí"], "mc2_targets_labels": [1]}])
    tqa = load_items("truthfulqa_mc1", "es", "validation", tmp_path, source="tqa")
    assert tqa[0].choices[tqa[0].gold] == "sí"

    write_jsonl(tmp_path / "bel" / "heb_Hebr.jsonl", [
        {"link": "https://en.wikibooks.org/x", "question_number": 1, "flores_passage": "P.", "question": "Q?",
         "mc_answer1": "a", "mc_answer2": "b", "mc_answer3": "c", "mc_answer4": "d", "correct_answer_num": "3",
         "dialect": "heb_Hebr", "ds": "2023-05-03"}])
    bel = load_items("belebele", "heb_Hebr", "eval", tmp_path, source="bel")
    assert bel[0].id == "https://en.wikibooks.org/x#1" and bel[0].gold == 2 and bel[0].meta["passage"] == "P."


def test_missing_local_copy_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        load_items("hellaswag", "es", "validation", tmp_path, source="nowhere")


# --- bad data: one located error each -------------------------------------------------------
def okapi_root(tmp_path: Path, rows, raw: str | None = None) -> Path:
    folder = tmp_path / "okapi" / "m_arc"
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (folder / f"es_{split}.json").write_text(raw if raw is not None else json.dumps(rows), encoding="utf-8")
    return tmp_path


GOOD = {"id": "ARC-Challenge/test/A1", "instruction": "Q?", "option_a": "a", "option_b": "b", "answer": "B"}


@pytest.mark.parametrize("rows, raw, pattern", [
    (None, "[{\"id\": ", r"es_test.json:1: malformed JSON"),
    ([{**GOOD, "answer": "D"}], None, r"item A1, field 'answer': answer 'D' is not one of the 2 choices"),
    ([{k: v for k, v in GOOD.items() if k != "instruction"}], None, r"item A1, field 'instruction': missing"),
    ([GOOD, GOOD], None, r"item A1, field 'id': duplicate id"),
    ([], None, r"empty split"),
])
def test_bad_okapi_rows(tmp_path, rows, raw, pattern):
    root = okapi_root(tmp_path, rows, raw)
    with pytest.raises(DataError, match=pattern) as info:
        load_items("arc_challenge", "es", "test", root)
    assert "\n" not in str(info.value)


def test_bad_jsonl_line_is_located(tmp_path):
    path = write_jsonl(tmp_path / "xcopa" / "it" / "test.it.jsonl",
                       [{"premise": "P.", "choice1": "a", "choice2": "b", "question": "cause", "label": 0, "idx": 0}])
    path.write_text(path.read_text() + "{not json\n", encoding="utf-8")
    write_jsonl(tmp_path / "xcopa" / "it" / "val.it.jsonl",
                [{"premise": "P.", "choice1": "a", "choice2": "b", "question": "why", "label": 0, "idx": 0}])
    with pytest.raises(DataError, match=r"test.it.jsonl:2: malformed JSON"):
        load_items("xcopa", "it", "test", tmp_path)
    with pytest.raises(DataError, match=r"field 'question': expected 'cause' or 'effect'"):
        load_items("xcopa", "it", "val", tmp_path)


def test_bad_tsv_rows(tmp_path):
    (tmp_path / "mgsm").mkdir()
    (tmp_path / "mgsm" / "mgsm_es.tsv").write_text("¿Cuánto?\tdieciocho\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mgsm_es.tsv:1, item 0, field 'answer': expected a numeric answer"):
        load_items("mgsm", "es", "test", tmp_path)


# --- data dir resolution -----------------------------------------------------------------
def test_resolve_data_dir(tmp_path, monkeypatch, data_dir):
    monkeypatch.delenv("TRANSFERGRID_DATA", raising=False)
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("TRANSFERGRID_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()
    assert resolve_data_dir(data_dir) == data_dir.resolve()  # --data-dir wins over the env
    with pytest.raises(UserError, match="does not exist"):
        resolve_data_dir(tmp_path / "missing")
    monkeypatch.delenv("TRANSFERGRID_DATA")
    study = transfer_study(["arc_challenge"], ["es"], data={"dir": str(tmp_path)})
    assert resolve_data_dir(study=study) == tmp_path.resolve()


# --- parallel splits -------------------------------------------------------------------------
def test_transfer_splits_parallel_disjoint_deterministic(data_dir):
    study = transfer_study(["arc_challenge", "truthfulqa_mc1"], ["en", "es", "zh"], train=50, test=40)
    a, b = StudyData(study, data_dir), StudyData(study, data_dir)
    for task in study.tasks:
        m = a.manifest(task)
        assert len(m["test"]) == 40 and len(m["train"]) == 45 and len(m["validation"]) == 5
        assert not (set(m["train"]) & set(m["test"]) or set(m["train"]) & set(m["validation"])
                    or set(m["validation"]) & set(m["test"]))
        assert a.manifest_hash(task) == b.manifest_hash(task) == manifest_hash(m)
        for split in ("train", "validation", "test"):
            ids = [[i.id for i in a.items(Cell(task, lang), split)] for lang in study.languages]
            assert ids[0] == ids[1] == ids[2]
    other = StudyData(transfer_study(["arc_challenge"], ["en", "es", "zh"], train=50, test=40,
                                     ), data_dir)
    assert other.manifest("arc_challenge") == a.manifest("arc_challenge")
    reseeded = transfer_study(["arc_challenge"], ["en", "es", "zh"], train=50, test=40)
    reseeded = reseeded.model_copy(update={"splits": reseeded.splits.model_copy(update={"seed": 1})})
    assert StudyData(reseeded, data_dir).manifest("arc_challenge")["test"] != a.manifest("arc_challenge")["test"]


def test_too_few_shared_ids(data_dir):
    study = transfer_study(["global_mmlu_lite"], ["en", "id"], train=300, test=401)  # train: 215 (per_task)
    with pytest.raises(UserError, match=r"global_mmlu_lite: 615 item ids are shared by all of en, id .*215 train"):
        StudyData(study, data_dir).manifest("global_mmlu_lite")


def test_manifests_written_and_checked(tmp_path, data_dir):
    study = transfer_study(["arc_challenge"], ["en", "es"])
    data = StudyData(study, data_dir)
    written = data.write_manifests(tmp_path)
    assert [p.name for p in written] == ["arc_challenge.csv"]  # the reference's split,id format
    lines = written[0].read_text().splitlines()
    tests = [line.split(",", 1)[1].rsplit("/", 1)[1] for line in lines if line.startswith("test,")]
    assert tests == data.manifest("arc_challenge")["test"]
    assert data.write_manifests(tmp_path) == []  # unchanged: nothing rewritten
    first_test = lines.index(next(line for line in lines if line.startswith("test,")))
    lines[first_test] = "test,not-an-id"
    written[0].write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="stored manifest does not match"):
        StudyData(study, data_dir, manifest_dir=tmp_path).manifest("arc_challenge")
    with pytest.raises(DataError, match="stored manifest does not match"):
        data.write_manifests(tmp_path)


def relatedness_study(targets=("ms", "vi", "en"), per_language=None):
    return parse_study({"name": "r", "kind": "relatedness", "models": MODEL,
                        "relatedness": {"source_languages": ["id", "th"], "test_items": 100,
                                        "train_items_per_language": per_language,
                                        "groups": {"related": [targets[0]], "control": list(targets[1:])}}})


def test_relatedness_split_by_passage(data_dir):
    data = StudyData(relatedness_study(), data_dir)
    test = data.items(Cell("belebele", "ms"), "test")
    assert len(test) == 100
    assert [i.id for i in data.items(Cell("belebele", "en"), "test")] == [i.id for i in test]
    train, val = data.relatedness_train(), data.relatedness_validation()
    assert {i.lang for i in train} == {"id", "th"}
    assert not {i.id for i in train} & {i.id for i in val}
    test_ids = {i.id for i in test}
    assert not test_ids & {i.id for i in train + val}
    for lang in ("id", "th"):  # no passage of a test question is seen in training
        test_passages = {i.meta["passage"] for i in data.items(Cell("belebele", lang), "test")}
        assert not test_passages & {i.meta["passage"] for i in train + val if i.lang == lang}
    assert len(train) + len(val) > 1500
    capped = StudyData(relatedness_study(per_language=300), data_dir)
    assert len(capped.relatedness_train()) + len(capped.relatedness_validation()) == 600


def test_relatedness_with_unaligned_language_fails_clearly(data_dir):
    with pytest.raises(UserError, match=r"only 0 question ids are shared .* tl 105/0"):
        StudyData(relatedness_study(targets=("tl", "en")), data_dir).manifest("belebele")


def test_check_reports_cells(data_dir):
    rows = StudyData(transfer_study(["arc_challenge", "mgsm"], ["en", "es"], train=10, test=20), data_dir).check()
    assert [(str(r.cell), r.train, r.validation, r.test, r.problem) for r in rows][:2] == [
        ("arc_challenge:en", 9, 1, 20, None), ("arc_challenge:es", 9, 1, 20, None)]
    assert all(r.problem is None for r in rows)
