"""The export's fast paired item table (analysis/paired_blocks.py) gives exactly uncertainty.py's
numbers on fixed item tables; whatever does not pair one to one is left to the general path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_uncertainty import item_table

from transfergrid.analysis import paired_blocks as PB
from transfergrid.analysis import uncertainty as U


def uses_norm(task: str) -> bool:
    return task == "arc_challenge"


def as_blocks(items: pd.DataFrame, shuffle_cells: bool = True, seed: int = 5):
    """The items laid out as the store keeps them: one block per (model, variant, seed, target cell),
    blocks in an arbitrary order, items in a per-cell order shared by the base model and its seeds."""
    rng = np.random.default_rng(seed)
    order = {}
    for (task, lang), ids in items.groupby(["task", "lang"])["id"]:
        unique = list(dict.fromkeys(ids))
        order[(task, lang)] = {i: k for k, i in enumerate(rng.permutation(unique) if shuffle_cells else unique)}
    frame = items.assign(pos=[order[(t, lg)][i] for t, lg, i in zip(items.task, items.lang, items.id)],
                         seed_key=items["seed"].fillna(-1))
    keys = ["model", "variant", "seed_key", "task", "lang"]
    groups = list(frame.groupby(keys, sort=False))
    groups = [groups[k] for k in rng.permutation(len(groups))]
    parts = [g.sort_values("pos") for _, g in groups]
    ordered = pd.concat(parts, ignore_index=True)
    blocks = pd.DataFrame([(*k[:2], *k[3:], len(g)) for k, g in groups], columns=list(PB.BLOCK_COLUMNS))
    table = pa.Table.from_pandas(ordered[["id", "correct", "correct_norm"]], preserve_index=False)
    return blocks, table, ordered


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = U.KEYS
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)


@pytest.mark.parametrize("seeds", [(1,), (1, 2, 3)])
def test_the_same_numbers_as_the_general_path(seeds):
    items = item_table(models=("m1", "m2", "m3"), seeds=seeds, n=40, gain=0.15, seed=len(seeds))
    blocks, table, ordered = as_blocks(items)
    fast = PB.cell_uncertainty(blocks, table, uses_norm, n_boot=400)
    assert fast is not None and len(fast) == 3 * 2 * 4
    same(fast, U.cell_uncertainty(items, uses_norm, n_boot=400))
    same(fast, U.cell_uncertainty(ordered, uses_norm, n_boot=400))  # the block order changes nothing
    # a dictionary-encoded id column (what the export reads) gives the same
    coded = table.set_column(0, "id", table["id"].dictionary_encode())
    same(PB.cell_uncertainty(blocks, coded, uses_norm, n_boot=400), fast)


def test_a_seed_missing_on_some_cells_and_cot_and_unpaired_targets():
    items = item_table(seeds=(1, 2), n=25, seed=9)
    drop = (items.variant == "arc_challenge:en") & (items.seed == 2) & (items.lang == "es")
    items = items[~drop]
    cot = items[items.variant == "base"].assign(variant="cot")
    kept = pd.concat([items, cot], ignore_index=True)
    # m2 has no base scores of truthfulqa_mc1:en: its fine-tuned items there are skipped (strict=False)
    no_base = (kept.model == "m2") & (kept.variant == "base") & (kept.task == "truthfulqa_mc1") & (kept.lang == "en")
    blocks, table, _ = as_blocks(kept)
    fast = PB.cell_uncertainty(blocks, table, uses_norm, n_boot=300)
    same(fast, U.cell_uncertainty(kept, uses_norm, n_boot=300))
    assert set(fast[fast.eval_language == "es"].n_seeds) == {1, 2}
    blocks, table, _ = as_blocks(kept[~no_base])
    fast = PB.cell_uncertainty(blocks, table, uses_norm, n_boot=300, strict=False)
    assert not ((fast.model_name == "m2") & (fast.eval_dataset == "truthfulqa_mc1") & (fast.eval_language == "en")).any()
    assert len(fast) == 2 * 2 * 4 - 2
    assert PB.cell_uncertainty(blocks, table, uses_norm, n_boot=300, strict=True) is None  # the general path raises


def test_what_does_not_pair_one_to_one_goes_to_the_general_path():
    items = item_table(seeds=(1,), n=20, seed=4)
    blocks, table, ordered = as_blocks(items)
    assert PB.cell_uncertainty(blocks, table, uses_norm, n_boot=100) is not None
    # a fine-tuned block listing the items in another order than its base block
    first = int(np.flatnonzero(blocks.variant != "base")[0])
    start = int(blocks.n[:first].sum())
    ids = ordered["id"].to_numpy().copy()
    ids[start], ids[start + 1] = ids[start + 1], ids[start]
    swapped = table.set_column(0, "id", pa.array(ids))
    assert PB.cell_uncertainty(blocks, swapped, uses_norm, n_boot=100) is None
    # correctness that is not boolean, and a null id
    assert PB.cell_uncertainty(blocks, table.set_column(1, "correct", pa.array(ordered["correct"].astype(int))),
                               uses_norm) is None
    assert PB.cell_uncertainty(blocks, table.set_column(0, "id", pa.array([None, *ids[1:]])), uses_norm) is None
