"""Belebele reading comprehension (human translations of FLORES passages).

Two layouts: the SEA-HELM files here (`{id, label, prompts: [{text, question, choice1..4}]}`, the
id shared by every language) and the official one (facebook/belebele: `{link, question_number,
flores_passage, question, mc_answer1..4, correct_answer_num}`, id = `link#question_number`).
`meta["passage"]` is the passage; `meta["passage_id"]` groups the questions on one passage, so
that a test passage can be kept out of training."""

from __future__ import annotations

import hashlib
from pathlib import Path

from transfergrid.data.base import (
    Benchmark,
    RowReader,
    make_items,
    read_jsonl,
)
from transfergrid.data.sources import source_rows
from transfergrid.records import Item

NAME = "belebele"
FOLDER = "belebele_sea"
SPLITS = ("eval", "examples")
# SEA-HELM's Tagalog files are a separate 100-question sample numbered from 0, not the shared
# numbering of the other languages: their ids get a prefix so they never pass for parallel items.
SEPARATE_SAMPLES = {"tl"}


def languages(root: Path) -> list[str]:
    return [p.name[: -len("_belebele.jsonl")] for p in (root / FOLDER / "eval").glob("*_belebele.jsonl")]


def splits(lang: str, root: Path) -> list[str]:
    return [s for s in SPLITS if (root / FOLDER / s / f"{lang}_belebele.jsonl").is_file()] or ["eval"]


def _seahelm(rows, path, lang: str, split: str = "eval") -> list[Item]:
    items = []
    prefix = (f"{lang}-" if split == "eval" else f"{lang}-{split}-") if lang in SEPARATE_SAMPLES else ""
    for row in rows:
        r = RowReader(row, path)
        item_id = r.item = prefix + str(r.get("id", (int, str)))
        prompts = r.get("prompts", list)
        if not prompts or not isinstance(prompts[0], dict):
            raise r.error("expected a list with one {text, question, choice1..4} object", "prompts")
        p = RowReader({**prompts[0], "_line": r.line}, path, item_id)
        passage = p.get("text")
        choices = tuple(p.get(f"choice{i}") for i in range(1, 5))
        label = row.get("label")  # an index in the eval files, a letter in the examples files
        gold = r.gold(label, 4, "label", letters=isinstance(label, str) and label.strip().isalpha())
        items.append(Item(item_id, NAME, lang, p.get("question"), choices, gold,
                          {"passage": passage, "passage_id": None}))
    return make_items(items, path)


def _official(rows, where, lang: str) -> list[Item]:
    items = []
    for row in rows:
        r = RowReader(row, where)
        link = r.get("link")
        r.item = item_id = f"{link}#{r.get('question_number', (int, str))}"
        choices = tuple(r.get(f"mc_answer{i}") for i in range(1, 5))
        gold = r.gold(r.get("correct_answer_num", int) - 1, 4, "correct_answer_num")
        items.append(Item(item_id, NAME, lang, r.get("question"), choices, gold,
                          {"passage": r.get("flores_passage"), "passage_id": link}))
    return make_items(items, where)


def passage_key(item: Item) -> str:
    """The passage an item belongs to: its link where known, else a hash of the passage text."""
    if item.meta.get("passage_id"):
        return str(item.meta["passage_id"])
    return hashlib.sha256(str(item.meta.get("passage", "")).strip().encode()).hexdigest()[:16]


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:  # facebook/belebele: one config per language, a single 'test' split
        aliases = ("test", "eval") if split == "eval" else (split,)
        rows, where = source_rows(source, lang, aliases, root)
        if rows and "prompts" in rows[0]:
            return _seahelm(rows, where, lang, split)
        return _official(rows, where, lang)
    path = root / FOLDER / split / f"{lang}_belebele.jsonl"
    return _seahelm(read_jsonl(path), path, lang, split)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="curated", generative=False,
                      _languages=languages, _splits=splits, _load=load, hf_layout="facebook/belebele")
