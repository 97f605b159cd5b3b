"""Small frozen records that flow between stages (DESIGN.md: Records)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class ItemScore:
    """One item's scored result (`scoring`, `generation`); `to_dict()` is JSON/Parquet-ready (paired
    tests and bootstraps use it)."""

    id: str
    task: str
    lang: str
    gold: int
    loglik: tuple[float, ...]
    pred: int
    pred_norm: int
    pred_bytes: int
    correct: bool
    correct_norm: bool
    correct_bytes: bool
    is_greedy: tuple[bool, ...] = ()
    n_tokens: tuple[int, ...] = ()
    generation: str | None = None  # generative tasks: the raw greedy output
    answer: str | None = None  # generative tasks: the extracted answer
    # generative tasks: the harness's other mgsm_direct filter (remove_whitespace: the whole stripped
    # generation must match); `correct` is its flexible-extract filter, the headline
    correct_strict: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["correct_strict"] is None:  # multiple-choice records keep their columns
            del d["correct_strict"]
        d["loglik"], d["is_greedy"], d["n_tokens"] = list(self.loglik), list(self.is_greedy), list(self.n_tokens)
        return d
