"""Rates, roles and grid cells with their uncertainty (issue 15); tables for the report.

* `uplift_intervals`: win and harm rates (rates.py's definitions) with Wilson score intervals
  (statsmodels `proportion_confint(method="wilson")`), in %. The interval treats the cells of a scope
  as independent trials; cells that share a model or a source are not, so read it as a lower bound
  on the uncertainty of a rate.
* `significance_summary`: per scope, how many cells changed significantly, from the per-cell
  `delta_q_value` column (uncertainty.py; q ≤ FDR): "k of n transfer cells changed significantly
  (FDR 5 %), of which h harmful" (harmful: Δ < 0). Empty for a CSV without the column.
* `role_intervals`: language (MT-CL) and task (CT-ML) donor and recipient scores (roles.py) with
  percentile bootstrap intervals. With per-item results: each draw takes the joint item draw of
  every cell (uncertainty.delta_draws) and a draw of models with replacement (basis "items and
  models"; "items" with one model); with the released CSV alone: models only ("models").
* `grid_significance`: per (source cell, target cell) of the grid heatmap, whether its mean Δ over
  models changed significantly: the exact sign test on the per-item difference averaged over seeds
  and models (the per-cell McNemar when there is one model), BH across the matrix. Without
  per-item results it is the per-cell q-value where the grid has one model, else empty.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import scipy.stats

from transfergrid.analysis import uncertainty as U
from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.rates import is_harm, is_win
from transfergrid.analysis.regimes import CT_ML, MT_CL, REGIMES, TRANSFER
from transfergrid.errors import DataError

log = logging.getLogger(__name__)

UPLIFT_INTERVAL_COLUMNS = ["scope", "n", "win_rate", "win_ci_low", "win_ci_high", "harm_rate", "harm_ci_low",
                           "harm_ci_high"]
SIGNIFICANCE_COLUMNS = ["scope", "n", "n_tested", "n_significant", "n_significant_gain", "n_significant_harm",
                        "fdr"]
ROLE_INTERVAL_COLUMNS = ["unit", "name", "donor", "donor_ci_low", "donor_ci_high", "recipient", "recipient_ci_low",
                         "recipient_ci_high", "n_models", "basis"]
GRID_SIGNIFICANCE_COLUMNS = ["source", "target", "delta", "n_models", "p_value", "q_value", "significant"]
NEEDS_CELL_UNCERTAINTY = ("significance_summary", "grid_significance")  # empty for a release-style CSV
ITEMS_UNAVAILABLE = ("intervals over items are unavailable: the results have no per-cell uncertainty columns "
                     "(delta_p_value, delta_ci_low, delta_ci_high, delta_q_value) and no per-item results")


def wilson_interval(count, n, level: float = U.LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of count / n, as proportions clipped to [0, 1]; NaN where n = 0."""
    count, n = np.asarray(count, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = scipy.stats.norm.isf((1.0 - level) / 2.0)
        p = count / n
        denom = 1.0 + z * z / n
        center = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def _scopes(df: pd.DataFrame):
    yield "transfer", df.loc[df["regime"].isin(TRANSFER)]
    for regime in REGIMES:
        yield regime, df.loc[df["regime"] == regime]


def uplift_intervals(frame: pd.DataFrame, level: float = U.LEVEL) -> pd.DataFrame:
    """Win / harm rates (%) with Wilson intervals, per scope (the rows of rates.uplift_summary)."""
    df = ensure_prepared(frame)
    rows = []
    for scope, cells in _scopes(df):
        n = len(cells)
        row = {"scope": scope, "n": n}
        for name, hits in (("win", is_win(cells["delta"])), ("harm", is_harm(cells["delta"]))):
            low, high = wilson_interval(hits.sum(), n, level)
            row[f"{name}_rate"] = 100.0 * hits.mean() if n else np.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = 100.0 * float(low), 100.0 * float(high)
        rows.append(row)
    return pd.DataFrame(rows, columns=UPLIFT_INTERVAL_COLUMNS)


def has_cell_uncertainty(frame: pd.DataFrame) -> bool:
    return "delta_q_value" in frame.columns and bool(pd.to_numeric(frame["delta_q_value"], errors="coerce")
                                                     .notna().any())


def significance_summary(frame: pd.DataFrame, fdr: float = U.FDR) -> pd.DataFrame:
    """Per scope: cells, cells with a q-value, significant (q ≤ fdr), of those gains and harms."""
    df = ensure_prepared(frame)
    if not has_cell_uncertainty(df):
        log.info("significance_summary: %s", ITEMS_UNAVAILABLE)
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    rows = []
    for scope, cells in _scopes(df):
        q = pd.to_numeric(cells["delta_q_value"], errors="coerce")
        significant = q <= fdr
        rows.append({"scope": scope, "n": len(cells), "n_tested": int(q.notna().sum()),
                     "n_significant": int(significant.sum()),
                     "n_significant_gain": int((significant & (cells["delta"] > 0)).sum()),
                     "n_significant_harm": int((significant & (cells["delta"] < 0)).sum()), "fdr": fdr})
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def significance_line(summary: pd.DataFrame | None) -> str | None:
    """'k of n transfer cells changed significantly (FDR 5 %), of which h harmful'; None without data."""
    if summary is None or summary.empty or "scope" not in summary:
        return None
    row = summary.loc[summary["scope"] == "transfer"]
    if row.empty:
        return None
    r = row.iloc[0]
    return (f"{int(r['n_significant'])} of {int(r['n_tested'])} transfer cells changed significantly "
            f"(FDR {100 * float(r['fdr']):g} %), of which {int(r['n_significant_harm'])} harmful")


def paired_or_none(items: pd.DataFrame | None, uses_norm=None) -> U.PairedItems | None:
    """The paired item table of `items`, or None (logged) when there are none or they do not pair."""
    if not U.has_item_scores(items):
        return None
    try:
        return U.paired_items(items, uses_norm)
    except DataError as exc:
        log.warning("per-item results not used (%s); intervals over models only", exc)
        return None


# --- donors and recipients ------------------------------------------------------------------------
def _draw_rows(df: pd.DataFrame, paired: U.PairedItems | None) -> np.ndarray | None:
    """Row of `paired.cells` for each row of df; None when some row has no per-item results."""
    if paired is None or paired.cells.empty:
        return None
    index = paired.cells[U.KEYS].astype(str).assign(_row=np.arange(len(paired.cells)))
    rows = df[U.KEYS].astype(str).merge(index, on=U.KEYS, how="left")["_row"]
    if rows.isna().any():
        log.info("%d cell(s) have no per-item results; intervals over models only", int(rows.isna().sum()))
        return None
    rows = rows.to_numpy(dtype=np.int64)
    cells = paired.cells.iloc[rows]
    from_items = 100.0 * paired.diff[rows].sum(axis=1) / (cells["n_items"].to_numpy() * cells["n_seeds"].to_numpy())
    if not np.allclose(from_items, df["delta"].to_numpy(float), atol=1e-6, rtol=0):
        log.warning("the per-item results do not give the results' Δ (another headline metric or another "
                    "version of the study?); intervals over models only")
        return None
    return rows


def _score_draws(cells: pd.DataFrame, key: str, models: list[str], draws: np.ndarray | None,
                 model_draws: np.ndarray):
    """(names, point scores, bootstrap draws (names × B)) of the mean over models of each model's
    mean Δ per value of `key`."""
    names = sorted(cells[key].unique())
    k_code = pd.Categorical(cells[key], categories=names).codes
    m_code = pd.Categorical(cells["model_name"], categories=models).codes
    group = k_code.astype(np.int64) * len(models) + m_code
    size = len(names) * len(models)
    counts = np.bincount(group, minlength=size).astype(float)
    point = np.bincount(group, weights=cells["delta"].to_numpy(float), minlength=size)
    with np.errstate(invalid="ignore"):
        per_model = (point / counts).reshape(len(names), len(models))
    score = np.nanmean(per_model, axis=1)  # every name has at least one model
    n_boot = model_draws.shape[0]
    if draws is None:
        boot_pm = np.broadcast_to(per_model[:, :, None], (*per_model.shape, n_boot))
    else:
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
        sums = np.add.reduceat(draws[cells["_row"].to_numpy()[order]].astype(np.float64), starts, axis=0)
        boot_pm = np.full((size, n_boot), np.nan)
        present = group[order][starts]
        boot_pm[present] = sums / counts[present][:, None]
        boot_pm = boot_pm.reshape(len(names), len(models), n_boot)
    picked = boot_pm[:, model_draws, np.arange(n_boot)[:, None]]  # names × B × models drawn
    with warnings.catch_warnings():  # an all-NaN slice (no drawn model has this key) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        boot = np.nanmean(picked, axis=2)
    n_models = np.isfinite(per_model).sum(axis=1)
    return names, score, boot, n_models


def role_intervals(frame: pd.DataFrame, paired: U.PairedItems | None = None, *, n_boot: int = U.N_BOOT,
                   level: float = U.LEVEL, seed: int = U.SEED) -> pd.DataFrame:
    """Language (MT-CL) and task (CT-ML) donor / recipient scores with bootstrap intervals."""
    df = ensure_prepared(frame)
    rows = _draw_rows(df, paired)
    draws = None
    if rows is not None:
        draws = U.delta_draws(paired, n_boot, seed)
        df = df.assign(_row=rows)
    models = sorted(df["model_name"].unique())
    model_draws = np.random.default_rng([seed, 1]).integers(0, len(models), (n_boot, len(models)))
    if draws is not None:
        basis = "items and models" if len(models) > 1 else "items"
    else:
        basis = "models" if len(models) > 1 else "none"
    parts = []
    for unit, regime, source_key, target_key in (("language", MT_CL, "source_lang", "target_lang"),
                                                 ("task", CT_ML, "source_task", "target_task")):
        cells = df.loc[df["regime"] == regime]
        if cells.empty:
            continue
        table = None
        for role, key in (("donor", source_key), ("recipient", target_key)):
            names, score, boot, n_models = _score_draws(cells, key, models, draws, model_draws)
            low, high = U.percentile_interval(boot, level) if basis != "none" else (np.nan, np.nan)
            part = pd.DataFrame({"name": names, role: score, f"{role}_ci_low": low, f"{role}_ci_high": high,
                                 f"n_{role}": n_models})
            table = part if table is None else table.merge(part, on="name", how="outer")
        table["n_models"] = table[["n_donor", "n_recipient"]].max(axis=1).astype(int)
        parts.append(table.assign(unit=unit, basis=basis))
    if not parts:
        return pd.DataFrame(columns=ROLE_INTERVAL_COLUMNS)
    return pd.concat(parts, ignore_index=True)[ROLE_INTERVAL_COLUMNS]


# --- the grid heatmap's marks ---------------------------------------------------------------------
def grid_significance(frame: pd.DataFrame, paired: U.PairedItems | None = None, fdr: float = U.FDR) -> pd.DataFrame:
    """Per (source cell, target cell): mean Δ over models, sign-test p, BH q, significant."""
    df = ensure_prepared(frame)
    mean = df.groupby(["source", "target"], sort=True).agg(delta=("delta", "mean"), n_models=("model_name", "nunique"))
    if paired is not None and _draw_rows(df, paired) is not None:
        cells = paired.cells
        source = (cells["fine_tuned_dataset"].astype(str) + ":" + cells["fine_tuned_language"].astype(str)).to_numpy()
        target = (cells["eval_dataset"].astype(str) + ":" + cells["eval_language"].astype(str)).to_numpy()
        g_code, g_keys = pd.factorize(pd.MultiIndex.from_arrays([source, target]))
        per_item = paired.diff / cells["n_seeds"].to_numpy()[:, None]
        order = np.argsort(g_code, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(g_code[order]) != 0])
        summed = np.add.reduceat(per_item[order], starts, axis=0)  # the sign of the mean over models
        b, c = (summed > 1e-9).sum(axis=1), (summed < -1e-9).sum(axis=1)
        p = pd.Series(U.mcnemar_exact(b, c), index=pd.MultiIndex.from_tuples(list(g_keys[g_code[order][starts]]),
                                                                             names=["source", "target"]))
        out = mean.join(p.rename("p_value"), how="inner")
    elif "delta_q_value" in df.columns and (mean["n_models"] == 1).all() and has_cell_uncertainty(df):
        per_cell = df.set_index(["source", "target"])[["delta_p_value"]].rename(columns={"delta_p_value": "p_value"})
        out = mean.join(per_cell, how="inner")
    else:
        return pd.DataFrame(columns=GRID_SIGNIFICANCE_COLUMNS)
    out["q_value"] = U.bh_qvalues(out["p_value"].to_numpy(float))
    out["significant"] = out["q_value"] <= fdr
    return out.reset_index()[GRID_SIGNIFICANCE_COLUMNS]
