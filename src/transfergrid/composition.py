"""Multi-source composition (issue 15, the paper's open question): one adapter trained on a set of cells.

A source is either one cell or a set of cells pooled into one training set. In the study file's
grid, `sources` lists cells ("arc_challenge:en"), sets (["arc_challenge:en", "arc_challenge:es"])
and generators: "cells" (every cell of the grid, one source each) and "pairs:TASK" (every pair of
TASK's languages). The whole field may also be one generator string (`sources = "pairs:arc_challenge"`).

A set's label is what results carry as the source, in the released schema's two columns: the
members' tasks and languages, each joined with "+" member by member (sorted cells), a column whose
parts are all equal written once. So {arc_challenge:en, arc_challenge:es} is "arc_challenge:en+es"
(`fine_tuned_dataset` arc_challenge, `fine_tuned_language` en+es) and {arc_challenge:en,
truthfulqa_mc1:es} is "arc_challenge+truthfulqa_mc1:en+es" (positional pairs). Task names and
language codes never contain "+", so a label decodes to exactly one set (`members`), and a
single cell's label is its own "task:lang" (its keys and rows are as before composition existed).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from transfergrid.records import Cell

SEP = "+"
GENERATORS = ("cells", "pairs:TASK")


def source_label(cells: Sequence[Cell]) -> str:
    """The label of a source: "task:lang" for one cell, the joined form (module docstring) for a set."""
    members = sorted(set(cells))
    if not members:
        raise ValueError("a source needs at least one cell")
    if len(members) == 1:
        return str(members[0])
    tasks, langs = [c.task for c in members], [c.lang for c in members]
    return f"{_join(tasks)}:{_join(langs)}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(set(parts)) == 1 else SEP.join(parts)


def members(task: str, lang: str) -> tuple[Cell, ...]:
    """The cells of a source given its two released-schema fields (a single cell: itself)."""
    tasks, langs = str(task).split(SEP), str(lang).split(SEP)
    if len(tasks) == 1:
        tasks = tasks * len(langs)
    if len(langs) == 1:
        langs = langs * len(tasks)
    if len(tasks) != len(langs):
        raise ValueError(f"source {task}:{lang}: {len(tasks)} tasks but {len(langs)} languages")
    return tuple(sorted({Cell(t, lang) for t, lang in zip(tasks, langs)}))


def members_of(label: str) -> tuple[Cell, ...]:
    cell = Cell.parse(label)
    return members(cell.task, cell.lang)


def is_set(label: str) -> bool:
    return SEP in str(label)


def expand_sources(spec: str | Sequence[str | Sequence[str]], tasks: Sequence[str],
                   languages: Sequence[str]) -> list[tuple[Cell, ...]]:
    """The study file's `grid.sources` -> each source's sorted member cells, in the order given
    (duplicates dropped). Raises ValueError naming the bad entry."""
    grid = [Cell(t, lang) for t in tasks for lang in languages]
    entries = [spec] if isinstance(spec, str) else list(spec)
    out: list[tuple[Cell, ...]] = []
    for entry in entries:
        if isinstance(entry, str) and (entry == "cells" or entry.startswith("pairs:")):
            out += _generated(entry, tasks, languages, grid)
        elif isinstance(entry, str):
            out.append((_grid_cell(entry, tasks, languages),))
        elif isinstance(entry, Sequence) and all(isinstance(x, str) for x in entry) and entry:
            cells = [_grid_cell(x, tasks, languages) for x in entry]
            dup = sorted({str(c) for c in cells if cells.count(c) > 1})
            if dup:
                raise ValueError(f"set {list(entry)}: {dup[0]} listed twice")
            out.append(tuple(sorted(cells)))
        else:
            raise ValueError(f"{entry!r} is not a TASK:LANG cell, a list of cells (a set) or a generator "
                             f"({', '.join(GENERATORS)})")
    return list(dict.fromkeys(out))


def _generated(entry: str, tasks, languages, grid) -> list[tuple[Cell, ...]]:
    if entry == "cells":
        return [(c,) for c in grid]
    task = entry.removeprefix("pairs:")
    if task not in tasks:
        raise ValueError(f"{entry!r}: {task!r} is not a task of the grid (tasks {list(tasks)})")
    if len(languages) < 2:
        raise ValueError(f"{entry!r}: pairs need at least two languages")
    return [(Cell(task, a), Cell(task, b)) for a, b in itertools.combinations(languages, 2)]


def _grid_cell(text: str, tasks, languages) -> Cell:
    task, sep, lang = text.partition(":")
    if not sep or task not in tasks or lang not in languages:
        raise ValueError(f"{text!r} is not a TASK:LANG cell of the grid (tasks {list(tasks)}, "
                         f"languages {list(languages)})")
    return Cell(task, lang)


def pooled_items(data, cells: Sequence[Cell], split: str, seed: int) -> list:
    """A set's training (or validation) items: its cells' items pooled, in an order fixed by the
    seed (so `training.limit` takes a mix of the cells, not the first cell's items)."""
    items = [it for cell in sorted(cells) for it in data.items(cell, split)]
    random.Random(f"compose/{split}/{seed}").shuffle(items)
    return items
