"""Zero-shot vs chain-of-thought: the transfer of one grid under both ways of answering (issue 15).

A transfer study with `evaluation.cot` yields two cell frames in the released schema: zero-shot
(results.csv) and CoT (results_cot.csv, Δ = CoT-fine-tuned − CoT-base). Every other table of the
CoT variant is the zero-shot code run on its frame; this one puts the two side by side, per
regime (and over all transfer cells), on the cells both frames hold:

    delta_zero_shot, delta_cot   mean headline Δ (pp) under each
    delta_change                 delta_cot − delta_zero_shot (pp): does reasoning keep the transfer?
    win / harm rates             under each (the reference's rule, rates.py)
    base_zero_shot, base_cot     mean headline base score (%): what CoT does without fine-tuning
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis import rates
from transfergrid.analysis.frame import KEY_COLUMNS, ensure_prepared, has_norm
from transfergrid.analysis.regimes import REGIMES, TRANSFER

COMPARISON_COLUMNS = ["scope", "n", "delta_zero_shot", "delta_cot", "delta_change", "win_rate_zero_shot",
                      "win_rate_cot", "harm_rate_zero_shot", "harm_rate_cot", "base_zero_shot", "base_cot"]


def headline_base(frame: pd.DataFrame) -> pd.Series:
    """The base model's headline score (%) per row: acc_norm where the target task has it, else acc
    (as the headline Δ)."""
    norm = frame["score_norm_base_mean"].astype(float)
    acc = frame["score_base_mean"].astype(float)
    return 100.0 * norm.where(frame["eval_dataset"].map(has_norm).astype(bool), acc)


def cot_comparison(zero_shot: pd.DataFrame, cot: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """One row per scope (transfer, then each regime) over the cells of both frames."""
    zs, ct = ensure_prepared(zero_shot), ensure_prepared(cot)
    left = zs[[*KEY_COLUMNS, "regime", "delta"]].assign(base=headline_base(zs).to_numpy())
    right = ct[[*KEY_COLUMNS, "delta"]].assign(base=headline_base(ct).to_numpy())
    both = left.merge(right, on=KEY_COLUMNS, suffixes=("_zs", "_cot"))
    rows = []
    for scope, mask in [("transfer", both["regime"].isin(TRANSFER)),
                        *((r, both["regime"] == r) for r in REGIMES)]:
        part = both.loc[mask]
        z, c = part["delta_zs"].to_numpy(float), part["delta_cot"].to_numpy(float)
        rows.append({"scope": scope, "n": len(part), "delta_zero_shot": mean(z), "delta_cot": mean(c),
                     "delta_change": mean(c - z), "win_rate_zero_shot": rates.win_rate(z, tolerance),
                     "win_rate_cot": rates.win_rate(c, tolerance), "harm_rate_zero_shot": rates.harm_rate(z, tolerance),
                     "harm_rate_cot": rates.harm_rate(c, tolerance), "base_zero_shot": mean(part["base_zs"]),
                     "base_cot": mean(part["base_cot"])})
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def mean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if values.size else np.nan


DEFINITION = ("Cells with both a zero-shot and a CoT result; mean headline Δ (pp) under each, their "
              "difference (CoT − zero-shot), win / harm rates under each (the reference's rule) and the "
              "mean headline base score (%) under each.")
