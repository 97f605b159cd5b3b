"""Heatmap matrices of mean Δ (each row already a mean over seeds; here the mean over models).

Each is a DataFrame whose first column names the row key ("source", "source_lang", "source_task")
and whose other columns are the targets, so it writes to CSV as it is; use `.set_index(first)` for
a matrix. Rows and columns follow sorted order (tasks, then languages).
"""

from __future__ import annotations

import pandas as pd

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import CT_ML, MT_CL


def _matrix(cells: pd.DataFrame, row: str, col: str, order: list[str]) -> pd.DataFrame:
    mean = cells.groupby([row, col], sort=False)["delta"].mean().unstack(col)
    mean = mean.reindex(index=order, columns=order)
    mean.columns = pd.Index(list(mean.columns), name=None)
    return mean.rename_axis(row).reset_index()


def _cell_order(df: pd.DataFrame) -> list[str]:
    pairs = pd.concat([df[["source_task", "source_lang"]].set_axis(["t", "l"], axis=1),
                       df[["target_task", "target_lang"]].set_axis(["t", "l"], axis=1)]).drop_duplicates()
    return [f"{t}:{lang}" for t, lang in sorted(map(tuple, pairs.to_numpy()))]


def grid_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Every source cell (rows) × target cell (columns), all regimes including MT-ML."""
    df = ensure_prepared(frame)
    return _matrix(df, "source", "target", _cell_order(df))


def language_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Source language × target language over MT-CL cells (diagonal empty: that is MT-ML)."""
    df = ensure_prepared(frame)
    langs = sorted(set(df["source_lang"]) | set(df["target_lang"]))
    return _matrix(df.loc[df["regime"] == MT_CL], "source_lang", "target_lang", langs)


def task_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Source task × target task over CT-ML cells (diagonal empty)."""
    df = ensure_prepared(frame)
    tasks = sorted(set(df["source_task"]) | set(df["target_task"]))
    return _matrix(df.loc[df["regime"] == CT_ML], "source_task", "target_task", tasks)
