"""Risk-aware choice of a source cell to fine-tune on, given the target cells a user cares about.

For each source cell s:
  gain            mean over models of each model's mean Δ on the target cells (pp); gain_se its SE
                  across models (absent with one model); gain_lower = gain - gain_se
  worst_case      the lowest per-model gain: what the least lucky model got
  off_target_*    over every other cell (not a target, not s itself) and every model: mean Δ and
                  harm rate (% of cells with Δ <= -1 pp)
Sources whose off-target harm rate exceeds `max_harm` (in %) are dropped. Ranking is risk-aware:
by gain_lower (the gain one SE down; the gain itself with one model), then by lower off-target harm.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import ensure_prepared, task_key
from transfergrid.analysis.rates import is_harm
from transfergrid.errors import UserError
from transfergrid.records import Cell

RECOMMEND_COLUMNS = ["rank", "source", "gain", "gain_se", "gain_lower", "worst_case", "off_target_mean",
                     "off_target_harm_rate", "n_models", "n_off_target"]


def _resolve_targets(df: pd.DataFrame, targets: Iterable[Cell | str]) -> list[str]:
    """Target cells as the frame spells them ("arc:hi" finds "arc_challenge:hi")."""
    by_key = {(task_key(t), lang.lower()): f"{t}:{lang}"
              for t, lang in df[["target_task", "target_lang"]].drop_duplicates().to_numpy()}
    out = []
    for target in targets:
        cell = target if isinstance(target, Cell) else Cell.parse(str(target))
        found = by_key.get((task_key(cell.task), cell.lang.lower()))
        if found is None:
            known = ", ".join(sorted(by_key.values())[:12])
            raise UserError(f"target {cell} is not a target cell of these results (known: {known}, ...)")
        out.append(found)
    if not out:
        raise UserError("no target cells given: expected TASK:LANG cells, e.g. arc_challenge:hi")
    return list(dict.fromkeys(out))


def recommend(frame: pd.DataFrame, targets: Iterable[Cell | str], max_harm: float | None = None) -> pd.DataFrame:
    if max_harm is not None and not 0 <= max_harm <= 100:
        raise UserError(f"max_harm is a harm rate in %: expected 0-100, got {max_harm}")
    df = ensure_prepared(frame)
    wanted = _resolve_targets(df, targets)
    on = df["target"].isin(wanted)
    gains = df.loc[on].groupby(["source", "model_name"])["delta"].mean().groupby(level=0)
    n = gains.count()
    table = pd.DataFrame({"gain": gains.mean(), "gain_se": (gains.std(ddof=1) / np.sqrt(n)).where(n > 1),
                          "worst_case": gains.min(), "n_models": n})
    off = df.loc[~on & (df["target"] != df["source"])]
    harm = pd.Series(100.0 * is_harm(off["delta"]), index=off.index)
    off_stats = pd.DataFrame({"off_target_mean": off.groupby("source")["delta"].mean(),
                              "off_target_harm_rate": harm.groupby(off["source"]).mean(),
                              "n_off_target": off.groupby("source")["delta"].count()})
    table = table.join(off_stats, how="left")
    table["n_off_target"] = table["n_off_target"].fillna(0).astype(int)
    table["gain_lower"] = table["gain"] - table["gain_se"].fillna(0.0)
    if max_harm is not None:
        table = table.loc[~(table["off_target_harm_rate"] > max_harm)]
    table = table.rename_axis("source").reset_index()
    table = table.sort_values(["gain_lower", "off_target_harm_rate", "source"], ascending=[False, True, True],
                              na_position="last", kind="mergesort").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table[RECOMMEND_COLUMNS]
