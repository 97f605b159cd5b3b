"""The top of the HTML report: headline cards per regime (mean Δ, win and harm rates with their
intervals), the significance line, the paper's findings as these tables give them, the study's
configuration and its counts of models, tasks and languages."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

import numpy as np
import pandas as pd

from transfergrid.analysis.regimes import scope_order


def study_counts(study, tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Models, tasks and languages: from the study when given, else read off the tables."""
    counts: dict[str, int] = {}
    if study is not None and hasattr(study, "models") and hasattr(study, "tasks"):
        return {"models": len(study.models), "tasks": len(study.tasks), "languages": len(study.languages)}
    if isinstance(study, Mapping):
        for key in ("models", "tasks", "languages"):
            value = study.get(key)
            if isinstance(value, (int, np.integer)):
                counts[key] = int(value)
            elif isinstance(value, (list, tuple)):
                counts[key] = len(value)
    for key, table, column in (("models", "on_off_task", "model"), ("tasks", "task_roles", "task"),
                               ("languages", "language_roles", "language")):
        t = tables.get(table)
        if key not in counts and isinstance(t, pd.DataFrame) and column in t:
            counts[key] = int(t[column].nunique())
    return counts


def _flat(value) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, (list, tuple)):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def configuration(study) -> list[tuple[str, str]]:
    if study is None:
        return []
    if hasattr(study, "model_dump"):
        data = study.model_dump(mode="json")
        data["models"] = [f"{m.get('id')} ({m.get('source')})" if isinstance(m, Mapping) else m
                          for m in data.get("models", [])]
        if hasattr(study, "content_hash"):
            data["content hash"] = study.content_hash()
    else:
        data = dict(study)
    return [(str(k), _flat(v)) for k, v in data.items() if v not in (None, "", [], {})]


def _interval(intervals: pd.DataFrame | None, scope: str, rate: str) -> str:
    """' [low, high]' of a rate from the uplift_intervals table, or ''."""
    if intervals is None or intervals.empty or f"{rate}_ci_low" not in intervals:
        return ""
    row = intervals.loc[intervals["scope"].astype(str) == scope]
    if row.empty or pd.isna(row.iloc[0][f"{rate}_ci_low"]):
        return ""
    return f" [{float(row.iloc[0][f'{rate}_ci_low']):.1f}, {float(row.iloc[0][f'{rate}_ci_high']):.1f}]"


def significance_note(tables: Mapping[str, pd.DataFrame]) -> str:
    """The line 'k of n transfer cells changed significantly (FDR 5 %), of which h harmful', or why
    there is none."""
    from transfergrid.analysis.intervals import ITEMS_UNAVAILABLE, significance_line

    line = significance_line(tables.get("significance_summary"))
    if line:
        return f'<p class="significance"><b>{escape(line)}.</b></p>'
    return f'<p class="note">{escape(ITEMS_UNAVAILABLE[0].upper() + ITEMS_UNAVAILABLE[1:])}.</p>'


def headline_cards(summary: pd.DataFrame | None, intervals: pd.DataFrame | None = None) -> str:
    if summary is None or summary.empty or "scope" not in summary:
        return ""
    table = summary.assign(scope=summary["scope"].astype(str)).set_index("scope")
    order = scope_order(table.index)
    cards = []
    for scope in order:
        row = table.loc[scope]
        mean = row.get("mean", np.nan)
        value = "—" if pd.isna(mean) else f"{float(mean):+.2f} pp"
        parts = []
        if "median" in row and pd.notna(row["median"]):
            parts.append(f"median {float(row['median']):+.2f}")
        if "n" in row and pd.notna(row["n"]):
            parts.append(f"{int(row['n']):,} cells")
        win = "" if pd.isna(row.get("win_rate", np.nan)) else (
            f'<span class="win">win {float(row["win_rate"]):.1f}%{_interval(intervals, scope, "win")}</span>')
        harm = "" if pd.isna(row.get("harm_rate", np.nan)) else (
            f'<span class="harm">harm {float(row["harm_rate"]):.1f}%{_interval(intervals, scope, "harm")}</span>')
        cards.append(f'<div class="card"><div class="scope">{escape(scope)}{" (all transfer cells)" if scope == "transfer" else ""}</div>'
                     f'<div class="value">{escape(value)}</div><div class="rates">{win} · {harm}</div>'
                     f'<div class="note">{escape(" · ".join(parts))}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _pick(tables, name: str, query: dict, column: str):
    t = tables.get(name)
    if not isinstance(t, pd.DataFrame) or t.empty or column not in t:
        return None
    mask = np.ones(len(t), dtype=bool)
    for k, v in query.items():
        if k not in t:
            return None
        mask &= (t[k] == v).to_numpy()
    values = t.loc[mask, column]
    return float(values.iloc[0]) if len(values) and pd.notna(values.iloc[0]) else None


def findings(tables: Mapping[str, pd.DataFrame]) -> str:
    """The paper's headline findings as they come out of these tables (absent pieces are left out)."""
    items = []
    target = _pick(tables, "variance_decomposition", {"subset": "all", "scope": "MT-CL", "spec": "nested",
                                                      "component": "target"}, "share")
    resid = _pick(tables, "variance_decomposition", {"subset": "all", "scope": "MT-CL", "spec": "nested",
                                                     "component": "residual"}, "share")
    if target is not None and resid is not None:
        items.append(f"Target language explains {target:.1f} % of the variance in MT-CL (residual {resid:.1f} %; "
                     "the reference's nested model).")
    rho = _pick(tables, "ling_correlation", {"distance": "syntax_knn"}, "spearman_rho")
    p = _pick(tables, "ling_correlation", {"distance": "syntax_knn"}, "spearman_p")
    if rho is not None and p is not None:
        items.append(f"Syntactic distance vs MT-CL Δ: Spearman ρ = {rho:.3f} (p {'< 0.001' if p < 1e-3 else f'= {p:.3g}'}).")
    medians = tables.get("consistency_summary")
    if isinstance(medians, pd.DataFrame) and not medians.empty:
        m = medians[medians["variant"] == "model"]
        if not m.empty:
            items.append("Consistency Index medians (by model): " + ", ".join(
                f"{r.regime} {r.median:.2f}" for r in m.itertuples()) + ".")
    roles = tables.get("task_roles")
    if isinstance(roles, pd.DataFrame) and not roles.empty and roles["donor"].notna().any():
        items.append(f"Strongest task donor (CT-ML): {roles.loc[roles['donor'].idxmax(), 'task']}; largest "
                     f"recipient: {roles.loc[roles['recipient'].idxmax(), 'task']}.")
    return f'<ul class="findings">{"".join(f"<li>{escape(i)}</li>" for i in items)}</ul>' if items else ""
