"""MMLU: Okapi's machine translations (okapi/m_mmlu, dev and val; no test) plus the English
original (mmlu_en). Ids are `subject/split/i` in both, so one id is one question everywhere."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import (
    Benchmark,
    RowReader,
    make_items,
    read_json,
    read_jsonl,
)
from transfergrid.data.okapi import okapi_choice_item, okapi_languages
from transfergrid.data.sources import source_rows
from transfergrid.records import Item

NAME = "mmlu"
SPLITS = ("dev", "validation")
OKAPI_FILES = {"dev": "dev", "validation": "val"}
HF_SPLITS = {"dev": ("dev",), "validation": ("validation", "val")}


def languages(root: Path) -> list[str]:
    langs = set(okapi_languages(root / "okapi" / "m_mmlu", "val.json"))
    if (root / "mmlu_en" / "validation.jsonl").is_file():
        langs.add("en")
    return sorted(langs)


def splits(lang: str, root: Path) -> list[str]:
    return list(SPLITS)


def _okapi(rows, path, lang: str) -> list[Item]:
    items = []
    for row in rows:
        item_id = RowReader(row, path).get("id")
        items.append(okapi_choice_item(row, path, NAME, lang, item_id, {"subject": item_id.split("/", 1)[0]}))
    return make_items(items, path)


def _english(path: Path) -> list[Item]:
    items = []
    for row in read_jsonl(path):
        r = RowReader(row, path)
        r.item = item_id = r.get("id")
        choices = r.get("choices", list)
        if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
            raise r.error("expected a list of choice strings", "choices")
        gold = r.gold(r.get("answer", int), len(choices), "answer")
        items.append(Item(item_id, NAME, "en", r.get("question"), tuple(choices), gold,
                          {"subject": r.get("subject")}))
    return make_items(items, path)


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:
        rows, where = source_rows(source, lang, HF_SPLITS[split], root)
        return _okapi(rows, where, lang)
    if lang == "en":
        return _english(root / "mmlu_en" / f"{split}.jsonl")
    path = root / "okapi" / "m_mmlu" / f"{lang}_{OKAPI_FILES[split]}.json"
    return _okapi(read_json(path), path, lang)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="translated", generative=False,
                      _languages=languages, _splits=splits, _load=load)
