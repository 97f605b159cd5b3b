"""Study-1 breakdowns of Δ: by regime (means, win and harm rates), by variance component, by
agreement between models (consistency index) and by linguistic distance; each returns a Figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transfergrid.analysis.regimes import scope_order
from transfergrid.report import style


def regime_bars(summary: pd.DataFrame):
    """Left: mean (bar) and median (diamond) Δ per scope; right: win and harm rates per scope."""
    with style.rc() as plt:
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
    with style.rc() as plt:
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
    with style.rc() as plt:
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
    with style.rc() as plt:
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
