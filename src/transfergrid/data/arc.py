"""ARC-Challenge: Okapi's machine translations (okapi/m_arc) plus the English AI2 original.

Ids are the ARC ids (`Mercury_SC_415719`): Okapi's `ARC-Challenge/test/X` is AI2's `X`, so one id
is one question in every language."""

from __future__ import annotations

import logging
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

NAME = "arc_challenge"
log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")
AI2_FILES = {"train": "Train", "validation": "Dev", "test": "Test"}
HF_SPLITS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}


def languages(root: Path) -> list[str]:
    langs = set(okapi_languages(root / "okapi" / "m_arc", "test.json"))
    if (root / "ai2_arc" / "ARC-Challenge-Test.jsonl").is_file():
        langs.add("en")
    return sorted(langs)


def splits(lang: str, root: Path) -> list[str]:
    return list(SPLITS)


def arc_id(raw: str) -> str:
    return raw.rsplit("/", 1)[-1]


def _okapi(rows, path, lang: str, skip_unlabelled: bool = False) -> list[Item]:
    items = []
    for row in rows:
        item_id = arc_id(RowReader(row, path).get("id"))
        if skip_unlabelled and str(row.get("answer") or "").strip() == "":
            # a hub row without an answer (the reference's processor skips these too): the item
            # does not exist in this language; a manifest naming it reports it missing
            log.warning("%s: item %s has no answer; skipped", path, item_id)
            continue
        items.append(okapi_choice_item(row, path, NAME, lang, item_id))
    return make_items(items, path)


def _ai2(path: Path) -> list[Item]:
    items = []
    for row in read_jsonl(path):
        r = RowReader(row, path)
        item_id = r.get("id")
        r.item = item_id
        question = r.get("question", dict)
        q = RowReader(question, path, item_id)
        choices = q.get("choices", list)
        labels = [str(c.get("label")) for c in choices if isinstance(c, dict)]
        texts = [RowReader(c, path, item_id).get("text") for c in choices if isinstance(c, dict)]
        if len(texts) != len(choices) or len(texts) < 2:
            raise r.error("expected a list of {text, label} choices", "question.choices")
        key = r.get("answerKey")
        if key not in labels:
            raise r.error(f"answer {key!r} is not one of the choice labels {labels}", "answerKey")
        items.append(Item(item_id, NAME, "en", q.get("stem"), tuple(texts), labels.index(key), {}))
    return make_items(items, path)


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:  # alexandrainst/m_arc: the Okapi layout, one config per language
        rows, where = source_rows(source, lang, HF_SPLITS[split], root)
        return _okapi(rows, where, lang, skip_unlabelled=True)
    if lang == "en":
        return _ai2(root / "ai2_arc" / f"ARC-Challenge-{AI2_FILES[split]}.jsonl")
    path = root / "okapi" / "m_arc" / f"{lang}_{split}.json"
    return _okapi(read_json(path), path, lang)


BENCHMARK = Benchmark(NAME, has_norm=True, construction="translated", generative=False,
                      _languages=languages, _splits=splits, _load=load, hf_layout="alexandrainst/m_arc")
