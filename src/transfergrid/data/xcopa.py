"""XCOPA (human translations of COPA) plus the English COPA original (SuperGLUE files).

Ids are `{split}/{idx}`: XCOPA's val/test `idx` i translates COPA's val/test `idx` i. COPA's test
file has no labels; they are taken from XCOPA's test file (the same questions)."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import Benchmark, RowReader, make_items, read_jsonl
from transfergrid.errors import DataError, UserError
from transfergrid.records import Item

NAME = "xcopa"


def languages(root: Path) -> list[str]:
    langs = [p.parent.name for p in (root / "xcopa").glob("*/test.*.jsonl")]
    if (root / "copa_en" / "test.jsonl").is_file():
        langs.append("en")
    return langs


def splits(lang: str, root: Path) -> list[str]:
    return ["train", "val", "test"] if lang == "en" else ["val", "test"]


def _path(root: Path, lang: str, split: str) -> Path:
    if lang == "en":
        return root / "copa_en" / f"{split}.jsonl"
    return root / "xcopa" / lang / f"{split}.{lang}.jsonl"


def _items(path: Path, lang: str, split: str, labels: dict[int, int] | None = None) -> list[Item]:
    items = []
    for row in read_jsonl(path):
        r = RowReader(row, path)
        idx = r.get("idx", int)
        r.item = item_id = f"{split}/{idx}"
        question = r.get("question")
        if question not in ("cause", "effect"):
            raise r.error(f"expected 'cause' or 'effect', got {question!r}", "question")
        label = row.get("label") if labels is None else labels.get(idx)
        if label is None:
            raise r.error("no label (and no XCOPA test item with this idx to take it from)", "label")
        gold = r.gold(label, 2, "label")
        items.append(Item(item_id, NAME, lang, r.get("premise"), (r.get("choice1"), r.get("choice2")), gold,
                          {"question": question}))
    return make_items(items, path)


def _copa_test_labels(root: Path) -> dict[int, int]:
    others = sorted(p for p in (root / "xcopa").glob("*/test.*.jsonl"))
    if not others:
        raise DataError("COPA's test split has no labels and no XCOPA test file was found to take them from",
                        file=root / "copa_en" / "test.jsonl")
    lang = others[0].parent.name
    return {int(item.id.split("/")[1]): item.gold for item in _items(others[0], lang, "test")}


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:
        raise UserError(f"{NAME}: only the XCOPA / COPA JSONL files in the data root are supported, not {source!r}")
    labels = _copa_test_labels(root) if (lang, split) == ("en", "test") else None
    return _items(_path(root, lang, split), lang, split, labels)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="curated", generative=False,
                      _languages=languages, _splits=splits, _load=load)
