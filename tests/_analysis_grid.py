"""A hand-written 2-model × 4-cell grid (arc_challenge and global_mmlu, en and de) whose tables
the analysis tests check against numbers worked out by hand."""

from __future__ import annotations

import pandas as pd

CELLS = ["arc_challenge:en", "arc_challenge:de", "global_mmlu:en", "global_mmlu:de"]  # A, B, C, D
M1, M2 = "Qwen2.5-0.5B-Instruct", "Llama-3.1-8B-Instruct"
# Δ (pp): rows are sources, columns targets, both in CELLS order.
DELTAS = {
    M1: [[3, 2, -1, 0.5], [-2, 4, 0, -1.5], [1, 0, 2, 1], [-1, 0.5, 3, 5]],
    M2: [[1, 0, 2, -3], [2, 2, 1, 0], [-1, -2, 4, 2], [0, 1, -1, 1]],
}


def hand_grid() -> pd.DataFrame:
    rows = []
    for model, matrix in DELTAS.items():
        for s, source in enumerate(CELLS):
            for t, target in enumerate(CELLS):
                st, sl = source.split(":")
                tt, tl = target.split(":")
                rows.append({"model_name": model, "fine_tuned_dataset": st, "fine_tuned_language": sl,
                             "eval_dataset": tt, "eval_language": tl, "delta_score_mean": float(matrix[s][t]),
                             "delta_score_norm_mean": float(matrix[s][t])})
    return pd.DataFrame(rows)
