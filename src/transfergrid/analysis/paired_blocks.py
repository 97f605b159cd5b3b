"""uncertainty.py's paired item table, built from per-cell blocks of stored items (the fast path).

The store keeps each evaluated cell's items together (itemfiles.py), so the export knows which rows
belong to which (model, variant, seed, target cell) without factorising 21 million strings: one
block per stored cell, in row order. A fine-tuned seed's block of a target cell is paired with the
base model's block of that cell item by item when both list the same ids in the same order (what
an evaluation of the same split always does); the integer differences d and the item groups then
go to `uncertainty.cell_uncertainty` unchanged, so the p-values, intervals and q-values are the
same numbers as from `uncertainty.paired_items` (tests/test_paired_blocks.py checks equality).
Anything else (ids in another order, a base model scoring other items than its seeds, a duplicate
base block) returns None and the caller takes the general path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from transfergrid.analysis import uncertainty as U

BLOCK_COLUMNS = ("model", "variant", "task", "lang", "n")  # one row per block, in the items' row order


def block_hits(table, blocks: pd.DataFrame, uses_norm: Callable[[str], bool]) -> np.ndarray | None:
    """Per item row of `table` (columns correct[, correct_norm]): the headline correctness as
    `uncertainty.headline_hits` picks it (correct_norm where the block's task uses acc_norm);
    None if the columns are not booleans."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def bools(name):
        column = table[name]
        if not pa.types.is_boolean(column.type):
            return None
        return pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)

    if "correct" not in table.column_names or (correct := bools("correct")) is None:
        return None
    n = blocks["n"].to_numpy(dtype=np.int64)
    wants = np.repeat(np.asarray([bool(uses_norm(t)) for t in blocks["task"]], dtype=bool), n)
    if wants.any() and "correct_norm" in table.column_names:
        norm = bools("correct_norm")
        if norm is None:
            return None
        correct = np.where(wants, norm, correct)
    return correct.astype(np.int16)


def id_codes(column) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, names) of an id column (dictionary-encoded or plain); None if an id is null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        return None
    if not pa.types.is_dictionary(column.type):
        column = pa.chunked_array([pc.dictionary_encode(column.combine_chunks())])
    column = pa.table({"id": column}).unify_dictionaries()["id"]
    chunks = [c for c in column.chunks if len(c)] or column.chunks
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return codes, np.asarray(chunks[0].dictionary.to_pylist(), dtype=object)


def paired_blocks(blocks: pd.DataFrame, codes: np.ndarray, names: np.ndarray, hits: np.ndarray, *,
                  strict: bool = True) -> U.PairedItems | None:
    """`uncertainty.paired_items` from blocks (BLOCK_COLUMNS) over item rows with id `codes` (into
    `names`) and headline `hits`; None where the blocks do not pair one to one (module docstring)."""
    blocks = blocks.reset_index(drop=True)
    n = blocks["n"].to_numpy(dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
    variant = blocks["variant"].astype(str).to_numpy()
    model = blocks["model"].astype(str).to_numpy()
    keep = variant != "cot"
    is_base = keep & (variant == "base")
    target = list(zip(blocks["task"].astype(str), blocks["lang"].astype(str)))
    base_of: dict[tuple, int] = {}
    ids_of: dict[tuple, bytes] = {}  # target cell -> its sorted base ids (the same for every model)
    for b in np.flatnonzero(is_base):
        key = (model[b], *target[b])
        block = codes[start[b]:start[b] + n[b]]
        ids = np.sort(block)
        if key in base_of or (len(ids) > 1 and (ids[1:] == ids[:-1]).any()):
            return None  # two base blocks, or an id twice
        if ids_of.setdefault(target[b], ids.tobytes()) != ids.tobytes():
            return None
        base_of[key] = b
    pairs = []
    for f in np.flatnonzero(keep & ~is_base):
        b = base_of.get((model[f], *target[f]))
        if b is None:
            if strict:
                return None  # uncertainty.paired_items raises its error
            continue
        if n[f] != n[b] or ":" not in variant[f]:
            return None
        pairs.append((f, b))
    rows: dict[tuple, int] = {}  # (model, variant, target) -> row
    row_of = np.asarray([rows.setdefault((model[f], variant[f], *target[f]), len(rows)) for f, _ in pairs],
                        dtype=np.int64)
    f_blk = np.asarray([f for f, _ in pairs], dtype=np.int64)
    b_blk = np.asarray([b for _, b in pairs], dtype=np.int64)
    n_rows = len(rows)
    b_of_row = np.zeros(n_rows, dtype=np.int64)
    b_of_row[row_of] = b_blk
    n_items = n[b_of_row]
    width = max(int(n[is_base].max(initial=0)), 1)
    sums = np.zeros((n_rows, width), dtype=np.int64)
    base_rows = np.zeros((n_rows, width), dtype=np.int64)
    order = np.argsort(row_of, kind="stable")
    index = np.int32 if len(codes) < 2**31 else np.int64  # half the memory traffic of the gathers
    for m in np.unique(n[f_blk]):  # blocks of m items: (blocks x m) gathers, no per-item index arrays
        sel = order[n[f_blk[order]] == m]
        cols = np.arange(m, dtype=index)
        f_items = start[f_blk[sel]].astype(index)[:, None] + cols
        if not np.array_equal(codes[f_items], codes[start[b_blk[sel]].astype(index)[:, None] + cols]):
            return None  # another order or other items: the general path decides
        r = row_of[sel]
        bounds = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        sums[r[bounds], :m] = np.add.reduceat(hits[f_items], bounds, axis=0, dtype=np.int32)
        mine = np.flatnonzero(n_items == m)
        base_rows[mine, :m] = hits[start[b_of_row[mine]][:, None] + cols]
    n_seeds = np.bincount(row_of, minlength=n_rows).astype(np.int64)
    diff = (sums - n_seeds[:, None] * base_rows).astype(np.int16)  # zero beyond each row's items

    keys = list(rows)
    sources = [k[1].split(":", 1) for k in keys]
    cells = pd.DataFrame({"model_name": np.asarray([str(k[0]) for k in keys], dtype=object),
                          "fine_tuned_dataset": np.asarray([s[0] for s in sources], dtype=object),
                          "fine_tuned_language": np.asarray([s[1] for s in sources], dtype=object),
                          "eval_dataset": np.asarray([k[2] for k in keys], dtype=object),
                          "eval_language": np.asarray([k[3] for k in keys], dtype=object),
                          "n_items": n_items.astype(np.int64), "n_seeds": n_seeds})
    # item groups: rows whose base blocks list the same ids in the same order (one matrix product)
    group_of: dict[tuple, list[int]] = {}
    key_of: dict[int, tuple] = {}  # base block -> its group
    for r, b in enumerate(b_of_row.tolist()):
        if b not in key_of:
            key_of[b] = (target[b][0], codes[start[b]:start[b] + n[b]].tobytes())
        group_of.setdefault(key_of[b], []).append(r)
    groups = []
    for (task, _), members in group_of.items():
        b = b_of_row[members[0]]
        groups.append(U.ItemGroup(task, np.asarray([str(x) for x in names[codes[start[b]:start[b] + n[b]]]],
                                                   dtype=object), np.asarray(members, dtype=np.int64)))
    return U.PairedItems(cells, diff, groups)


def cell_uncertainty(blocks: pd.DataFrame, table, uses_norm: Callable[[str], bool], *, strict: bool = True,
                     **kwargs) -> pd.DataFrame | None:
    """`uncertainty.cell_uncertainty` of the items in `table` (columns id, correct[, correct_norm];
    rows in block order), or None where the fast path does not apply."""
    if table is None or "id" not in table.column_names:
        return None
    hits = block_hits(table, blocks, uses_norm)
    coded = id_codes(table["id"])
    if hits is None or coded is None:
        return None
    paired = paired_blocks(blocks, *coded, hits, strict=strict)
    return None if paired is None else U.cell_uncertainty(paired, **kwargs)


__all__ = ["BLOCK_COLUMNS", "block_hits", "cell_uncertainty", "id_codes", "paired_blocks"]
