"""The reference's four Hugging Face datasets, from small files written in their hub layouts:
ids shared across languages exactly as the reference matches them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfergrid.data import StudyData, load_items
from transfergrid.data import sources as src
from transfergrid.data.reference import SOURCES
from transfergrid.errors import DataError, UserError
from transfergrid.records import Cell
from transfergrid.study import parse_study

pd = pytest.importorskip("pandas")


def jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def parquet(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


def tqa_row(question, n_mc1=3, n_mc2=2, true2=1):
    return {"question": question, "mc1_targets_choices": [f"{question}-c{k}" for k in range(n_mc1)],
            "mc1_targets_labels": [1] + [0] * (n_mc1 - 1),
            "mc2_targets_choices": [f"{question}-m{k}" for k in range(n_mc2)],
            "mc2_targets_labels": [1] * true2 + [0] * (n_mc2 - true2)}


def arc_row(raw_id, answer="B"):
    return {"id": raw_id, "instruction": f"Q {raw_id}?", "option_a": "a", "option_b": "b", "option_c": "c",
            "option_d": "d", "answer": answer}


def hs_row(n, label=" 2"):
    return {"id": f"hellaswag/validation/{n}", "ind": 99, "activity_label": "Cook", "ctx_a": f"A man {n}.",
            "ctx_b": "then", "endings": ["e0", "e1", "e2", "e3"], "label": label}


# --- source strings ---------------------------------------------------------------------------
def test_source_grammar():
    assert src.source_for(SOURCES["truthfulqa_mc1"], "es")[0].startswith("hf:alexandrainst/m_truthfulqa@f0445d4")
    part, single = src.source_for(SOURCES["truthfulqa_mc1"], "en")
    assert single and src.parse_hf(part[3:]) == ("Dr4kl3s/truthfulqa_en_aligned", "default",
                                                 "7332da38d96e69b5d6f2502cd45db3fe011b2f19")
    assert src.parse_hf("alexandrainst/m_arc") == ("alexandrainst/m_arc", None, None)
    with pytest.raises(UserError, match="is not LANG=SOURCE"):
        src.source_for("hf:a/b zh", "zh")
    with pytest.raises(UserError, match="expected hf:OWNER/NAME"):
        load_items("arc_challenge", "es", "test", Path("."), source="hf:nonsense")


# --- local copies in the hub repositories' file layouts ----------------------------------------
def test_truthfulqa_row_ids_from_m_truthfulqa_and_en_aligned(tmp_path):
    """m_truthfulqa: data/{lang}/val.jsonl; truthfulqa_en_aligned: data/validation-*.parquet with
    mc1_targets as text holding NumPy arrays (as the reference parses it) or as a struct."""
    for lang in ("de", "es"):
        jsonl(tmp_path / "mtqa" / "data" / lang / "val.jsonl", [tqa_row(f"{lang}{k}") for k in range(3)])
    en = [{"question": "What?", "mc1_targets": "{'choices': array(['right', 'wrong'], dtype=object), "
                                              "'labels': array([1, 0], dtype=int32)}",
           "mc2_targets": "{'choices': array(['right', 'ok', 'wrong'], dtype=object), "
                          "'labels': array([1, 1, 0])}"},
          {"question": "Who?", "mc1_targets": {"choices": ["me", "you", "them"], "labels": [1, 0, 0]},
           "mc2_targets": {"choices": ["me"], "labels": [1]}}]
    parquet(tmp_path / "en_aligned" / "data" / "validation-00000-of-00001.parquet", en[:1])
    parquet(tmp_path / "en_aligned2" / "data" / "validation-00000-of-00001.parquet", en[1:])
    source = f"{tmp_path / 'mtqa'} en={tmp_path / 'en_aligned'}"
    de, es = (load_items("truthfulqa_mc1", lang, "validation", tmp_path, source) for lang in ("de", "es"))
    assert [i.id for i in de] == [i.id for i in es] == ["0", "1", "2"]  # row order = truth_id
    assert de[1].context == "de1" and es[1].context == "es1"
    assert de[0].meta["shape"] == [3, 2, 1]
    eng = load_items("truthfulqa_mc1", "en", "validation", tmp_path, source)
    assert [i.id for i in eng] == ["0"] and eng[0].choices[eng[0].gold] == "right"
    assert eng[0].meta["shape"] == [2, 3, 2]
    eng = load_items("truthfulqa_mc1", "en", "validation", tmp_path, f"{tmp_path / 'mtqa'} en={tmp_path / 'en_aligned2'}")
    assert eng[0].choices[eng[0].gold] == "me" and eng[0].meta["shape"] == [3, 1, 1]


def test_truthfulqa_unparseable_targets_are_located(tmp_path):
    parquet(tmp_path / "en" / "data" / "validation-00000-of-00001.parquet",
            [{"question": "Q", "mc1_targets": "{'choices': [", "mc2_targets": "{}"}])
    with pytest.raises(DataError, match=r"validation-00000-of-00001.parquet.*mc1_targets.*unparseable"):
        load_items("truthfulqa_mc1", "en", "validation", tmp_path, f"{tmp_path / 'x'} en={tmp_path / 'en'}")


def test_hellaswag_m_hellaswag_layout(tmp_path):
    """data/{lang}/val.jsonl with the Okapi `id` (preferred over `ind`) and a label like " 2"."""
    jsonl(tmp_path / "mhs" / "data" / "de" / "val.jsonl", [hs_row(10004), hs_row(9, label="0")])
    jsonl(tmp_path / "rhs" / "data" / "zh" / "val.jsonl", [hs_row(9, label="1")])
    source = f"{tmp_path / 'mhs'} zh={tmp_path / 'rhs'}"
    de = load_items("hellaswag", "de", "validation", tmp_path, source)
    assert [(i.id, i.gold) for i in de] == [("hellaswag/validation/10004", 2), ("hellaswag/validation/9", 0)]
    zh = load_items("hellaswag", "zh", "validation", tmp_path, source)
    assert [(i.id, i.gold) for i in zh] == [("hellaswag/validation/9", 1)]


def test_arc_m_arc_layout_and_global_mmlu_lite_shards(tmp_path):
    jsonl(tmp_path / "marc" / "data" / "de" / "train.jsonl",
          [arc_row("ARC-Challenge/train/Q1"), arc_row("ARC-Challenge/train/Q2", answer=None)])
    arc = load_items("arc_challenge", "de", "train", tmp_path, str(tmp_path / "marc"))
    assert [(i.id, i.gold) for i in arc] == [("Q1", 1)]  # a row without an answer is skipped
    row = {"sample_id": "astronomy/dev/0", "subject": "astronomy", "subject_category": "STEM",
           "question": "Q?", "option_a": "a", "option_b": "b", "option_c": "c", "option_d": "d", "answer": "D",
           "required_knowledge": "[]", "time_sensitive": "No", "reference": "[]", "culture": "[]",
           "region": "[]", "country": "[]", "cultural_sensitivity_label": "CA", "is_annotated": True}
    parquet(tmp_path / "gml" / "de" / "dev-00000-of-00001.parquet", [row])
    gm = load_items("global_mmlu_lite", "de", "dev", tmp_path, str(tmp_path / "gml"))
    assert [(i.id, i.gold) for i in gm] == [("astronomy/dev/0", 3)]


def test_save_to_disk_copy(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"val": datasets.Dataset.from_list([tqa_row("a"), tqa_row("b")])}
                         ).save_to_disk(str(tmp_path / "saved" / "de"))
    items = load_items("truthfulqa_mc1", "de", "validation", tmp_path, str(tmp_path / "saved"))
    assert [i.id for i in items] == ["0", "1"]


# --- the hub path itself, with `datasets.load_dataset` answering from local files ---------------
def test_hub_loading_uses_the_pinned_revisions_and_configs(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []
    files = {"de": [tqa_row("d0"), tqa_row("d1")], "es": [tqa_row("e0"), tqa_row("e1")]}
    for lang, rows in files.items():
        parquet(tmp_path / lang / "val.parquet", rows)
    parquet(tmp_path / "train.parquet", [tqa_row("t0")])
    real = datasets.load_dataset

    def fake_load_dataset(name, config=None, revision=None):
        calls.append((name, config, revision))
        if config == "es":  # a dataset with another split first: truth_ids count on after it
            return real("parquet", data_files={"train": str(tmp_path / "train.parquet"),
                                                                "val": str(tmp_path / "es" / "val.parquet")})
        return real("parquet", data_files={"val": str(tmp_path / config / "val.parquet")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src._hf_dataset.cache_clear()
    try:
        de = load_items("truthfulqa_mc1", "de", "validation", tmp_path, SOURCES["truthfulqa_mc1"])
        es = load_items("truthfulqa_mc1", "es", "validation", tmp_path, SOURCES["truthfulqa_mc1"])
    finally:
        src._hf_dataset.cache_clear()
    assert calls == [("alexandrainst/m_truthfulqa", "de", "f0445d470f1925882b990f5f247fdcf288972f60"),
                     ("alexandrainst/m_truthfulqa", "es", "f0445d470f1925882b990f5f247fdcf288972f60")]
    assert [i.id for i in de] == ["0", "1"] and [i.id for i in es] == ["1", "2"]


def test_hub_failure_is_one_line(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(name, config=None, revision=None):
        raise ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    src._hf_dataset.cache_clear()
    with pytest.raises(UserError, match=r"hf:richmondsin/m_hellaswag \(config 'zh', revision 8d9642f.*\) could "
                                        r"not be loaded: Couldn't reach 'x' on the Hub \(LocalEntryNotFoundError\) "
                                        r"\(offline\?"):
        load_items("hellaswag", "zh", "validation", tmp_path, SOURCES["hellaswag"])
    src._hf_dataset.cache_clear()


# --- a manifest over these layouts ---------------------------------------------------------------
def test_manifest_over_hub_layouts_pairs_rows_by_truth_id(tmp_path):
    for lang in ("de", "es", "fr"):
        jsonl(tmp_path / "mtqa" / "data" / lang / "val.jsonl", [tqa_row(f"{lang}{k}") for k in range(12)])
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "truthfulqa.csv").write_text(
        "split,id\n" + "".join(f"train,{k}\n" for k in (0, 2, 3, 5, 7, 8, 9, 10, 11)) + "test,1\ntest,4\ntest,6\n",
        encoding="utf-8")
    study = parse_study({"name": "t", "models": [{"id": "m", "source": "bundled:x"}],
                         "grid": {"tasks": ["truthfulqa_mc1"], "languages": ["de", "es", "fr"]},
                         "data": {"sources": {"truthfulqa_mc1": str(tmp_path / "mtqa")}},
                         "splits": {"manifests": str(tmp_path / "man")}})
    data = StudyData(study, tmp_path)
    test = {lang: [i.context for i in data.items(Cell("truthfulqa_mc1", lang), "test")] for lang in ("de", "fr")}
    assert test == {"de": ["de1", "de4", "de6"], "fr": ["fr1", "fr4", "fr6"]}
    m = data.manifest("truthfulqa_mc1")
    assert len(m["validation"]) == 1 and len(m["train"]) == 8
