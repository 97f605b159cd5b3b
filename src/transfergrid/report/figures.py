"""Study-1 figures: each function takes analysis tables and returns a matplotlib Figure (no I/O).

`write_figures(tables, figures_dir)` is the edge that saves every figure whose tables are present
and non-empty, as PNG (150 dpi) and SVG. `FIGURES` names each figure, the tables it needs, and a
caption that tells a reader how to read it (the HTML report shows these captions).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.analysis.regimes import scope_order
from transfergrid.report import style

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _rc():
    plt = _plt()
    with plt.rc_context(style.RC):
        yield plt


# --- heatmaps ---------------------------------------------------------------------------------------
def _delta_norm(values: np.ndarray):
    """Symmetric limits around zero, clipped at the 2nd/98th percentiles of |Δ| so that a few extreme
    cells (e.g. the MT-ML diagonal) do not wash out the rest; returns (norm, clipped?)."""
    from matplotlib.colors import TwoSlopeNorm

    finite = np.abs(values[np.isfinite(values)])
    if finite.size == 0:
        return TwoSlopeNorm(vcenter=0.0, vmin=-1.0, vmax=1.0), False
    lim = float(np.percentile(finite, 98)) if finite.size > 50 else float(finite.max())
    lim = max(lim, 1e-6)
    return TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim), bool(finite.max() > lim)


def _split_cell(label) -> tuple[str, str]:
    """'task:lang' (or a (task, lang) tuple) → (task, lang); a plain label is its own language."""
    if isinstance(label, tuple) and len(label) == 2:
        return str(label[0]), str(label[1])
    text = str(label)
    if ":" in text:
        task, lang = text.split(":", 1)
        return task, lang
    return "", text


def _blocks(labels) -> list[tuple[str, int, int]]:
    """Consecutive runs of the same task: (task, start, stop)."""
    runs: list[tuple[str, int, int]] = []
    for k, label in enumerate(labels):
        task = _split_cell(label)[0]
        if runs and runs[-1][0] == task:
            runs[-1] = (task, runs[-1][1], k + 1)
        else:
            runs.append((task, k, k + 1))
    return runs


def as_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """A matrix table with its row labels as the index: the analysis writes them as the first column
    (so the CSV is plain), a CSV read with index_col=0 already has them in the index."""
    if isinstance(table.index, pd.RangeIndex) and len(table.columns) and not pd.api.types.is_numeric_dtype(
            table[table.columns[0]]):
        return table.set_index(table.columns[0])
    return table


def matrix_heatmap(matrix: pd.DataFrame, *, title: str, xlabel: str, ylabel: str,
                   annotate: bool | None = None, figsize: tuple[float, float] | None = None,
                   tick_labels: tuple[list[str], list[str]] | None = None):
    """Rows = source, columns = target, colour = mean Δ on a diverging scale centred on zero."""
    matrix = as_matrix(matrix)
    with _rc() as plt:
        values = matrix.to_numpy(dtype=float)
        n_rows, n_cols = values.shape
        if annotate is None:
            annotate = max(n_rows, n_cols) <= 15
        if figsize is None:
            side = min(9.0, max(4.0, 0.4 * max(n_rows, n_cols) + 2.4))
            figsize = (side + 1.0, side)
        norm, clipped = _delta_norm(values)
        # a missing cell is grey, never a colour that reads as a value
        cmap = plt.get_cmap(style.DIVERGING_CMAP).with_extremes(bad="#d9d9d9")
        fig, ax = plt.subplots(figsize=figsize)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="equal",
                          interpolation="nearest")
        ylabels, xlabels = tick_labels or ([str(i) for i in matrix.index], [str(c) for c in matrix.columns])
        small = max(n_rows, n_cols) > 20
        ax.set_xticks(np.arange(n_cols), xlabels, rotation=90 if small else 45,
                      ha="center" if small else "right", fontsize=6.5 if small else 8)
        ax.set_yticks(np.arange(n_rows), ylabels, fontsize=6.5 if small else 8)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if annotate:
            for i in range(n_rows):
                for j in range(n_cols):
                    v = values[i, j]
                    if np.isfinite(v):
                        dark = abs(float(norm(v)) - 0.5) > 0.3
                        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7 if n_cols > 8 else 8.5,
                                color="white" if dark else "#1d232a")
        bar = fig.colorbar(image, ax=ax, fraction=0.03 if small else 0.046, pad=0.06 if small else 0.04,
                           shrink=0.7 if small else 1.0, extend="both" if clipped else "neither")
        bar.set_label(f"mean {style.DELTA_LABEL}")
        fig.tight_layout()
        return fig


def grid_heatmap(grid: pd.DataFrame):
    """The full source cell → target cell matrix, with lines between task blocks."""
    grid = as_matrix(grid)
    ylangs = [_split_cell(i)[1] for i in grid.index]
    xlangs = [_split_cell(c)[1] for c in grid.columns]
    n = max(grid.shape)
    side = min(12.0, max(5.0, 0.22 * n + 2.5))
    fig = matrix_heatmap(grid, title=f"Transfer grid: mean {style.DELTA_LABEL} per source → target cell",
                         xlabel="target cell (language, grouped by task)",
                         ylabel="source cell (language, grouped by task)", figsize=(side + 0.8, side),
                         tick_labels=(ylangs, xlangs))
    ax = fig.axes[0]
    row_blocks, col_blocks = _blocks(grid.index), _blocks(grid.columns)
    for _, start, _stop in row_blocks[1:]:
        ax.axhline(start - 0.5, color="black", linewidth=1.0)
    for _, start, _stop in col_blocks[1:]:
        ax.axvline(start - 0.5, color="black", linewidth=1.0)
    if any(task for task, _, _ in col_blocks):
        top = ax.secondary_xaxis("top")
        top.set_xticks([(a + b - 1) / 2 for _, a, b in col_blocks], [t for t, _, _ in col_blocks], fontsize=8.5)
        top.tick_params(length=0)
    if any(task for task, _, _ in row_blocks):
        right = ax.secondary_yaxis("right")
        right.set_yticks([(a + b - 1) / 2 for _, a, b in row_blocks], [t for t, _, _ in row_blocks],
                         fontsize=8.5, rotation=270, va="center")
        right.tick_params(length=0)
    fig.tight_layout()
    return fig


def mark_significant(ax, matrix: pd.DataFrame, significance: pd.DataFrame) -> int:
    """A dot on each heatmap cell whose change is significant (grid_significance: source, target,
    significant); returns how many were marked."""
    matrix = as_matrix(matrix)
    rows = {str(r): i for i, r in enumerate(matrix.index)}
    cols = {str(c): j for j, c in enumerate(matrix.columns)}
    hits = significance.loc[significance["significant"].astype(str).str.lower() == "true"]
    points = [(cols[t], rows[s]) for s, t in zip(hits["source"].astype(str), hits["target"].astype(str))
              if s in rows and t in cols]
    if points:
        xs, ys = zip(*points)
        size = max(3.0, min(22.0, 900.0 / max(matrix.shape) ** 1.5))
        # in the cell's upper-right corner, clear of the value printed in its centre
        ax.scatter(np.asarray(xs) + 0.3, np.asarray(ys) - 0.3, s=size, c="black", marker="o",
                   edgecolors="white", linewidths=0.4, zorder=3)
    return len(points)


def grid_heatmap_marked(grid: pd.DataFrame, grid_significance: pd.DataFrame | None = None):
    """The grid heatmap, with a dot where the change is significant when tests are available."""
    fig = grid_heatmap(grid)
    if isinstance(grid_significance, pd.DataFrame) and not grid_significance.empty:
        mark_significant(fig.axes[0], grid, grid_significance)
    return fig


def language_heatmap(matrix: pd.DataFrame):
    return matrix_heatmap(matrix, title=f"Language → language transfer (MT-CL), mean {style.DELTA_LABEL}",
                          xlabel="target language", ylabel="source language")


def task_heatmap(matrix: pd.DataFrame):
    return matrix_heatmap(matrix, title=f"Task → task transfer (CT-ML), mean {style.DELTA_LABEL}",
                          xlabel="target task", ylabel="source task")


# --- scatters ----------------------------------------------------------------------------------------
def _zero_lines(ax) -> None:
    ax.axhline(0, color="#444444", linewidth=0.6, zorder=1)
    ax.axvline(0, color="#444444", linewidth=0.6, zorder=1)


def _diagonal(ax, xs, ys) -> None:
    finite = np.concatenate([np.asarray(xs, float), np.asarray(ys, float)])
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return
    lo, hi = float(min(finite.min(), 0)), float(max(finite.max(), 0))
    pad = 0.08 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#444444", linestyle=":", linewidth=1.0,
            label="y = x", zorder=1)


def _label_points(ax, labels, xs, ys, *, fontsize: float = 9, bold: bool = False) -> None:
    """Label each point beside it, trying the four corners around the point and then lower rows
    until the label overlaps no earlier one (a small, dependency-free label placement)."""
    ax.autoscale_view()
    to_pt = 72.0 / ax.figure.dpi
    height = fontsize * 1.2
    placed: list[tuple[float, float, float, float]] = []  # boxes in points: x0, y0, x1, y1
    candidates = [(5, 3, "left"), (5, -3 - height, "left"), (-5, 3, "right"), (-5, -3 - height, "right")]
    candidates += [(5, -3 - height * k, "left") for k in range(2, 8)]
    for label, x, y in zip(labels, xs, ys):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = (ax.transData.transform((x, y)) * to_pt)
        width = 0.62 * fontsize * len(str(label)) * (1.1 if bold else 1.0)
        for dx, dy, ha in candidates:
            x0 = px + dx if ha == "left" else px + dx - width
            box = (x0, py + dy, x0 + width, py + dy + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        far = dy < -3 - height
        ax.annotate(str(label), (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha,
                    va="bottom", fontweight="bold" if bold else "normal",
                    arrowprops={"arrowstyle": "-", "color": "#999999", "linewidth": 0.5} if far else None)


def roles_scatter(roles: pd.DataFrame, *, what: str | None = None, regime: str = "MT-CL"):
    """Donor score (x) against recipient score (y), one labelled point per language / task / family,
    with ± 1 SE bars across models; the diagonal separates net donors (below) from net recipients."""
    key = roles.columns[0]
    what = what or str(key)
    with _rc() as plt:
        fig, ax = plt.subplots(figsize=(6.2, 5.4))
        x, y = roles["donor"].to_numpy(float), roles["recipient"].to_numpy(float)
        xerr = np.nan_to_num(roles["donor_se"].to_numpy(float)) if "donor_se" in roles else None
        yerr = np.nan_to_num(roles["recipient_se"].to_numpy(float)) if "recipient_se" in roles else None
        _zero_lines(ax)
        _diagonal(ax, x, y)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=style.WIN_COLOUR, ecolor="#b5c3d1",
                    elinewidth=0.8, capsize=2, markersize=6, markeredgecolor="white", zorder=3)
        _label_points(ax, roles[key], x, y, bold=True)
        unit = what.capitalize()  # the paper's axis labels
        ax.set_xlabel(f"{unit} Donor Score (pp)")
        ax.set_ylabel(f"{unit} Recipient Score (pp)")
        ax.set_title(f"{what.capitalize()} roles ({regime}): donor vs recipient")
        ax.text(0.99, 0.01, "below the diagonal: net donor", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7.5, color=style.NEUTRAL_COLOUR)
        ax.grid(alpha=0.25)
        fig.tight_layout()
        return fig


def language_roles_scatter(roles: pd.DataFrame):
    return roles_scatter(roles, what="language", regime="MT-CL")


def task_roles_scatter(roles: pd.DataFrame):
    return roles_scatter(roles, what="task", regime="CT-ML")


def family_roles_scatter(roles: pd.DataFrame):
    """Language roles (MT-CL) computed within each model family: one panel per family, shared axes."""
    if "unit" in roles:
        unit = "language" if (roles["unit"] == "language").any() else str(roles["unit"].iloc[0])
        roles = roles[roles["unit"] == unit]
    else:
        unit = "language"
    label = "name" if "name" in roles else roles.columns[1]
    families = list(dict.fromkeys(roles["family"].astype(str)))
    colours = style.category_colours(families)
    with _rc() as plt:
        ncols = min(3, len(families))
        nrows = math.ceil(len(families) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.9 * nrows), squeeze=False,
                                 sharex=True, sharey=True)
        for ax, family in zip(axes.flat, families):
            part = roles[roles["family"].astype(str) == family]
            x, y = part["donor"].to_numpy(float), part["recipient"].to_numpy(float)
            _zero_lines(ax)
            _diagonal(ax, roles["donor"], roles["recipient"])
            ax.errorbar(x, y, xerr=np.nan_to_num(part["donor_se"].to_numpy(float)),
                        yerr=np.nan_to_num(part["recipient_se"].to_numpy(float)), fmt="o", color=colours[family],
                        ecolor="#d0d8e0", elinewidth=0.6, capsize=0, markersize=5, markeredgecolor="white", zorder=3)
            _label_points(ax, part[label], x, y, fontsize=7.5)
            ax.set_title(family)
            ax.grid(alpha=0.25)
        for ax in axes.flat[len(families):]:
            ax.set_visible(False)
        for ax in axes[-1, :]:
            ax.set_xlabel(f"donor score, {style.DELTA_LABEL}")
        for ax in axes[:, 0]:
            ax.set_ylabel(f"recipient score, {style.DELTA_LABEL}")
        fig.suptitle(f"{unit.capitalize()} roles within each model family")
        fig.tight_layout()
        return fig


def on_off_task_scatter(on_off: pd.DataFrame):
    """Per (model, source cell): mean MT-CL Δ (on-task) against mean off-task Δ, coloured by family."""
    with _rc() as plt:
        fig, ax = plt.subplots(figsize=(6.6, 5.2))
        families = on_off["family"].fillna("unknown").astype(str)
        colours = style.category_colours(sorted(set(families)))
        _zero_lines(ax)
        _diagonal(ax, on_off["mt_cl_mean"], on_off["off_task_mean"])
        for family, colour in colours.items():
            part = on_off[families == family]
            ax.scatter(part["mt_cl_mean"], part["off_task_mean"], s=22, color=colour, alpha=0.8,
                       edgecolor="white", linewidth=0.4, label=family, zorder=3)
        ax.set_xlabel("MT-CL gain (Δ pp)")  # the paper's labels
        ax.set_ylabel("Mean off-task Δ (pp)")
        ax.set_title("On-task vs off-task transfer, per model and source cell")
        ax.grid(alpha=0.25)
        ax.legend(title="family", frameon=False, loc="best")
        fig.tight_layout()
        return fig


def pareto_family_panels(summary: pd.DataFrame, profiles: pd.DataFrame | None = None):
    """The paper's three-panel summary: one panel per model family; per model and source task the
    mean MT-CL Δ (x) against the mean off-task Δ (y), marker area growing with parameters; faint
    points are the per-language adapters behind each mean."""
    present = sorted(summary["family"].dropna().astype(str).unique())
    families = [f for f in ("llama", "qwen", "gemma") if f in present] + [f for f in present
                                                                        if f not in ("llama", "qwen", "gemma")]
    tasks = sorted(summary["source_task"].astype(str).unique())
    colours = style.category_colours(tasks)
    markers = dict(zip(tasks, "osD^vP*X"))
    with _rc() as plt:
        fig, axes = plt.subplots(1, len(families), figsize=(3.0 * len(families) + 0.8, 3.6), sharex=True,
                                 sharey=True, squeeze=False)
        for ax, family in zip(axes[0], families):
            part = summary[summary["family"] == family]
            raw = profiles[profiles["family"] == family] if profiles is not None and not profiles.empty else None
            for task in tasks:
                if raw is not None:
                    r = raw[raw["source_task"] == task]
                    ax.scatter(r["mt_cl_mean"], r["off_task_mean"], s=8, marker=markers[task], color=colours[task],
                               alpha=0.2, linewidth=0, zorder=2)
                t = part[part["source_task"] == task].sort_values("size_b", ascending=False)
                area = 14.0 + 14.0 * np.nan_to_num(t["size_b"].to_numpy(float), nan=1.0) ** 1.2
                ax.scatter(t["mt_cl_mean"], t["off_task_mean"], s=area, marker=markers[task], color=colours[task],
                           edgecolor="#202020", linewidth=0.7, alpha=0.9, zorder=4)
            _zero_lines(ax)
            ax.set_title(family.capitalize(), fontweight="bold")
            ax.grid(alpha=0.25)
        axes[0][0].set_ylabel("Mean off-task transfer (pp)")
        fig.supxlabel("Mean MT–CL transfer (pp)", y=0.09)
        handles = [plt.Line2D([0], [0], marker=markers[t], linestyle="none", color=colours[t], markeredgecolor="#202020",
                              label=t) for t in tasks]
        fig.legend(handles=handles, title="Source task:", loc="lower center", ncol=len(tasks) + 1, frameon=False,
                   bbox_to_anchor=(0.5, -0.01), alignment="left")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        return fig


# --- bars and distributions --------------------------------------------------------------------------
def regime_bars(summary: pd.DataFrame):
    """Left: mean (bar) and median (diamond) Δ per scope; right: win and harm rates per scope."""
    with _rc() as plt:
        table = summary.assign(scope=summary["scope"].astype(str)).set_index("scope")
        scopes = scope_order(table.index)
        table = table.loc[scopes]
        x = np.arange(len(scopes))
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.0))
        means = table["mean"].to_numpy(float)
        left.bar(x, means, color=[style.WIN_COLOUR if m >= 0 else style.HARM_COLOUR for m in means], width=0.6)
        if "median" in table:
            left.scatter(x, table["median"], marker="D", color="#1d232a", s=22, zorder=3, label="median")
            left.legend(frameon=False, loc="best")
        medians = table["median"].to_numpy(float) if "median" in table else means
        for xi, m, md in zip(x, means, medians):
            if np.isfinite(m):  # above (below) both the bar and the median marker
                y = np.nanmax([m, md]) if m >= 0 else np.nanmin([m, md])
                left.annotate(f"{m:.2f}", (xi, y), xytext=(0, 5 if m >= 0 else -12), textcoords="offset points",
                              ha="center", fontsize=8)
        left.axhline(0, color="#444444", linewidth=0.6)
        left.margins(y=0.12)  # room for the value labels
        left.set_xticks(x, scopes)
        left.set_ylabel(f"mean {style.DELTA_LABEL}")
        left.set_title("Mean transfer by regime")
        width = 0.38
        for offset, column, colour, label in ((-width / 2, "win_rate", style.WIN_COLOUR, "win: Δ > 0"),
                                              (width / 2, "harm_rate", style.HARM_COLOUR, "harm: Δ ≤ −1 pp")):
            rates = table[column].to_numpy(float)
            right.bar(x + offset, rates, width=width, color=colour, label=label)
            for xi, r in zip(x + offset, rates):
                if np.isfinite(r):
                    right.annotate(f"{r:.0f}", (xi, r), xytext=(0, 2), textcoords="offset points", ha="center",
                                   fontsize=7.5)
        right.set_xticks(x, scopes)
        right.set_ylim(0, 105)
        right.set_ylabel("% of cells")
        right.set_title("Win and harm rates by regime")
        right.legend(frameon=False, loc="upper right")
        for ax in (left, right):
            ax.grid(axis="y", alpha=0.25)
        if "n" in table:
            fig.text(0.5, 0.005, "cells per scope: " + ", ".join(f"{s} {int(n):,}" for s, n in table["n"].items()),
                     ha="center", fontsize=7.5, color=style.NEUTRAL_COLOUR)
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        return fig


def variance_shares(variance: pd.DataFrame):
    """Stacked shares of each variance component, crossed vs nested, per scope; one panel per subset."""
    with _rc() as plt:
        subsets = list(dict.fromkeys(variance["subset"].astype(str)))
        specs = [s for s in ("crossed", "nested") if s in set(variance["spec"])] + sorted(
            set(variance["spec"]) - {"crossed", "nested"})
        scopes = scope_order(variance["scope"])
        components = [c for c in style.VARIANCE_COMPONENTS if c in set(variance["component"])] + sorted(
            set(variance["component"]) - set(style.VARIANCE_COMPONENTS))
        fig, axes = plt.subplots(len(subsets), 1, figsize=(9.5, 2.7 * len(subsets) + 0.8), squeeze=False,
                                 sharex=True)
        width = 0.8 / max(len(specs), 1)
        hatches = {"crossed": "", "nested": "///"}
        for ax, subset in zip(axes[:, 0], subsets):
            part = variance[variance["subset"].astype(str) == subset]
            shares = part.pivot_table(index=["scope", "spec"], columns="component", values="share", aggfunc="mean")
            for k, spec in enumerate(specs):
                xs = np.arange(len(scopes)) - 0.4 + width * (k + 0.5)
                bottom = np.zeros(len(scopes))
                for component in components:
                    heights = np.array([shares.at[(s, spec), component] if (s, spec) in shares.index
                                        and component in shares.columns else np.nan for s in scopes], float)
                    heights = np.nan_to_num(heights)
                    ax.bar(xs, heights, width=width * 0.92, bottom=bottom, color=style.COMPONENT_COLOURS.get(
                        component, style.NEUTRAL_COLOUR), hatch=hatches.get(spec, ""), edgecolor="white",
                        linewidth=0.5, label=component if k == 0 else None)
                    bottom += heights
                for xi in xs:
                    ax.text(xi, 101, spec, ha="center", va="bottom", fontsize=7, color=style.NEUTRAL_COLOUR)
            ax.set_ylim(0, 112)
            ax.set_ylabel("% of variance")
            ax.set_title(f"subset: {subset}", loc="left", fontsize=9)
            ax.grid(axis="y", alpha=0.25)
        axes[-1, 0].set_xticks(np.arange(len(scopes)), scopes)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", frameon=False, title="component")
        fig.suptitle("Variance decomposition of Δ: share per component (random intercepts)")
        fig.tight_layout(rect=(0, 0, 0.87, 1))
        return fig


def consistency_distributions(consistency: pd.DataFrame):
    """Per regime, the distribution over source cells of the consistency index (mean Kendall τ-b
    between models' recipient rankings), one box (with points) per variant."""
    with _rc() as plt:
        data = consistency.dropna(subset=["index"])
        regimes = scope_order(data["regime"])
        known = ("model", "family", "size", "size_bucket")
        variants = [v for v in known if v in set(data["variant"])] + sorted(set(data["variant"]) - set(known))
        colours = style.category_colours(variants)
        fig, ax = plt.subplots(figsize=(max(6.0, 2.4 * len(regimes) + 1.5), 4.4))
        width = 0.8 / max(len(variants), 1)
        rng = np.random.default_rng(0)  # fixed jitter: same figure on every run
        for k, variant in enumerate(variants):
            xs = np.arange(len(regimes)) - 0.4 + width * (k + 0.5)
            for xi, regime in zip(xs, regimes):
                vals = data.loc[(data["variant"] == variant) & (data["regime"] == regime), "index"].to_numpy(float)
                if vals.size == 0:
                    continue
                ax.boxplot(vals, positions=[xi], widths=width * 0.75, showfliers=False, patch_artist=True,
                           boxprops={"facecolor": colours[variant], "alpha": 0.35, "edgecolor": colours[variant]},
                           medianprops={"color": "#1d232a", "linewidth": 1.4},
                           whiskerprops={"color": colours[variant]}, capprops={"color": colours[variant]})
                ax.scatter(xi + rng.uniform(-width * 0.28, width * 0.28, vals.size), vals, s=9,
                           color=colours[variant], alpha=0.7, zorder=3, linewidth=0)
        for variant, colour in colours.items():
            ax.scatter([], [], color=colour, label=f"by {variant}")
        ax.axhline(0, color="#444444", linewidth=0.6)
        ax.set_xticks(np.arange(len(regimes)), regimes)
        ax.set_xlim(-0.6, len(regimes) - 0.4)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("Consistency Index (mean Kendall τ-b)")
        ax.set_title("How consistently models rank a source's recipients")
        ax.grid(axis="y", alpha=0.25)
        ax.legend(frameon=False, loc="lower right", ncol=len(variants))
        fig.tight_layout()
        return fig


def _pairs_delta_column(pairs: pd.DataFrame) -> str:
    for name in ("delta", "mean_delta", "delta_mean", "mt_cl_mean"):
        if name in pairs:
            return name
    raise KeyError("pairs frame has no mean Δ column (delta / mean_delta)")


def distance_scatter(pairs: pd.DataFrame, correlation: pd.DataFrame):
    """Mean MT-CL Δ per ordered language pair against each linguistic distance, one panel per distance,
    with Spearman ρ and the permutation (Mantel/QAP) p-value in the panel title."""
    delta = _pairs_delta_column(pairs)
    corr = correlation.set_index("distance") if len(correlation) else pd.DataFrame()
    distances = [d for d in corr.index if d in pairs.columns] or [
        c for c in pairs.columns if c not in (delta, "source_language", "target_language", "pair", "n")
        and pd.api.types.is_numeric_dtype(pairs[c])]
    with _rc() as plt:
        ncols = min(3, max(len(distances), 1))
        nrows = max(1, math.ceil(len(distances) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
        for ax, name in zip(axes.flat, distances):
            ax.scatter(pairs[name], pairs[delta], s=16, color=style.WIN_COLOUR, alpha=0.7, edgecolor="white",
                       linewidth=0.3)
            ax.axhline(0, color="#444444", linewidth=0.6)
            title = str(name)
            if name in corr.index:
                row = corr.loc[name]
                perm = row.get("permutation_p", np.nan)
                title += f"\nρ = {row['spearman_rho']:.2f}, r = {row['pearson_r']:.2f}"
                title += f", perm. p = {perm:.3g}" if np.isfinite(perm) else ""
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("distance")
            ax.grid(alpha=0.25)
        for ax in axes.flat[len(distances):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"mean MT-CL {style.DELTA_LABEL}")
        fig.suptitle("Transfer vs linguistic distance, per ordered language pair")
        fig.tight_layout()
        return fig


# --- registry and writer -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    name: str
    needs: tuple[str, ...]
    build: Callable[..., object]
    title: str
    caption: str
    section: str
    optional: tuple[str, ...] = ()  # tables passed as keywords when present and non-empty


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("regime_bars", ("uplift_summary",), regime_bars, "Transfer by regime",
               "Left: mean Δ (bars; blue = gain, red = loss) and median Δ (diamonds) per regime, in percentage "
               "points against the base model. Right: the share of cells that gain (Δ > 0) and that are harmed "
               "(Δ ≤ −1 pp). 'transfer' pools every cell except the source cell itself (MT-ML).", "uplift"),
    FigureSpec("grid_heatmap", ("grid_matrix",), grid_heatmap_marked, "The full transfer grid",
               "Each row is a source cell (the task and language an adapter was trained on), each column a target "
               "cell; colour is the mean Δ over models and seeds (blue = gain, red = loss, grey = not measured). "
               "Black lines separate tasks, so diagonal blocks are same-task transfer. The colour scale is "
               "symmetric around zero and clipped at the 98th percentile of |Δ| (arrow ends on the colour bar). "
               "Where per-item results exist, a black dot in a cell's corner marks a change that is significant (exact sign "
               "test on the item differences averaged over seeds and models, Benjamini-Hochberg FDR 5 % across "
               "the grid).", "matrices", optional=("grid_significance",)),
    FigureSpec("language_heatmap", ("language_matrix",), language_heatmap, "Language → language (MT-CL)",
               "Mean Δ when training on one language (row) and evaluating the same task in another language "
               "(column), averaged over tasks and models. Read a row for a language's strength as a donor, a "
               "column for its strength as a recipient.", "matrices"),
    FigureSpec("task_heatmap", ("task_matrix",), task_heatmap, "Task → task (CT-ML)",
               "Mean Δ when training on one task (row) and evaluating another task (column) in the same language, "
               "averaged over languages and models.", "matrices"),
    FigureSpec("language_roles", ("language_roles",), language_roles_scatter, "Language donors and recipients",
               "Each point is a language: x = its donor score (mean MT-CL Δ it gives other languages), y = its "
               "recipient score (mean MT-CL Δ it receives). Bars are ± 1 standard error across models (absent "
               "with a single model). Points below the dotted diagonal give more than they receive.", "roles"),
    FigureSpec("task_roles", ("task_roles",), task_roles_scatter, "Task donors and recipients",
               "As for languages, from cross-task transfer within a language (CT-ML): x = mean Δ a task gives "
               "other tasks, y = mean Δ it receives.", "roles"),
    FigureSpec("family_roles", ("family_roles",), family_roles_scatter, "Donors and recipients per model family",
               "Language donor and recipient scores (MT-CL) computed within each model family, on shared axes; "
               "a language that moves between panels is a donor or recipient for some families only.", "roles"),
    FigureSpec("on_off_task", ("on_off_task",), on_off_task_scatter, "On-task vs off-task transfer",
               "Each point is one adapter (model × source cell): x = mean Δ on the same task in other languages "
               "(MT-CL), y = mean Δ on other tasks (CT-ML ∪ CT-CL). Points in the lower-right quadrant help the "
               "trained task but hurt the others.", "on_off"),
    FigureSpec("pareto_family_summary", ("pareto_family_summary", "on_off_task"), pareto_family_panels,
               "On-task vs off-task transfer per model family",
               "One panel per family. Large markers: per model and source task, the mean MT-CL Δ (x) against "
               "the mean off-task Δ (y), marker area growing with parameters; faint markers: the per-language "
               "adapters behind them (≥ 3 MT-CL and ≥ 5 off-task cells, as the reference).", "on_off"),
    FigureSpec("variance_shares", ("variance_decomposition",), variance_shares, "Where the variance of Δ comes from",
               "Share of the variance of Δ attributed to the model, the source cell, the target cell and the "
               "residual, by a linear mixed model with random intercepts. 'crossed' is Δ ~ 1 + (1|model) + "
               "(1|source) + (1|target); 'nested' (hatched) is the reference's statsmodels form, which nests "
               "source and target inside model.", "variance"),
    FigureSpec("consistency", ("consistency",), consistency_distributions, "Consistency across models",
               "For each source cell, the consistency index is the mean Kendall τ-b between every pair of models' "
               "rankings of its recipients: 1 = all models agree which targets gain most, 0 = no agreement. "
               "Boxes show quartiles over source cells; points are individual sources. Variants rank models "
               "individually, averaged within a family, or averaged within a size bucket.", "consistency"),
    FigureSpec("distance_scatter", ("ling_pairs", "ling_correlation"), distance_scatter,
               "Transfer vs linguistic distance",
               "Each point is an ordered language pair: the mean MT-CL Δ from source to target over models and "
               "tasks, against the distance between the two languages. Pairs share languages and are not "
               "independent, so the permutation p-value (Mantel/QAP test over language labels) is the one to "
               "trust.", "distance"),
)

FIGURES_BY_NAME = {spec.name: spec for spec in FIGURES}


def _usable(table) -> bool:
    """Has at least one number to draw (labels alone, e.g. an all-NaN matrix, do not count)."""
    if not isinstance(table, pd.DataFrame) or table.empty:
        return False
    return bool(table.select_dtypes("number").notna().to_numpy().any())


def save_figure(fig, figures_dir: str | Path, name: str) -> list[Path]:
    """PNG (150 dpi) and SVG of one figure; closes it."""
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with _rc() as plt:
        for ext in ("png", "svg"):
            path = folder / f"{name}.{ext}"
            fig.savefig(path, dpi=style.DPI, bbox_inches="tight", facecolor="white")
            paths.append(path)
        plt.close(fig)
    return paths


def write_figures(tables: Mapping[str, pd.DataFrame], figures_dir: str | Path) -> list[Path]:
    """Save every figure whose tables are present and non-empty into figures_dir; returns the paths."""
    paths: list[Path] = []
    for spec in FIGURES:
        needed = [tables.get(key) for key in spec.needs]
        if not all(_usable(t) for t in needed):
            log.debug("figure %s skipped: table %s empty or missing", spec.name, ", ".join(spec.needs))
            continue
        extra = {key: tables[key] for key in spec.optional if _usable(tables.get(key))}
        paths += save_figure(spec.build(*needed, **extra), figures_dir, spec.name)
    return paths
