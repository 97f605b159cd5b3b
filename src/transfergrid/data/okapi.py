"""Shared row format of the Okapi translations (and of alexandrainst/m_arc, m_mmlu):
`{id, instruction, option_a..option_e, answer (letter)}`."""

from __future__ import annotations

from pathlib import Path

from transfergrid.data.base import LETTERS, Row, RowReader
from transfergrid.records import Item


def okapi_choice_item(row: Row, path: object, task: str, lang: str, item_id: str, meta: dict | None = None) -> Item:
    r = RowReader(row, path, item_id)
    question = r.get("instruction")
    choices = []
    for letter in LETTERS[:5].lower():
        text = row.get(f"option_{letter}")
        if text is None or (isinstance(text, str) and not text.strip()):
            break  # options are consecutive; option_e exists only for a few items
        choices.append(r.get(f"option_{letter}"))
    if len(choices) < 2:
        raise r.error("expected at least option_a and option_b", "option_b")
    gold = r.gold(r.get("answer"), len(choices), "answer", letters=True)
    return Item(item_id, task, lang, question, tuple(choices), gold, meta or {})


def okapi_languages(folder: Path, suffix: str) -> list[str]:
    """Languages with a file `{lang}_{suffix}` in an Okapi folder."""
    return [p.name[: -len(suffix) - 1] for p in folder.glob(f"*_{suffix}")]
