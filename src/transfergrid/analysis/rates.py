"""Uplift, positive-transfer (win) and harm rates of the headline Δ (MISSION.md "Rates").

The reference's rule, the default: win = % of cells with Δ > 0, harm = % with Δ <= -1.0 pp, both
exact comparisons. The release's seed means carry float noise (a mean of -1.0 is stored as
-0.9999999999999998 in some cells), and the published rates count those cells as they fall.
`tolerance` (pp, opt-in) widens both comparisons by that much (win Δ > tol, harm Δ <= -1 + tol),
which counts a noisy -1.0 as harm; it changes the published numbers, so it is never the default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import MT_CL, REGIMES, TRANSFER

HARM_THRESHOLD = -1.0
BREAKDOWN_DIMENSIONS = ("eval_language", "eval_dataset", "size_bucket", "family", "construction")
UPLIFT_COLUMNS = ["scope", "n", "mean", "median", "win_rate", "harm_rate"]
BREAKDOWN_COLUMNS = ["dimension", "value", "n", "mean", "median", "win_rate", "harm_rate"]


def rule(tolerance: float = 0.0) -> str:
    """The win / harm rule in words, for table captions."""
    if tolerance:
        return f"win Δ > {tolerance:g}, harm Δ ≤ −1 + {tolerance:g} pp (tolerance {tolerance:g} pp)"
    return "win Δ > 0, harm Δ ≤ −1.0 pp (the reference's exact rule)"


def is_win(delta, tolerance: float = 0.0) -> np.ndarray:
    return np.asarray(delta, dtype=float) > tolerance


def is_harm(delta, tolerance: float = 0.0) -> np.ndarray:
    return np.asarray(delta, dtype=float) <= HARM_THRESHOLD + tolerance


def win_rate(delta, tolerance: float = 0.0) -> float:
    d = np.asarray(delta, dtype=float)
    return float(100.0 * is_win(d, tolerance).mean()) if d.size else np.nan


def harm_rate(delta, tolerance: float = 0.0) -> float:
    d = np.asarray(delta, dtype=float)
    return float(100.0 * is_harm(d, tolerance).mean()) if d.size else np.nan


def summarize(delta, tolerance: float = 0.0) -> dict:
    """n, mean, median, win and harm rate (%) of a set of Δ."""
    d = np.asarray(delta, dtype=float)
    return {"n": int(d.size), "mean": float(d.mean()) if d.size else np.nan,
            "median": float(np.median(d)) if d.size else np.nan,
            "win_rate": win_rate(d, tolerance), "harm_rate": harm_rate(d, tolerance)}


def uplift_summary(frame: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """One row per scope: all transfer cells (MT-CL ∪ CT-ML ∪ CT-CL), then each regime."""
    df = ensure_prepared(frame)
    rows = [{"scope": "transfer", **summarize(df.loc[df["regime"].isin(TRANSFER), "delta"], tolerance)}]
    rows += [{"scope": r, **summarize(df.loc[df["regime"] == r, "delta"], tolerance)} for r in REGIMES]
    return pd.DataFrame(rows, columns=UPLIFT_COLUMNS)


def harm_breakdown(frame: pd.DataFrame, dimensions=BREAKDOWN_DIMENSIONS, tolerance: float = 0.0) -> pd.DataFrame:
    """MT-CL cells: all of them ("all"), then by target language, target task, size bucket, family
    and construction (the reference's `harmful_mtcl_breakdown` and `mtcl_by_construction_type`)."""
    df = ensure_prepared(frame)
    mtcl = df.loc[df["regime"] == MT_CL]
    rows = [{"dimension": "all", "value": "all", **summarize(mtcl["delta"], tolerance)}] if len(mtcl) else []
    for dim in dimensions:
        for value, group in mtcl.groupby(dim, sort=True, dropna=True):
            rows.append({"dimension": dim, "value": value, **summarize(group["delta"], tolerance)})
    return pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
