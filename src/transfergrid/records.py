"""Small frozen records that flow between stages (DESIGN.md: Records)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Cell:
    """One (task, language) cell of the grid."""

    task: str
    lang: str

    def __str__(self) -> str:
        return f"{self.task}:{self.lang}"

    @classmethod
    def parse(cls, text: str) -> Cell:
        task, sep, lang = text.partition(":")
        if not sep or not task or not lang:
            from transfergrid.errors import UserError

            raise UserError(f"bad cell {text!r}: expected TASK:LANG, for example arc_challenge:es")
        return cls(task.strip(), lang.strip())


@dataclass(frozen=True)
class Item:
    """One benchmark item in one language.

    `context` is the question (or premise / story); `choices` the answer options in order;
    `gold` the index of the correct choice (-1 for generative items, whose answer is in
    `meta["answer"]`). `meta` carries what a prompt needs beyond that (passage, subject,
    cause/effect, ...); it takes no part in equality or hashing.
    """

    id: str
    task: str
    lang: str
    context: str
    choices: tuple[str, ...]
    gold: int
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def cell(self) -> Cell:
        return Cell(self.task, self.lang)
