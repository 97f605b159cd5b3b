"""Study-1 heatmaps: the full source → target grid (task blocks, significance dots) and the
language × language (MT-CL) and task × task (CT-ML) matrices; each returns a Figure (no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.report import style


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
    with style.rc() as plt:
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
