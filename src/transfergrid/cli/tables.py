"""Tables for people and for scripts: `--format table | csv | json` (`recommend`, `status`).

rich fits a table to the console by cutting cells to "arc_…"; a key column (a source cell, a model)
that reads "arc_…" says nothing, so no value is ever cut. In a pipe there is no terminal to fit: the
table prints at its natural width, whatever COLUMNS says. On a narrower terminal the columns other
than the key ones shrink to their longest value (headers fold), and where that is not enough the
last of them are left out, with a line naming them.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Collection, Sequence
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from transfergrid.errors import UserError

FORMATS = ("table", "csv", "json")
FormatOpt = Annotated[str, typer.Option("--format", help="table (to read) | csv | json (for scripts)")]


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


def key_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, key: Collection[str] = (),
              numeric: Collection[str] = (), title_justify: str = "center",
              widths: Sequence[int] | None = None) -> Table:
    """A rich table of display strings whose key columns never wrap; `widths` fixes the other
    columns' widths (their headers fold)."""
    table = Table(title=title, title_justify=title_justify)
    for i, name in enumerate(columns):
        justify = "right" if name in numeric else "left"
        if name in key:
            table.add_column(name, justify=justify, no_wrap=True, min_width=_longest([name, *(r[i] for r in rows)]))
        else:
            table.add_column(name, justify=justify, overflow="fold", width=widths[i] if widths else None)
    for row in rows:
        table.add_row(*row)
    return table


def _longest(texts) -> int:
    return max([1, *map(cell_len, texts)])


def _natural(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(1 << 20), table).maximum


def print_table(console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *,
                key: Collection[str] = (), numeric: Collection[str] = (), title_justify: str = "center") -> None:
    """In a pipe: at the table's natural width, whatever COLUMNS says, so a file or `grep` sees every
    value as written. On a narrower terminal: each value column at least its longest value wide,
    the room left widening the headers; where even that is too wide, the last columns other than
    the key ones are left out and a line names them."""
    options = {"key": key, "numeric": numeric, "title_justify": title_justify}
    table = key_table(title, columns, rows, **options)
    natural = _natural(console, table)
    if not console.is_terminal:
        Console(file=console.file, width=max(natural, 1), emoji=False, highlight=False).print(table)
        return
    kept = list(range(len(columns)))
    if natural > console.width:
        def fitted(grow: bool) -> Table:
            names, cells = [columns[i] for i in kept], [[row[i] for i in kept] for row in rows]
            widths = [_longest(r[j] for r in cells) for j in range(len(names))]
            spare = console.width - _natural(console, key_table(title, names, cells, widths=widths, **options))
            for j, name in enumerate(names if grow else ()):  # headers as whole as the room allows
                extra = max(0, min(spare, cell_len(name) - widths[j]))
                widths[j], spare = widths[j] + extra, spare - extra
            return key_table(title, names, cells, widths=widths, **options)

        while _natural(console, fitted(False)) > console.width and any(columns[i] not in key for i in kept):
            kept.remove(max(i for i in kept if columns[i] not in key))
        table = fitted(True)
    console.print(table)
    hidden = [name for i, name in enumerate(columns) if i not in kept]
    if hidden:
        console.print(f"(left out to fit the terminal: {', '.join(hidden)}; --format csv shows every column)",
                      highlight=False)


def plain(value):
    """A frame's value as CSV / JSON write it: numpy scalars as Python numbers, NaN as null."""
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_csv(columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[("" if v is None else v) for v in map(plain, row)] for row in rows])


def write_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))
