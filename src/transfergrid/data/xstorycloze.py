"""XStoryCloze (human translations of the StoryCloze spring 2016 validation set). Rows are
parallel and `InputStoryid` is the same in every language: it is the item id."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import Benchmark, RowReader, make_items, read_tsv
from transfergrid.errors import UserError
from transfergrid.records import Item

NAME = "xstorycloze"
SPLITS = ("train", "eval")
FOLDER = "xstorycloze"


def _path(root: Path, lang: str, split: str) -> Path:
    return root / FOLDER / f"spring2016.val.{lang}.tsv.split_20_80_{split}.tsv"


def languages(root: Path) -> list[str]:
    return [p.name.split(".")[2] for p in (root / FOLDER).glob("spring2016.val.*.tsv.split_20_80_eval.tsv")]


def splits(lang: str, root: Path) -> list[str]:
    return list(SPLITS)


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:
        raise UserError(f"{NAME}: only the XStoryCloze TSV files in the data root are supported, not {source!r}")
    path = _path(root, lang, split)
    items = []
    for row in read_tsv(path, header=True):
        r = RowReader(row, path)
        r.item = item_id = r.get("InputStoryid")
        story = " ".join(r.get(f"InputSentence{i}").strip() for i in range(1, 5))
        endings = (r.get("RandomFifthSentenceQuiz1"), r.get("RandomFifthSentenceQuiz2"))
        gold = r.gold(r.get("AnswerRightEnding", int) - 1, 2, "AnswerRightEnding")
        items.append(Item(item_id, NAME, lang, story, endings, gold, {}))
    return make_items(items, path)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="curated", generative=False,
                      _languages=languages, _splits=splits, _load=load)
