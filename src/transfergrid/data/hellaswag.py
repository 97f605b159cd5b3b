"""HellaSwag, multilingual (Okapi's machine translations, as alexandrainst/m_hellaswag).

No files of it are in the data root: it loads only from `data.sources.hellaswag`, either
`hf:alexandrainst/m_hellaswag` (split `val`; the reference takes Chinese from
richmondsin/m_hellaswag: `... zh=hf:richmondsin/m_hellaswag`) or a local copy in that layout
(`{id, activity_label, ctx_a, ctx_b, endings, label}` per row, label a digit string such as
" 2"; DIR/data/{lang}/val.jsonl as on the hub, or DIR/{lang}/validation.jsonl, .json, .parquet).
Id = `id` (`hellaswag/validation/10004`, the reference's), else the original's `ind`."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import Benchmark, RowReader, make_items
from transfergrid.data.sources import source_rows
from transfergrid.errors import UserError
from transfergrid.records import Item

NAME = "hellaswag"
HF_SPLITS = {"validation": ("validation", "val"), "train": ("train",)}


def languages(root: Path) -> list[str]:
    return []


def splits(lang: str, root: Path) -> list[str]:
    return ["validation"]


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is None:
        raise UserError(f"{NAME}: no local files; set data.sources.hellaswag to 'hf:alexandrainst/m_hellaswag' "
                        f"or to a local copy in that layout (DIR/{lang}/validation.jsonl)")
    rows, where = source_rows(source, lang, HF_SPLITS.get(split, (split,)), root)
    items = []
    for n, row in enumerate(rows):
        r = RowReader(row, where)
        raw_id = row.get("id", row.get("ind"))
        r.item = item_id = str(raw_id) if raw_id is not None else str(n)
        endings = r.get("endings", list)
        if len(endings) < 2 or not all(isinstance(e, str) for e in endings):
            raise r.error("expected a list of ending strings", "endings")
        gold = r.gold(str(r.get("label", (int, str))).strip(), len(endings), "label")
        meta = {"activity_label": r.get("activity_label", optional=True) or "",
                "ctx_a": r.get("ctx_a"), "ctx_b": r.get("ctx_b", optional=True) or ""}
        context = f"{meta['ctx_a']} {meta['ctx_b']}".strip()
        items.append(Item(item_id, NAME, lang, context, tuple(endings), gold, meta))
    return make_items(items, where)


BENCHMARK = Benchmark(NAME, has_norm=True, construction="translated", generative=False,
                      _languages=languages, _splits=splits, _load=load, hf_layout="alexandrainst/m_hellaswag")
