"""Per-cell uncertainty at the paper's size: exact McNemar, item bootstrap and BH q-values.

A simulated per-item table (as `export_items` writes it) of 9 models × 44 sources × 44 targets ×
3 seeds × 400 items (17,424 cells, 20.9 M fine-tuned item rows), then `uncertainty.cell_uncertainty`
(paired table, 2,000 bootstrap draws per cell, percentile intervals, q-values) and the role
intervals over items and models.

    .venv/bin/python benchmarks/uncertainty_time.py [--models 9] [--seeds 3] [--items 400] [--boot 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

TASKS = ["arc_challenge", "global_mmlu", "hellaswag", "truthfulqa_mc1"]
LANGS = ["ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh"]


def simulated_items(models: int, seeds: int, items: int, rng) -> pd.DataFrame:
    cells = [f"{t}:{lang}" for t in TASKS for lang in LANGS]
    model_names = [f"model-{k}" for k in range(models)]
    variants = ["base", *cells]
    # every (model, variant, seed, target, item) row; the base model has one "seed" (None)
    parts = []
    for v, variant in enumerate(variants):
        n_s = 1 if v == 0 else seeds
        n = models * n_s * len(cells) * items
        grid = np.indices((models, n_s, len(cells), items)).reshape(4, -1)
        base_p = 0.3 + 0.4 * rng.random(len(cells))
        parts.append(pd.DataFrame({
            "model": pd.Categorical.from_codes(grid[0], model_names),
            "variant": pd.Categorical.from_codes(np.full(n, v), variants),
            "seed": np.full(n, np.nan) if v == 0 else (grid[1] + 1).astype(float),
            "task": pd.Categorical.from_codes(grid[2] // len(LANGS), TASKS),
            "lang": pd.Categorical.from_codes(grid[2] % len(LANGS), LANGS),
            "id": pd.Categorical.from_codes(grid[3], [f"item-{i}" for i in range(items)]),
            "correct": rng.random(n) < base_p[grid[2]] + (0.0 if v == 0 else 0.02),
            "correct_norm": rng.random(n) < base_p[grid[2]] + (0.0 if v == 0 else 0.02),
        }))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--boot", type=int, default=2000)
    args = parser.parse_args()
    from transfergrid.analysis import intervals, uncertainty
    from transfergrid.analysis.frame import prepare

    rng = np.random.default_rng(0)
    items = simulated_items(args.models, args.seeds, args.items, rng)
    print(f"{len(items):,} item rows")
    start = time.perf_counter()
    paired = uncertainty.paired_items(items)
    t_pair = time.perf_counter() - start
    cells = uncertainty.cell_uncertainty(paired, n_boot=args.boot)
    t_cells = time.perf_counter() - start
    print(f"paired table: {t_pair:.1f} s; cell_uncertainty ({len(cells):,} cells, {args.boot} draws): "
          f"{t_cells:.1f} s in all")
    frame = cells.rename(columns={"delta_items": "delta_score_norm_mean"})
    start = time.perf_counter()
    roles = intervals.role_intervals(prepare(frame), paired, n_boot=args.boot)
    print(f"role intervals over items and models ({len(roles)} rows): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
