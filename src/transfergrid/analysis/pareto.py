"""The on-task vs off-task ("Pareto") summaries of the reference's pareto_plot and appendix.

Profiles: per (model, source task, source language) x = mean MT-CL Δ (on task, other languages) and
y = mean off-task Δ (CT-ML ∪ CT-CL), kept where x rests on >= 3 cells and y on >= 5, as the
reference's `plot_pareto_on_off` (min_n_on=3, min_n_off=5). The family summary averages a model's
profiles over source languages, per source task (the three-panel figure: one panel per family).
The per-source-task summary pools every (model, language): on / off mean Δ, win and harm rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transfergrid.analysis import rates
from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.regimes import MT_CL, OFF_TASK
from transfergrid.analysis.roles import on_off_task

MIN_ON, MIN_OFF = 3, 5
PROFILE_COLUMNS = ["model_name", "family", "size_b", "source_task", "source_lang", "mt_cl_mean", "off_task_mean",
                   "off_task_harm_rate", "n_mt_cl", "n_off_task"]
FAMILY_SUMMARY_COLUMNS = ["model_name", "family", "size_b", "source_task", "mt_cl_mean", "off_task_mean",
                          "n_languages"]
TASK_SUMMARY_COLUMNS = ["source_task", "on_mean", "on_win_rate", "on_harm_rate", "off_mean", "off_win_rate",
                        "off_harm_rate", "n_on", "n_off"]
APPENDIX_COLUMNS = ["model", "dataset", "language", "mt_cl_gain", "mean_off_task"]


def pareto_profiles(frame: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    df = ensure_prepared(frame)
    prof = on_off_task(df, tolerance)
    if prof.empty:
        return pd.DataFrame(columns=PROFILE_COLUMNS)
    sizes = df.drop_duplicates("model_name").set_index("model_name")["size_b"]
    prof = prof.assign(size_b=prof["model_name"].map(sizes))
    prof = prof[(prof["n_mt_cl"] >= MIN_ON) & (prof["n_off_task"] >= MIN_OFF)]
    return prof[PROFILE_COLUMNS].reset_index(drop=True)


def pareto_family_summary(profiles: pd.DataFrame) -> pd.DataFrame:
    """Each model's profiles averaged over source languages, per source task."""
    if profiles.empty:
        return pd.DataFrame(columns=FAMILY_SUMMARY_COLUMNS)
    out = profiles.groupby(["model_name", "family", "size_b", "source_task"], sort=True, dropna=False).agg(
        mt_cl_mean=("mt_cl_mean", "mean"), off_task_mean=("off_task_mean", "mean"),
        n_languages=("source_lang", "nunique")).reset_index()
    return out[FAMILY_SUMMARY_COLUMNS]


def task_on_off_summary(frame: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """Per source task: MT-CL cells (on) and off-task cells (off) pooled over models and languages."""
    df = ensure_prepared(frame)
    rows = []
    for task, group in df.groupby("source_task", sort=True):
        on = group.loc[group["regime"] == MT_CL, "delta"]
        off = group.loc[group["regime"].isin(OFF_TASK), "delta"]
        if on.empty and off.empty:
            continue
        s_on, s_off = rates.summarize(on, tolerance), rates.summarize(off, tolerance)
        rows.append({"source_task": task, "on_mean": s_on["mean"], "on_win_rate": s_on["win_rate"],
                     "on_harm_rate": s_on["harm_rate"], "off_mean": s_off["mean"],
                     "off_win_rate": s_off["win_rate"], "off_harm_rate": s_off["harm_rate"],
                     "n_on": s_on["n"], "n_off": s_off["n"]})
    return pd.DataFrame(rows, columns=TASK_SUMMARY_COLUMNS)


def pareto_appendix(profiles: pd.DataFrame) -> pd.DataFrame:
    """The appendix table: model, dataset, language, MT-CL gain, mean off-task Δ (one row per profile)."""
    out = profiles.rename(columns={"model_name": "model", "source_task": "dataset", "source_lang": "language",
                                   "mt_cl_mean": "mt_cl_gain", "off_task_mean": "mean_off_task"})
    return out.reindex(columns=APPENDIX_COLUMNS).reset_index(drop=True)


def _tex(text) -> str:
    return str(text).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")


def appendix_latex_rows(appendix: pd.DataFrame) -> str:
    """`model & dataset & language & gain & off \\\\` per row, 2 decimals, as the paper's appendix."""
    lines = [f"{_tex(r.model)} & {_tex(r.dataset)} & {_tex(r.language)} & {r.mt_cl_gain:.2f} & "
             f"{r.mean_off_task:.2f} \\\\" for r in appendix.itertuples(index=False)
             if np.isfinite(r.mt_cl_gain) and np.isfinite(r.mean_off_task)]
    return "\n".join(lines) + ("\n" if lines else "")
