"""The per-item result files of a store's evaluations, under artifacts/items/.

Written: one Parquet file per commit batch, `items/<eval key>/<token>.parquet`, holding the batch's
target cells one after another (sorted by cell), listed with their row counts in the file's
metadata (`transfergrid.cells`). When an evaluation finishes with its cells in more than one file,
they are gathered into one new file (`Store` does it in the transaction that marks the job done),
so a finished grid holds one file per evaluation job: 1,197 at paper size, not 52,668. A file is
never rewritten: new contents get a new name and rows are pointed at it in the committing
transaction, so a kill leaves at worst a file that no row names (removed at the next start).

Read as well: the earlier layout, one file per cell (`items/<key>/<task>/<lang>.parquet`, no
metadata): the whole file is the cell of the row that names it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from transfergrid.errors import DataError

META = b"transfergrid.cells"
THREADS = 8  # Parquet reads release the GIL: a few threads hide the per-file latency


def items_dir(root: Path, key: str) -> Path:
    return Path(root) / "artifacts" / "items" / key


def new_path(root: Path, key: str) -> Path:
    """A fresh file name for eval job `key` (never one a row may already name)."""
    return items_dir(root, key) / f"{uuid.uuid4().hex[:16]}.parquet"


def as_table(items):
    """Per-item records (row dicts or a dict of columns) as an Arrow table."""
    import pyarrow as pa

    if isinstance(items, pa.Table):
        return items
    return pa.table(items) if isinstance(items, dict) else pa.Table.from_pylist(list(items))


def write_cells(cells: Sequence[tuple[str, object]], path: Path) -> None:
    """Write `(cell, items)` pairs as one Parquet file at `path`, atomically (temporary file, then
    `os.replace`): a full disk or a kill leaves no half-written file under the final name."""
    import pyarrow as pa

    cells = sorted(((str(c), as_table(items)) for c, items in cells), key=lambda x: x[0])
    tables = [t for _, t in cells]
    listed = [{"cell": c, "rows": t.num_rows} for c, t in cells]
    if len({t.schema for t in tables}) > 1:  # cells with other columns: each keeps its own on reading
        for entry, t in zip(listed, tables):
            entry["columns"] = t.column_names
        try:
            table = pa.concat_tables(tables, promote_options="default")
        except pa.ArrowInvalid:
            table = pa.concat_tables(tables, promote_options="permissive")
    else:
        table = pa.concat_tables(tables) if tables else pa.table({})
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META: json.dumps(listed).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write_parquet(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_parquet(table, path: Path) -> None:
    """The one place item files hit the disk (tests simulate a full disk here)."""
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def listed_cells(table, path) -> list[dict] | None:
    """The cells a file written by `write_cells` lists (None: a one-cell file of the earlier layout)."""
    raw = (table.schema.metadata or {}).get(META)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise DataError(f"{path}: unreadable cell list in its metadata ({exc})") from exc


def _read(path: Path, columns, dictionary: Sequence[str] = ()):
    import pyarrow.parquet as pq

    if columns is None:
        return pq.read_table(path)
    names = pq.read_schema(path).names
    return pq.read_table(path, columns=[c for c in columns if c in names],
                         read_dictionary=[c for c in dictionary if c in names] or None)


def _spans(table, path, cells: Sequence[str] | None = None) -> dict[str, tuple[int, int, list | None]]:
    """cell -> (first row, rows, its own columns or None) in `table` read from `path`."""
    listed = listed_cells(table, path)
    if listed is None:
        return {cell: (0, table.num_rows, None) for cell in (cells or [""])}
    out, start = {}, 0
    for entry in listed:
        out[entry["cell"]] = (start, entry["rows"], entry.get("columns"))
        start += entry["rows"]
    return out


def read_cell(root: Path, items_path: str, cell: str):
    """The per-item table of one committed cell (its own columns, in stored order)."""
    return read_cells(root, {cell: items_path})[0][1]


def read_cells(root: Path, files: dict[str, str]) -> list[tuple[str, object]]:
    """[(cell, its items table)] of committed cells {cell: items_path}, each file read once."""
    tables = {p: _read(Path(root) / p, None) for p in dict.fromkeys(files.values())}
    out = []
    for cell, p in files.items():
        spans = _spans(tables[p], Path(root) / p, [cell])
        if cell not in spans:
            raise DataError(f"{Path(root) / p}: holds no per-item results of {cell}")
        start, n, columns = spans[cell]
        part = tables[p].slice(start, n).replace_schema_metadata(None)
        out.append((cell, part.select(columns) if columns is not None else part))
    return out


def read_blocks(root: Path, rows: Sequence[tuple[str, str]], columns: Sequence[str] | None = None,
                dictionary: Sequence[str] = ()):
    """The items of committed cells `rows` = [(items_path, cell)], in that order, as one Arrow table
    (`columns` only, where a file has them; `dictionary` of them read dictionary-encoded), and each
    cell's row count. Every file is read once (with threads); consecutive cells of one file stay one
    slice. Returns (table, counts) or (None, [])."""
    import pyarrow as pa

    if not rows:
        return None, []
    paths = list(dict.fromkeys(p for p, _ in rows))
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        tables = dict(zip(paths, pool.map(lambda p: _read(Path(root) / p, columns, dictionary), paths)))
    cells_of: dict[str, list[str]] = {}
    for p, cell in rows:
        cells_of.setdefault(p, []).append(cell)
    spans = {p: _spans(tables[p], Path(root) / p, cells_of[p]) for p in paths}
    pieces: list[list] = []  # [path, start, rows]
    counts = []
    for p, cell in rows:
        if cell not in spans[p]:
            raise DataError(f"{Path(root) / p}: holds no per-item results of {cell}")
        start, n, _ = spans[p][cell]
        counts.append(n)
        if pieces and pieces[-1][0] == p and pieces[-1][1] + pieces[-1][2] == start:
            pieces[-1][2] += n
        else:
            pieces.append([p, start, n])
    parts = [tables[p].slice(s, n).replace_schema_metadata(None) for p, s, n in pieces]
    return pa.concat_tables(parts, promote_options="default"), counts


__all__ = ["as_table", "items_dir", "listed_cells", "new_path", "read_blocks", "read_cell", "read_cells", "write_cells",
           "write_parquet"]
