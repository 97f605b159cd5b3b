"""Uplift, positive-transfer (win) and harm rates of the headline Δ (MISSION.md "Rates").

win = % of cells with Δ > 0; harm = % of cells with Δ <= -1.0 pp. Values read from a CSV carry float
noise (a seed mean of -1.0 may be stored as -0.9999999999999998), so both comparisons allow 1e-9 pp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import MT_CL, REGIMES, TRANSFER

HARM_THRESHOLD = -1.0
_EPS = 1e-9
BREAKDOWN_DIMENSIONS = ("eval_language", "eval_dataset", "size_bucket", "family", "construction")
UPLIFT_COLUMNS = ["scope", "n", "mean", "median", "win_rate", "harm_rate"]
BREAKDOWN_COLUMNS = ["dimension", "value", "n", "mean", "win_rate", "harm_rate"]


def is_win(delta) -> np.ndarray:
    return np.asarray(delta, dtype=float) > _EPS


def is_harm(delta) -> np.ndarray:
    return np.asarray(delta, dtype=float) <= HARM_THRESHOLD + _EPS


def win_rate(delta) -> float:
    d = np.asarray(delta, dtype=float)
    return float(100.0 * is_win(d).mean()) if d.size else np.nan


def harm_rate(delta) -> float:
    d = np.asarray(delta, dtype=float)
    return float(100.0 * is_harm(d).mean()) if d.size else np.nan


def _summary(delta: pd.Series) -> dict:
    d = delta.to_numpy(dtype=float)
    return {"n": int(d.size), "mean": float(d.mean()) if d.size else np.nan,
            "median": float(np.median(d)) if d.size else np.nan,
            "win_rate": win_rate(d), "harm_rate": harm_rate(d)}


def uplift_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per scope: all transfer cells (MT-CL ∪ CT-ML ∪ CT-CL), then each regime."""
    df = ensure_prepared(frame)
    rows = [{"scope": "transfer", **_summary(df.loc[df["regime"].isin(TRANSFER), "delta"])}]
    rows += [{"scope": r, **_summary(df.loc[df["regime"] == r, "delta"])} for r in REGIMES]
    return pd.DataFrame(rows, columns=UPLIFT_COLUMNS)


def harm_breakdown(frame: pd.DataFrame, dimensions=BREAKDOWN_DIMENSIONS) -> pd.DataFrame:
    """MT-CL cells broken down by target language, target task, size bucket, family, construction."""
    df = ensure_prepared(frame)
    mtcl = df.loc[df["regime"] == MT_CL]
    rows = []
    for dim in dimensions:
        for value, group in mtcl.groupby(dim, sort=True, dropna=True):
            s = _summary(group["delta"])
            rows.append({"dimension": dim, "value": value, "n": s["n"], "mean": s["mean"],
                         "win_rate": s["win_rate"], "harm_rate": s["harm_rate"]})
    return pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
