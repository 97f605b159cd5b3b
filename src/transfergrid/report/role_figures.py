"""Study-1 role figures: donors vs recipients (languages, tasks, per family) and the on-task vs
off-task profiles (per adapter, and the paper's per-family Pareto panels); each returns a Figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transfergrid.report import style


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
    with style.rc() as plt:
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
    with style.rc() as plt:
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
    with style.rc() as plt:
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
    with style.rc() as plt:
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
