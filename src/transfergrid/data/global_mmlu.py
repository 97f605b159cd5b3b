"""Global-MMLU-Lite (curated, human-checked translations): the SEA-HELM files here, or
CohereLabs/Global-MMLU-Lite's layout (`sample_id, subject, question, option_a..d, answer`).
Ids are `sample_id` (`astronomy/test/58`), shared by every language."""

from __future__ import annotations

import logging
from pathlib import Path

from transfergrid.data.base import (
    Benchmark,
    RowReader,
    make_items,
    read_jsonl,
)
from transfergrid.data.sources import source_rows
from transfergrid.records import Item

NAME = "global_mmlu_lite"
log = logging.getLogger(__name__)
SPLITS = ("dev", "test")
FOLDER = "global_mmlu_lite_sea"
# SEA-HELM's Burmese files label the options with Burmese letters (ka, kha, ga, gha) for A-D.
LOCAL_LETTERS = {"\u1000": "A", "\u1001": "B", "\u1002": "C", "\u1003": "D"}


def languages(root: Path) -> list[str]:
    prefix = "global_mmlu_lite_"
    return [p.name[len(prefix): -len("_test.jsonl")] for p in (root / FOLDER).glob(f"{prefix}*_test.jsonl")]


def splits(lang: str, root: Path) -> list[str]:
    return list(SPLITS)


def _item(fields: RowReader, lang: str, item_id: str, answer_field: str, subject: str | None) -> Item:
    choices = tuple(fields.get(f"option_{x}") for x in "abcd")
    answer = fields.row.get(answer_field)
    local = LOCAL_LETTERS.get(answer, answer) if isinstance(answer, str) else answer  # a list is no dict key
    gold = fields.gold(local, 4, answer_field, letters=True)
    return Item(item_id, NAME, lang, fields.get("question"), choices, gold, {"subject": subject})


def _seahelm(path: Path, lang: str) -> list[Item]:
    items = []
    for row in read_jsonl(path):
        r = RowReader(row, path)
        meta = r.get("metadata", dict)
        item_id = RowReader(meta, path).get("sample_id")
        r.item = item_id
        prompts = r.get("prompts", list)
        if not prompts or not isinstance(prompts[0], dict):
            raise r.error("expected a list with one {question, option_a..d} object", "prompts")
        if "question" in prompts[0] and prompts[0]["question"] is None:
            # Upstream leaves a few questions untranslated (null): the item does not exist in
            # this language. Parallel splits report the missing id; anything else is an error.
            log.warning("%s:%s: item %s has no question (null upstream); skipped", path, r.line, item_id)
            continue
        fields = RowReader({**prompts[0], "label": row.get("label"), "_line": r.line}, path, item_id)
        subject = prompts[0].get("subject") or meta.get("subject")
        items.append(_item(fields, lang, item_id, "label", subject))
    return make_items(items, path)


def _hf_layout(rows, where, lang: str) -> list[Item]:
    items = []
    for row in rows:
        r = RowReader(row, where)
        r.item = item_id = r.get("sample_id")
        items.append(_item(r, lang, item_id, "answer", row.get("subject")))
    return make_items(items, where)


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:
        rows, where = source_rows(source, lang, (split,), root)
        return _hf_layout(rows, where, lang)
    return _seahelm(root / FOLDER / f"global_mmlu_lite_{lang}_{split}.jsonl", lang)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="curated", generative=False,
                      _languages=languages, _splits=splits, _load=load, hf_layout="CohereLabs/Global-MMLU-Lite")
