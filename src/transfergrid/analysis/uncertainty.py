"""Honest uncertainty per transfer cell, from the per-item results (issue 15).

Every Δ is the difference of two accuracies on the same test items, so its uncertainty comes from
the items. For each (model, source cell, target cell), with the headline correctness of each item
(acc_norm where the task has it, else acc, exactly as export.py picks it):

    d_i           Σ over the fine-tuned seeds of (ft_i,s − base_i): an integer in [−S, S]; the
                  item's seed-averaged difference is d_i / S
    Δ             100 × Σ d_i / (n × S) pp: the seed mean of the per-seed Δs export writes
    p (exact)     two-sided exact binomial test on the discordant items (b: d_i > 0, c: d_i < 0),
                  p = min(1, 2 · Binom(n = b + c, ½).cdf(min(b, c))). With one seed this is
                  statsmodels' `mcnemar(table, exact=True)`; with several it is the same sign test
                  on the seed-averaged item differences (an item counts as improved when the seeds
                  on average beat the base model on it), which keeps items the unit of inference
                  instead of counting an item once per seed.
    CI            percentile bootstrap over items: items are drawn with replacement, the same draw
                  for the base model and every seed (paired); seeds are averaged, not resampled, so
                  the interval is the one of the seed-averaged Δ over test-item sampling (seed to
                  seed variation is in the released delta_*_std / _se columns).
    q             Benjamini-Hochberg q-values across every cell of the grid (all regimes, MT-ML
                  included), as statsmodels' `multipletests(p, method="fdr_bh")[1]`.

The bootstrap is vectorised and joint: target cells with the same item ids (one task's parallel
languages) share one draw of item-count weights, seeded from the seed and the item ids, so every
cell's interval is reproducible and independent of what else is in the grid, and the per-cell
draws can be averaged into bootstrap draws of any aggregate (donor and recipient scores, see
`intervals.py`). A draw's Σ d is an integer dot product, exact in float32, so Δ and its draws agree
to the last bit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from transfergrid.errors import DataError

KEYS = ["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language"]
N_BOOT = 2000
LEVEL = 0.95
FDR = 0.05  # the false-discovery rate at which a change counts as significant
SEED = 0
COLUMNS = ["delta_p_value", "delta_ci_low", "delta_ci_high", "delta_q_value", "delta_n_items",
           "delta_n_improved", "delta_n_harmed"]
CELL_COLUMNS = [*KEYS, "n_seeds", "delta_items", *COLUMNS]
ITEM_COLUMNS = ("model", "variant", "seed", "task", "lang", "id", "correct")


# --- tests and corrections ----------------------------------------------------------------------
def mcnemar_exact(b, c) -> np.ndarray:
    """Two-sided exact McNemar p-values from discordant counts (vectorised); 1.0 when b = c = 0."""
    b, c = np.asarray(b, dtype=np.int64), np.asarray(c, dtype=np.int64)
    return np.minimum(1.0, 2.0 * scipy.stats.binom.cdf(np.minimum(b, c), b + c, 0.5))


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaNs stay NaN and do not count as tests."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    q[ok] = out
    return q


def percentile_interval(draws: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise percentile interval of bootstrap draws (rows × draws)."""
    a = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [a, 1.0 - a], axis=-1)
    return low, high


# --- the paired item table ----------------------------------------------------------------------
@dataclass
class ItemGroup:
    """Target cells sharing one set of item ids (a task's parallel languages): one bootstrap draw."""

    task: str
    ids: np.ndarray  # item ids in the order of the columns of PairedItems.diff
    rows: np.ndarray  # indices into PairedItems.cells


@dataclass
class PairedItems:
    """Per (model, source, target) cell: the integer item differences d (rows × max items, zero
    padded) and its key columns, n_items and n_seeds (`cells`)."""

    cells: pd.DataFrame
    diff: np.ndarray
    groups: list[ItemGroup]


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, names as str) of a column, without converting every row to a string."""
    if isinstance(column.dtype, pd.CategoricalDtype) and not column.isna().any():
        return column.cat.codes.to_numpy(), np.asarray([str(u) for u in column.cat.categories], dtype=object)
    codes, uniques = pd.factorize(column)
    return codes, np.asarray([str(u) for u in uniques], dtype=object)


def headline_hits(items: pd.DataFrame, uses_norm: Callable[[str], bool] | Mapping[str, bool] | None = None):
    """Per item row: the headline correctness (correct_norm where the task uses acc_norm)."""
    if uses_norm is None:
        from transfergrid.analysis.frame import has_norm as uses_norm
    lookup = uses_norm.get if isinstance(uses_norm, Mapping) else uses_norm
    task_code, tasks = _codes(items["task"])
    correct = items["correct"].to_numpy(dtype=bool)
    wants = np.asarray([bool(lookup(t)) for t in tasks], dtype=bool)
    if wants.any() and "correct_norm" in items:
        correct = np.where(wants[task_code], items["correct_norm"].to_numpy(dtype=bool), correct)
    return correct.astype(np.int16)


def has_item_scores(items: pd.DataFrame | None) -> bool:
    return items is not None and len(items) > 0 and all(c in items.columns for c in ITEM_COLUMNS)


def paired_items(items: pd.DataFrame, uses_norm=None, *, strict: bool = True) -> PairedItems:
    """The paired table of an `export_items` frame (columns model, variant, seed, task, lang, id,
    correct[, correct_norm]; variant 'base' or the adapter's source cell; 'cot' rows are ignored).
    A fine-tuned seed must have scored exactly the base model's items of its target cell;
    `strict=False` skips fine-tuned items that have no base score yet (a study still running)."""
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise DataError(f"per-item results lack column(s) {', '.join(missing)}")
    v_all, v_names = _codes(items["variant"])
    if (v_names == "cot").any():
        items = items.loc[v_names[v_all] != "cot"]
        v_all, v_names = _codes(items["variant"])
    hits = headline_hits(items, uses_norm)
    is_base = v_all == (np.flatnonzero(v_names == "base").tolist() or [-1])[0]
    m_code, models = _codes(items["model"])
    task_code, tasks = _codes(items["task"])
    lang_code, langs = _codes(items["lang"])
    id_code, ids = _codes(items["id"])
    n_l, n_ids, n_v = len(langs), len(ids), len(v_names)
    n_t = len(tasks) * n_l  # target cell = task code × languages + language code
    t_code = task_code.astype(np.int64) * n_l + lang_code
    # item position within its target cell: rank of the id among the base model's ids of that cell
    cell_item = t_code * n_ids + id_code
    universe = np.unique(cell_item[is_base])
    start = np.searchsorted(universe // n_ids, np.arange(n_t))
    n_items = np.diff(np.append(start, len(universe)))
    width = int(n_items.max(initial=0))
    pos = _lookup(universe, np.arange(len(universe)) - start[universe // n_ids], cell_item, n_t * n_ids)

    base = np.full((len(models), n_t, max(width, 1)), -1, dtype=np.int16)
    base[m_code[is_base], t_code[is_base], pos[is_base]] = hits[is_base]
    ft = np.flatnonzero(~is_base)
    f_pos = pos[ft]
    if not strict:
        ft, f_pos = ft[f_pos >= 0], f_pos[f_pos >= 0]
    if (f_pos < 0).any():
        i = int(ft[np.flatnonzero(f_pos < 0)[0]])
        raise DataError(f"item {items['id'].iloc[i]!r} of {items['task'].iloc[i]}:{items['lang'].iloc[i]} "
                        f"(model {models[m_code[i]]}, variant {v_names[v_all[i]]}) has no base-model score")
    row_key = (m_code[ft].astype(np.int64) * n_v + v_all[ft]) * n_t + t_code[ft]
    row_keys = np.unique(row_key) if len(row_key) else row_key
    r_code = _lookup(row_keys, np.arange(len(row_keys)), row_key, len(models) * n_v * n_t)
    n_rows = len(row_keys)
    flat = r_code.astype(np.int64) * width + f_pos
    sums = np.bincount(flat, weights=hits[ft], minlength=n_rows * width).reshape(n_rows, width)
    counts = np.bincount(flat, minlength=n_rows * width).reshape(n_rows, width)
    n_seeds = counts.max(axis=1, initial=0)  # one item row per seed

    row_m, row_v, row_t = row_keys // (n_v * n_t), (row_keys // n_t) % n_v, row_keys % n_t
    valid = np.arange(width)[None, :] < n_items[row_t][:, None]
    base_rows = base[row_m, row_t, :width]
    bad = valid & ((counts != n_seeds[:, None]) | (base_rows < 0))
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(f"model {models[row_m[r]]}, variant {v_names[row_v[r]]}, target "
                        f"{tasks[row_t[r] // n_l]}:{langs[row_t[r] % n_l]}: "
                        "its seeds and the base model did not score the same items")
    diff = np.where(valid, sums - n_seeds[:, None] * base_rows, 0).astype(np.int16)

    sources = pd.Series(v_names[row_v], dtype=object).str.split(":", n=1, expand=True)
    if n_rows and (sources.shape[1] != 2 or sources.isna().any().any()):
        raise DataError(f"variant {v_names[row_v][0]!r}: expected 'base', 'cot' or a source cell task:lang")
    if not n_rows:
        sources = pd.DataFrame({0: [], 1: []})
    cells = pd.DataFrame({"model_name": models[row_m], "fine_tuned_dataset": sources[0].to_numpy(),
                          "fine_tuned_language": sources[1].to_numpy(), "eval_dataset": tasks[row_t // n_l],
                          "eval_language": langs[row_t % n_l], "n_items": n_items[row_t], "n_seeds": n_seeds})
    return PairedItems(cells, diff, _groups(universe % n_ids, start, n_items, row_t, np.arange(n_t) // n_l,
                                            tasks, ids))


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray, size: int) -> np.ndarray:
    """values[k] for each query equal to keys[k] (keys sorted), −1 where absent: a dense table when
    the key space is small (fast), else a binary search."""
    if size <= 50_000_000:
        table = np.full(size, -1, dtype=np.int64)
        table[keys] = values
        return table[queries]
    where = np.minimum(np.searchsorted(keys, queries), max(len(keys) - 1, 0))
    found = len(keys) > 0 and keys[where] == queries
    return np.where(found, values[where] if len(keys) else -1, -1)


def _groups(id_codes, start, n_items, row_t, target_task, tasks, ids) -> list[ItemGroup]:
    by_ids: dict[tuple[int, bytes], list[int]] = {}
    for t in np.flatnonzero(n_items):
        codes = id_codes[start[t]:start[t] + n_items[t]]
        by_ids.setdefault((int(target_task[t]), np.asarray(codes).tobytes()), []).append(t)
    groups = []
    for (task, _), targets in by_ids.items():
        codes = id_codes[start[targets[0]]:start[targets[0]] + n_items[targets[0]]]
        groups.append(ItemGroup(str(tasks[task]), np.asarray(ids[codes], dtype=object),
                                np.flatnonzero(np.isin(row_t, targets))))
    return groups


# --- the bootstrap --------------------------------------------------------------------------------
def item_weights(group: ItemGroup, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot × items) multinomial counts: how often each item is drawn in each bootstrap sample;
    seeded by `seed` and the group's task and sorted item ids, so the draw depends on nothing else."""
    order = np.argsort(group.ids.astype(str), kind="stable")
    tag = zlib.crc32("\x1f".join([group.task, *map(str, group.ids[order])]).encode("utf-8"))
    rng = np.random.default_rng([seed, tag])
    n = len(group.ids)
    weights = np.empty((n_boot, n), dtype=np.float32)
    weights[:, order] = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    return weights


def bootstrap_sums(paired: PairedItems, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(cells × n_boot) bootstrap draws of Σ d (exact integers held in float32)."""
    out = np.empty((len(paired.cells), n_boot), dtype=np.float32)
    for group in paired.groups:
        n = len(group.ids)
        weights = item_weights(group, n_boot, seed)
        out[group.rows] = paired.diff[group.rows, :n].astype(np.float32) @ weights.T
    return out


def delta_draws(paired: PairedItems, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(cells × n_boot) bootstrap draws of Δ in pp."""
    scale = 100.0 / (paired.cells["n_items"].to_numpy() * paired.cells["n_seeds"].to_numpy())
    return bootstrap_sums(paired, n_boot, seed) * scale[:, None].astype(np.float32)


def cell_uncertainty(items: pd.DataFrame | PairedItems, uses_norm=None, *, n_boot: int = N_BOOT,
                     level: float = LEVEL, seed: int = SEED, strict: bool = True) -> pd.DataFrame:
    """One row per (model, source cell, target cell): `CELL_COLUMNS` (module docstring)."""
    paired = items if isinstance(items, PairedItems) else paired_items(items, uses_norm, strict=strict)
    cells = paired.cells
    if cells.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    n, s = cells["n_items"].to_numpy(), cells["n_seeds"].to_numpy()
    scale = 100.0 / (n * s)
    total = paired.diff.sum(axis=1, dtype=np.int64)
    b, c = (paired.diff > 0).sum(axis=1), (paired.diff < 0).sum(axis=1)
    sums = bootstrap_sums(paired, n_boot, seed)
    low, high = percentile_interval(sums, level)
    p = mcnemar_exact(b, c)
    out = cells[KEYS].copy()
    out["n_seeds"] = s
    out["delta_items"] = total * scale
    out["delta_p_value"] = p
    out["delta_ci_low"], out["delta_ci_high"] = low * scale, high * scale
    out["delta_q_value"] = bh_qvalues(p)
    out["delta_n_items"], out["delta_n_improved"], out["delta_n_harmed"] = n, b, c
    return out[CELL_COLUMNS].reset_index(drop=True)
