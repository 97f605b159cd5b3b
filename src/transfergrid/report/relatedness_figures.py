"""Study 2 report: the relatedness tables (CSV) and figures (PNG + SVG).

`relatedness_report(per_item_frame, spec, out_dir)` is the edge that writes; the numbers come from
the pure functions of `transfergrid.analysis.relatedness` and `relatedness_fits`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.analysis import relatedness as rel
from transfergrid.analysis import relatedness_fits as fits

log = logging.getLogger(__name__)

GROUP_COLOURS = ["#c0392b", "#2e86c1", "#7d8b8c", "#8e44ad", "#d68910", "#229954"]

TABLES = ("relatedness_gains", "relatedness_group_summary", "relatedness_regression", "cot_correlation",
          "relatedness_weak_strong")
FIGURES = ("relatedness_gains", "relatedness_gain_vs_baseline", "relatedness_ft_vs_cot")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        path = folder / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    _plt().close(fig)
    return paths


def _colours(groups: list[str], related_group: str) -> dict[str, str]:
    ordered = [related_group] + [g for g in groups if g != related_group]
    return {g: GROUP_COLOURS[k % len(GROUP_COLOURS)] for k, g in enumerate(ordered)}


def gains_figure(gains: pd.DataFrame, related_group: str = "related"):
    """One panel per model: fine-tuning gain per target language, coloured by group, Newcombe CIs."""
    plt = _plt()
    models = list(dict.fromkeys(gains["model"]))
    groups = list(dict.fromkeys(gains["group"]))
    colours = _colours(groups, related_group)
    order = {g: k for k, g in enumerate([related_group] + [g for g in groups if g != related_group])}
    ncols = min(3, len(models))
    nrows = math.ceil(len(models) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharey=True, squeeze=False)
    for ax, model in zip(axes.flat, models):
        g = gains[gains["model"] == model].copy()
        g["_order"] = g["group"].map(order)
        g = g.sort_values(["_order", "language"], kind="stable")
        x = np.arange(len(g))
        err = np.vstack([(g["gain"] - g["gain_ci_low"]).to_numpy(float), (g["gain_ci_high"] - g["gain"]).to_numpy(float)])
        ax.bar(x, g["gain"], color=[colours[k] for k in g["group"]], yerr=np.nan_to_num(err), capsize=3,
               error_kw={"elinewidth": 0.8, "ecolor": "#333333"})
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, g["language"], rotation=45, ha="right", fontsize=8)
        base = g["baseline_acc"].mean()
        ax.set_title(f"{model}  (baseline {base:.0f}%)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("fine-tuning gain (pp)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in colours]
    fig.legend(handles, list(colours), loc="upper center", ncol=len(colours), frameon=False,
               bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def gain_vs_baseline_figure(gains: pd.DataFrame, related_group: str = "related"):
    """Gain against baseline accuracy over models x languages, with the fitted lines of
    gain ~ baseline_acc + related (the script-free model, so each line is one group's fit)."""
    plt = _plt()
    groups = list(dict.fromkeys(gains["group"]))
    colours = _colours(groups, related_group)
    fig, ax = plt.subplots(figsize=(6, 4.4))
    for group, colour in colours.items():
        g = gains[gains["group"] == group]
        ax.scatter(g["baseline_acc"], g["gain"], color=colour, label=group, s=28, alpha=0.85, edgecolor="white",
                   linewidth=0.5)
    fit = fits.regression_table(gains, related_group).set_index("term")
    if {"Intercept", "baseline_acc", "related"} <= set(fit.index):
        coef = fit["coef"]
        xs = np.linspace(gains["baseline_acc"].min(), gains["baseline_acc"].max(), 50)
        for is_related in (1.0, 0.0):
            colour = colours[related_group] if is_related else "#555555"
            label = f"fit: {related_group}" if is_related else "fit: other groups"
            ax.plot(xs, coef["Intercept"] + coef["baseline_acc"] * xs + coef["related"] * is_related,
                    color=colour, linestyle="--", linewidth=1.2, label=label)
        b, r = fit.loc["baseline_acc"], fit.loc["related"]
        ax.set_title(f"slope {b['coef']:.2f} pp per baseline % (p={b['p']:.2g}); "
                     f"{related_group} {r['coef']:+.2f} pp (p={r['p']:.2g})", fontsize=9)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("baseline accuracy (%)")
    ax.set_ylabel("fine-tuning gain (pp)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig


def ft_vs_cot_figure(gains: pd.DataFrame, correlation: pd.DataFrame):
    """Fine-tuning gain against chain-of-thought gain: model x language cells and model means."""
    plt = _plt()
    data = gains.dropna(subset=["gain", "cot_gain"])
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.scatter(data["cot_gain"], data["gain"], color="#aab7b8", s=18, label="model x language")
    per_model = data.groupby("model", sort=False)[["gain", "cot_gain"]].mean()
    ax.scatter(per_model["cot_gain"], per_model["gain"], color="#1f4e79", s=50, label="model mean", zorder=3)
    for model, row in per_model.iterrows():
        ax.annotate(str(model), (row["cot_gain"], row["gain"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    if len(data):
        lo = float(min(data["cot_gain"].min(), data["gain"].min(), 0))
        hi = float(max(data["cot_gain"].max(), data["gain"].max(), 0))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.6, linestyle=":", label="y = x")
    corr = correlation.set_index("level") if len(correlation) else None
    if corr is not None and "model" in corr.index:
        parts = []
        for level, name in (("model", "models"), ("model_language", "cells")):
            r = corr.loc[level]
            if not math.isnan(r["pearson_r"]):
                parts.append(f"{name}: r={r['pearson_r']:.2f}, rho={r['spearman_rho']:.2f} (n={int(r['n'])})")
        if parts:
            ax.text(0.02, 0.97, "\n".join(parts), transform=ax.transAxes, fontsize=8, va="top")
    ax.axhline(0, color="black", linewidth=0.4)
    ax.axvline(0, color="black", linewidth=0.4)
    ax.set_xlabel("chain-of-thought gain (pp)")
    ax.set_ylabel("fine-tuning gain (pp)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def _relatedness_spec(spec):
    return spec.relatedness if getattr(spec, "relatedness", None) is not None else spec


def with_groups(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """The per-item frame with its `group` column filled from the spec where missing."""
    groups = rel.resolve_groups(_relatedness_spec(spec))
    of = {lang: g for g, langs in groups.items() for lang in langs}
    frame = frame.copy()
    mapped = frame["language"].map(of)
    frame["group"] = frame["group"].where(frame["group"].notna(), mapped) if "group" in frame else mapped
    frame["group"] = frame["group"].fillna("ungrouped")
    return frame


def relatedness_tables(per_item_frame: pd.DataFrame, spec, *, n_boot: int = rel.N_BOOT,
                       seed: int = rel.BOOT_SEED) -> dict[str, pd.DataFrame]:
    """Every study-2 table, keyed by its file name without '.csv' (no I/O)."""
    r = _relatedness_spec(spec)
    frame = with_groups(per_item_frame, r)
    gains = rel.gains_table(frame)
    return {
        "relatedness_gains": gains,
        "relatedness_group_summary": rel.group_summary(frame, r.related_group, n_boot=n_boot, seed=seed),
        "relatedness_regression": fits.regression_table(gains, r.related_group, r.scripts or None),
        "cot_correlation": fits.cot_correlation(gains),
        "relatedness_weak_strong": rel.weak_strong(gains, r.weak_baseline, r.related_group),
    }


def relatedness_report(per_item_frame: pd.DataFrame, spec, out_dir: str | Path, *, n_boot: int = rel.N_BOOT,
                       seed: int = rel.BOOT_SEED) -> dict[str, pd.DataFrame]:
    """Write the study-2 tables to out_dir/tables/*.csv and figures to out_dir/figures/*.{png,svg}.

    `spec` is the Study or its RelatednessSpec. Returns the tables.
    """
    out_dir = Path(out_dir)
    r = _relatedness_spec(spec)
    tables = relatedness_tables(per_item_frame, r, n_boot=n_boot, seed=seed)
    folder = out_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
    gains = tables["relatedness_gains"]
    if gains["gain"].notna().any():
        _save(gains_figure(gains, r.related_group), out_dir, "relatedness_gains")
        _save(gain_vs_baseline_figure(gains, r.related_group), out_dir, "relatedness_gain_vs_baseline")
    if gains["cot_gain"].notna().any() and gains["gain"].notna().any():
        _save(ft_vs_cot_figure(gains, tables["cot_correlation"]), out_dir, "relatedness_ft_vs_cot")
    log.info("relatedness report: %d tables, figures in %s", len(tables), out_dir / "figures")
    return tables
