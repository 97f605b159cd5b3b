"""MGSM: grade-school maths in 11 languages (human translations), generative with a numeric
answer. The files hold the same 250 problems in the same order: id = row number."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import Benchmark, RowReader, make_items, read_tsv
from transfergrid.errors import UserError
from transfergrid.records import Item

NAME = "mgsm"


def languages(root: Path) -> list[str]:
    return [p.stem.split("_", 1)[1] for p in (root / "mgsm").glob("mgsm_*.tsv")]


def splits(lang: str, root: Path) -> list[str]:
    return ["test"]


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:
        raise UserError(f"{NAME}: only the MGSM TSV files in the data root are supported, not {source!r}")
    path = root / "mgsm" / f"mgsm_{lang}.tsv"
    items = []
    for n, row in enumerate(read_tsv(path, header=False)):
        r = RowReader(row, path, str(n))
        if len(row) != 3:  # two columns plus the line number
            raise r.error(f"expected 2 tab-separated columns (question, answer), got {len(row) - 1}")
        answer = row[1].strip().replace(",", "")
        try:
            float(answer)
        except ValueError:
            raise r.error(f"expected a numeric answer, got {row[1]!r}", "answer") from None
        if not row[0].strip():
            raise r.error("empty question", "question")
        items.append(Item(str(n), NAME, lang, row[0].strip(), (), -1, {"answer": answer}))
    return make_items(items, path)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="curated", generative=True,
                      _languages=languages, _splits=splits, _load=load)
