"""Consistency Index (MISSION.md): do models agree on which recipients a source helps most?

For each source cell and transfer regime, the recipients × models matrix of Δ (recipients: target
language for MT-CL, target task for CT-ML, target cell for CT-CL); Kendall τ-b for every pair of
models; the index is the mean over pairs. It needs >= 3 recipients and >= 2 models. Variants, as
the reference's `consistency_index*`: "model" (each model a column), "family" (Δ averaged over the
sizes of a family) and "size" (Δ averaged over families at each exact model size: 0.5, 1, 1.5, 3,
4, 7, 8 B in the release); "size_bucket" (families and sizes within S/M/L) is our extra variant.

On a ragged grid a pair of models is compared on the recipients both have (>= 3 of them); a pair
whose τ-b is undefined (one side constant) is left out of the mean.

τ-b for all pairs at once: with S_m the sign of Δ_i - Δ_j over recipient pairs i < j for column m,
τ-b(a, b) = Σ S_a S_b / sqrt(Σ S_a² · Σ S_b²), sums over recipient pairs both columns observe
(the numerator is concordant minus discordant pairs; each factor of the denominator is the number
of pairs untied in that column), which is scipy.stats.kendalltau(variant="b").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import CT_CL, CT_ML, MT_CL

RECIPIENT = {MT_CL: "target_lang", CT_ML: "target_task", CT_CL: "target"}
VARIANT_COLUMN = {"model": "model_name", "family": "family", "size": "size_b", "size_bucket": "size_bucket"}
CONSISTENCY_COLUMNS = ["variant", "regime", "source", "index", "n_models", "n_recipients"]
SUMMARY_COLUMNS = ["variant", "regime", "median", "q1", "q3", "n_sources"]
MIN_RECIPIENTS, MIN_MODELS = 3, 2


def pairwise_tau_b(matrix: np.ndarray) -> np.ndarray:
    """Kendall τ-b between every pair of columns of a recipients × columns matrix (NaN = missing);
    NaN where a pair shares < 3 recipients or a column is constant on the shared ones."""
    x = np.asarray(matrix, dtype=float)
    i, j = np.triu_indices(x.shape[0], k=1)
    diff = x[i] - x[j]  # recipient pairs × columns
    seen = np.isfinite(diff)
    sign = np.where(seen, np.sign(np.where(seen, diff, 0.0)), 0.0)
    both = seen.T.astype(float) @ seen.astype(float)  # recipient pairs observed by both columns
    num = sign.T @ sign
    untied = (sign * sign).T @ seen.astype(float)  # [a, b]: pairs untied in a among those b observes
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / np.sqrt(untied * untied.T)
    shared = np.isfinite(x).T.astype(float) @ np.isfinite(x).astype(float)
    tau[(shared < MIN_RECIPIENTS) | (both == 0)] = np.nan
    return tau


def consistency_index(matrix: np.ndarray) -> float:
    """Mean τ-b over the pairs of columns (NaN if no pair is defined)."""
    tau = pairwise_tau_b(matrix)
    a, b = np.triu_indices(tau.shape[0], k=1)
    values = tau[a, b]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else np.nan


def consistency(frame: pd.DataFrame, variants=tuple(VARIANT_COLUMN)) -> pd.DataFrame:
    df = ensure_prepared(frame)
    rows = []
    for variant in variants:
        column = VARIANT_COLUMN[variant]
        for regime, recipient in RECIPIENT.items():
            cells = df.loc[(df["regime"] == regime) & df[column].notna()]
            # Averaging over the variant's members (sizes in a family, families in a size) first.
            table = cells.groupby(["source", recipient, column], sort=True)["delta"].mean()
            for source, part in table.groupby(level=0, sort=True):
                matrix = part.droplevel(0).unstack(column)
                if matrix.shape[0] < MIN_RECIPIENTS or matrix.shape[1] < MIN_MODELS:
                    continue
                rows.append({"variant": variant, "regime": regime, "source": source,
                             "index": consistency_index(matrix.to_numpy()),
                             "n_models": matrix.shape[1], "n_recipients": matrix.shape[0]})
    return pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS)


def consistency_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of the index over sources, per variant and regime."""
    rows = []
    for (variant, regime), group in table.dropna(subset=["index"]).groupby(["variant", "regime"], sort=False):
        values = group["index"].to_numpy(dtype=float)
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        rows.append({"variant": variant, "regime": regime, "median": median, "q1": q1, "q3": q3,
                     "n_sources": int(values.size)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
