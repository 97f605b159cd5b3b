"""Donors and recipients (MISSION.md), and the on-task vs off-task profile of each source.

Language donor score of l: mean Δ over MT-CL cells whose source language is l, averaged per model,
then across models; SE = standard deviation across models / √(models) (absent with one model).
Recipient score: the same keyed by target language. Task roles: CT-ML cells keyed by source /
target task. Family roles: the same within each family's models.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.stats

from transfergrid.analysis.frame import ensure_prepared
from transfergrid.analysis.rates import is_harm
from transfergrid.analysis.regimes import CT_ML, MT_CL, OFF_TASK

log = logging.getLogger(__name__)

ROLE_COLUMNS = ["donor", "donor_se", "recipient", "recipient_se", "n_models"]
LANGUAGE_ROLE_COLUMNS = ["language", *ROLE_COLUMNS]
TASK_ROLE_COLUMNS = ["task", *ROLE_COLUMNS]
FAMILY_ROLE_COLUMNS = ["family", "unit", "name", *ROLE_COLUMNS]
CURATED_COLUMNS = ["rho", "p", "n"]
LANGUAGE_FAMILY_COLUMNS = ["language_family", "donor", "recipient", "n_languages"]
# The reference's grouping of the release's languages (its LANG_TO_FAMILY).
LANGUAGE_FAMILY = {"fr": "Romance", "es": "Romance", "pt": "Romance", "it": "Romance", "de": "Germanic",
                   "en": "Germanic", "hi": "Indic", "bn": "Indic", "zh": "Chinese", "ar": "Arabic",
                   "id": "Indonesian"}
ON_OFF_COLUMNS = ["model_name", "family", "source_task", "source_lang", "mt_cl_mean", "off_task_mean",
                  "off_task_harm_rate", "n_mt_cl", "n_off_task"]


def model_mean_score(cells: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per value of `key`: mean over models of each model's mean Δ, its SE across models, n_models."""
    per_model = cells.groupby([key, "model_name"], sort=True)["delta"].mean()
    g = per_model.groupby(level=0, sort=True)
    n = g.count()
    se = g.std(ddof=1) / np.sqrt(n)
    return pd.DataFrame({"score": g.mean(), "se": se.where(n > 1), "n_models": n})


def _roles(cells: pd.DataFrame, source_key: str, target_key: str, name: str) -> pd.DataFrame:
    donor = model_mean_score(cells, source_key)
    recipient = model_mean_score(cells, target_key)
    out = pd.DataFrame({"donor": donor["score"], "donor_se": donor["se"],
                        "recipient": recipient["score"], "recipient_se": recipient["se"]})
    out["n_models"] = pd.concat([donor["n_models"], recipient["n_models"]], axis=1).max(axis=1).astype(int)
    return out.rename_axis(name).reset_index()


def language_roles(frame: pd.DataFrame) -> pd.DataFrame:
    df = ensure_prepared(frame)
    cells = df.loc[df["regime"] == MT_CL]
    if cells.empty:
        return pd.DataFrame(columns=LANGUAGE_ROLE_COLUMNS)
    return _roles(cells, "source_lang", "target_lang", "language")[LANGUAGE_ROLE_COLUMNS]


def language_roles_on(frame: pd.DataFrame, construction: str) -> pd.DataFrame:
    """Language roles from MT-CL cells whose target set is `construction` (curated | translated)."""
    df = ensure_prepared(frame)
    return language_roles(df.loc[df["construction"] == construction])


def language_family_roles(frame: pd.DataFrame) -> pd.DataFrame:
    """Per language family: the mean of its languages' donor and recipient scores (languages
    outside the reference's grouping are left out)."""
    roles = language_roles(frame)
    roles = roles.assign(language_family=roles["language"].str.lower().str.split("[-_]").str[0].map(LANGUAGE_FAMILY))
    if roles.empty or roles["language_family"].isna().all():
        return pd.DataFrame(columns=LANGUAGE_FAMILY_COLUMNS)
    out = roles.dropna(subset=["language_family"]).groupby("language_family", sort=True).agg(
        donor=("donor", "mean"), recipient=("recipient", "mean"), n_languages=("language", "count"))
    return out.reset_index()[LANGUAGE_FAMILY_COLUMNS]


def task_roles(frame: pd.DataFrame) -> pd.DataFrame:
    df = ensure_prepared(frame)
    cells = df.loc[df["regime"] == CT_ML]
    if cells.empty:
        return pd.DataFrame(columns=TASK_ROLE_COLUMNS)
    return _roles(cells, "source_task", "target_task", "task")[TASK_ROLE_COLUMNS]


def family_roles(frame: pd.DataFrame) -> pd.DataFrame:
    """Language (MT-CL) and task (CT-ML) roles within each family: unit = language | task."""
    df = ensure_prepared(frame)
    parts = []
    for family, group in df.groupby("family", sort=True):
        for unit, table in (("language", language_roles(group)), ("task", task_roles(group))):
            if not table.empty:
                parts.append(table.rename(columns={unit: "name"}).assign(family=family, unit=unit))
    if not parts:
        return pd.DataFrame(columns=FAMILY_ROLE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[FAMILY_ROLE_COLUMNS]


def curated_vs_translated(frame: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation of language donor scores computed on curated vs on translated target
    sets (MT-CL cells; a robustness check that donor rankings are not a translation artefact)."""
    df = ensure_prepared(frame)
    cells = df.loc[df["regime"] == MT_CL]
    scores = {c: model_mean_score(cells.loc[cells["construction"] == c], "source_lang")["score"]
              for c in ("curated", "translated")}
    both = pd.concat(scores, axis=1).dropna()
    if len(both) < 3:
        log.info("curated_vs_translated: %d language(s) with donor scores on both construction types "
                 "(need 3): skipped", len(both))
        return pd.DataFrame(columns=CURATED_COLUMNS)
    res = scipy.stats.spearmanr(both["curated"], both["translated"])
    return pd.DataFrame([{"rho": float(res.statistic), "p": float(res.pvalue), "n": len(both)}],
                        columns=CURATED_COLUMNS)


def on_off_task(frame: pd.DataFrame, tolerance: float = 0.0) -> pd.DataFrame:
    """Per (model, source task, source language): mean MT-CL Δ (on task, other languages), mean
    off-task Δ (CT-ML ∪ CT-CL) and the off-task harm rate (%)."""
    df = ensure_prepared(frame)
    keys = ["model_name", "family", "source_task", "source_lang"]
    work = df.loc[df["regime"].isin((MT_CL, *OFF_TASK)), [*keys, "regime", "delta"]].copy()
    if work.empty:
        return pd.DataFrame(columns=ON_OFF_COLUMNS)
    work["on"] = np.where(work["regime"] == MT_CL, work["delta"], np.nan)
    work["off"] = np.where(work["regime"].isin(OFF_TASK), work["delta"], np.nan)
    work["off_harm"] = np.where(work["regime"].isin(OFF_TASK), 100.0 * is_harm(work["delta"], tolerance), np.nan)
    out = work.groupby(keys, sort=True).agg(
        mt_cl_mean=("on", "mean"), off_task_mean=("off", "mean"), off_task_harm_rate=("off_harm", "mean"),
        n_mt_cl=("on", "count"), n_off_task=("off", "count")).reset_index()
    return out[ON_OFF_COLUMNS]
