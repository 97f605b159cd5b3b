"""How composition changes the roles: each source set against its member single-cell sources.

A source set (transfergrid.composition: `fine_tuned_dataset` / `fine_tuned_language` joined with
"+") is compared with its members, each trained alone, on the same model and target cells:

- `composition_cells`: one row per (model, set, target) whose every member has its own row there:
  the set's Δ, its members' mean, best and worst Δ, and the gains over the mean and the best member.
  `member` says whether the target is one of the set's cells (the set's "source cell itself").
- `composition_roles`: per set and scope (its member cells; each regime of the other targets,
  defined against the set; "transfer" = MT-CL ∪ CT-ML ∪ CT-CL): the set's donor score (mean Δ per
  model, then across models, as `roles`) beside its members' mean and best member's score on the
  same cells, and win / harm rates of the set and of its members.

Both are empty for a grid without sets, or without the sets' members as single sources.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.rates import is_harm, is_win
from transfergrid.analysis.regimes import TRANSFER

CELL_COLUMNS = ["model_name", "source", "target", "regime", "member", "n_members", "delta_set", "members_mean",
                "members_best", "members_worst", "gain_vs_mean", "gain_vs_best"]
ROLE_COLUMNS = ["source", "n_members", "scope", "n_cells", "n_models", "set_donor", "members_donor",
                "best_member_donor", "gain_vs_mean", "gain_vs_best", "set_win_rate", "members_win_rate",
                "set_harm_rate", "members_harm_rate", "beats_best_rate"]
TABLES = ("composition_cells", "composition_roles")


def _member_labels(task: str, lang: str) -> list[str]:
    from transfergrid.composition import members

    return [str(c) for c in members(task, lang)]


def _is_set(df: pd.DataFrame) -> pd.Series:
    """Rows whose source is a set of cells (its label joins members with composition.SEP)."""
    from transfergrid.composition import SEP

    return df["source_task"].astype(str).str.contains(SEP, regex=False) | \
        df["source_lang"].astype(str).str.contains(SEP, regex=False)


def has_sets(frame: pd.DataFrame) -> bool:
    """Whether any source of the frame is a set of cells."""
    return bool(_is_set(ensure_prepared(frame)).any())


def composition_cells(frame: pd.DataFrame) -> pd.DataFrame:
    return _compare(frame)[0]


def _compare(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(composition_cells, the same rows' Δ of each member: one column per member label)."""
    df = ensure_prepared(frame)
    is_set = _is_set(df)
    single = df.loc[~is_set]
    delta = dict(zip(zip(single["model_name"], single["source"], single["target"]), single["delta"].astype(float)))
    rows, member_rows = [], []
    for r in df.loc[is_set].itertuples(index=False):
        names = _member_labels(r.source_task, r.source_lang)
        found = [delta.get((r.model_name, m, r.target)) for m in names]
        if any(v is None for v in found):
            continue  # a member without its own row here: nothing to compare with
        d = np.asarray(found, dtype=float)
        rows.append({"model_name": r.model_name, "source": r.source, "target": r.target, "regime": r.regime,
                     "member": r.target in names, "n_members": len(names), "delta_set": float(r.delta),
                     "members_mean": d.mean(), "members_best": d.max(), "members_worst": d.min(),
                     "gain_vs_mean": float(r.delta) - d.mean(), "gain_vs_best": float(r.delta) - d.max()})
        member_rows.append(dict(zip(names, found)))
    return pd.DataFrame(rows, columns=CELL_COLUMNS), pd.DataFrame(member_rows, index=range(len(member_rows)))


def composition_roles(frame: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    cells, per_member = _compare(frame)
    if cells.empty:
        return pd.DataFrame(columns=ROLE_COLUMNS)
    scope = pd.Series(np.where(cells["member"], "member", cells["regime"]), index=cells.index)
    transfer = ~cells["member"] & cells["regime"].isin(TRANSFER)
    rows = []
    for source, group in cells.groupby("source", sort=True):
        members = per_member.loc[group.index].dropna(axis=1, how="all")  # this set's member columns
        g_scope = scope.loc[group.index]
        parts = [(name, g_scope.index[g_scope == name]) for name in
                 ["member", *sorted(set(g_scope) - {"member"})] if (g_scope == name).any()]
        if transfer.loc[group.index].any():
            parts.append(("transfer", group.index[transfer.loc[group.index]]))
        for name, idx in parts:
            sub, mem = cells.loc[idx], members.loc[idx]
            model = sub["model_name"]
            set_donor = _model_mean(sub["delta_set"], model)
            member_donors = [_model_mean(mem[c], model) for c in mem.columns]
            values = mem.to_numpy(dtype=float).ravel()
            rows.append({
                "source": source, "n_members": int(sub["n_members"].iloc[0]), "scope": name, "n_cells": len(sub),
                "n_models": int(model.nunique()), "set_donor": set_donor,
                "members_donor": float(np.mean(member_donors)), "best_member_donor": float(np.max(member_donors)),
                "gain_vs_mean": set_donor - float(np.mean(member_donors)),
                "gain_vs_best": set_donor - float(np.max(member_donors)),
                "set_win_rate": 100 * is_win(sub["delta_set"], tolerance).mean(),
                "members_win_rate": 100 * is_win(values, tolerance).mean(),
                "set_harm_rate": 100 * is_harm(sub["delta_set"], tolerance).mean(),
                "members_harm_rate": 100 * is_harm(values, tolerance).mean(),
                "beats_best_rate": 100 * float((sub["gain_vs_best"] > 0).mean()),
            })
    return pd.DataFrame(rows, columns=ROLE_COLUMNS)


def _model_mean(values: pd.Series, model: pd.Series) -> float:
    """Mean per model, then across models (the donor score's averaging, `roles.model_mean_score`)."""
    return float(values.astype(float).groupby(model.to_numpy()).mean().mean())
