"""Study 2: linguistic relatedness vs task alignment (arXiv 2606.19346). Pure functions.

Input: one per-item frame, one row per scored test item, with the columns of `ITEM_COLUMNS`:

    model, language, group, item, variant, seed, correct

`variant` is "base" (the base model, numbered prompt), "ft" (the model fine-tuned on the pooled
source languages; one row per item and training seed) or "cot" (the base model after its own
chain-of-thought, `transfergrid.cot`). `seed` matters only for "ft" rows. Accuracies are in %,
gains in percentage points (pp). The paired test and interval of each gain are in
`analysis.paired_table`; the regression and CoT correlation over the gains table in
`analysis.relatedness_fits`.

Definitions
-----------
* baseline_acc, cot_acc: % correct of the base model without / with chain of thought.
* ft_acc: % correct after fine-tuning, averaged over seeds; gain = ft_acc - baseline_acc
  (= the mean over seeds of each seed's gain, as in study 1).
* cot_gain = cot_acc - baseline_acc.
* Paired test and interval: on the 2 x 2 table of (base, ft) outcomes per item. With several seeds
  an item's ft outcome is its strict majority over seeds, and a tie keeps the base outcome (a change
  counts only when most seeds agree on it); with one seed this is the plain table. The interval is
  for that outcome's difference, so it is centred on `gain` exactly when there is one seed.
* McNemar: b = items right before and wrong after (`n_harmed`), c = wrong before and right after
  (`n_improved`). b + c < 25: exact two-sided binomial test on the discordant pairs,
  p = min(1, 2 P[X <= min(b, c)]), X ~ Bin(b + c, 1/2); otherwise the chi-square statistic with
  continuity correction (|b - c| - 1)^2 / (b + c), 1 degree of freedom. Same rule and numbers as
  `statsmodels.stats.contingency_tables.mcnemar(exact=..., correction=True)`; the method used is
  in the `mcnemar_method` column.
* Interval for the paired difference in proportions: Newcombe's hybrid score interval for paired
  data, method 10 of R. G. Newcombe, "Improved confidence intervals for the difference between
  binomial proportions based on paired data", Statistics in Medicine 17 (1998) 2635-2650: Wilson
  score limits of both margins, combined with the phi correlation of the table (phi's numerator
  AD - BC shrunk by N/2 towards 0 when positive, as in the paper).
* Group summary: per model (and over all models) and group, the mean gain over the group's
  languages with a percentile bootstrap interval over items; items are resampled with one set of
  ids shared by every language and model (the test ids are parallel), so the related-minus-control
  difference keeps its pairing.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from transfergrid.analysis.paired_table import mcnemar, newcombe_paired_interval
from transfergrid.errors import UserError

log = logging.getLogger(__name__)

ITEM_COLUMNS = ("model", "language", "group", "item", "variant", "seed", "correct")
VARIANTS = ("base", "ft", "cot")
N_BOOT = 2000
BOOT_SEED = 0
CONTROL = "control"  # the group label of "not related" in the summaries

GAIN_COLUMNS = ["model", "language", "group", "n_items", "n_seeds", "baseline_acc", "ft_acc", "gain",
                "n_improved", "n_harmed", "mcnemar_method", "mcnemar_stat", "mcnemar_p",
                "gain_ci_low", "gain_ci_high", "cot_acc", "cot_gain"]


# --- the per-item frame -----------------------------------------------------------------------


def check_item_frame(frame: pd.DataFrame, where: str = "per-item frame") -> pd.DataFrame:
    """The frame with the expected columns and types; a UserError naming what is wrong."""
    missing = [c for c in ITEM_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(ITEM_COLUMNS)}")
    bad = sorted(set(frame["variant"]) - set(VARIANTS))
    if bad:
        raise UserError(f"{where}: column 'variant' has {bad}; expected one of {', '.join(VARIANTS)}")
    if not (frame["variant"] == "base").any():
        raise UserError(f"{where}: no 'base' rows; every gain needs the base model's outcomes")
    out = frame.copy()
    out["item"] = out["item"].astype(str)
    out["correct"] = out["correct"].astype(float)
    keys = ["model", "language", "item", "variant", "seed"]
    dup = out.assign(seed=out["seed"].where(out["variant"] == "ft", -1)).duplicated(keys)
    if dup.any():
        row = out[dup].iloc[0]
        raise UserError(f"{where}: item {row['item']} of {row['model']}/{row['language']} "
                        f"({row['variant']}) appears twice")
    return out


def item_rows(scores, *, model: str, variant: str, seed: int | None = None,
              group: str | None = None) -> pd.DataFrame:
    """Per-item frame rows from records.ItemScore / cot.CotItemScore records (or their dicts) of
    one model and variant; `language` is each score's `lang`, `group` None until `with_groups`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {VARIANTS}")
    rows = []
    for s in scores:
        d = s if isinstance(s, Mapping) else s.to_dict()
        rows.append({"model": model, "language": d["lang"], "group": group, "item": str(d["id"]),
                     "variant": variant, "seed": seed if variant == "ft" else None,
                     "correct": bool(d["correct"])})
    return pd.DataFrame(rows, columns=list(ITEM_COLUMNS))


def item_outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, language, group, item): base, ft (mean over seeds), ft_major, cot, n_seeds.

    Only items the base model was scored on count; ft / cot are NaN where missing.
    """
    frame = check_item_frame(frame)
    keys = ["model", "language", "group", "item"]
    base = frame[frame["variant"] == "base"].groupby(keys, sort=False)["correct"].mean().rename("base")
    ft_rows = frame[frame["variant"] == "ft"]
    ft = ft_rows.groupby(keys, sort=False)["correct"].agg(["mean", "count"]).rename(
        columns={"mean": "ft", "count": "n_seeds"})
    cot = frame[frame["variant"] == "cot"].groupby(keys, sort=False)["correct"].mean().rename("cot")
    out = pd.concat([base, ft, cot], axis=1).reset_index()
    out = out[out["base"].notna()].copy()
    # strict majority over seeds; a tie keeps the base outcome
    out["ft_major"] = np.where(out["ft"] > 0.5, 1.0, np.where(out["ft"] < 0.5, 0.0, out["base"]))
    out.loc[out["ft"].isna(), "ft_major"] = np.nan
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    return out


# --- tables -----------------------------------------------------------------------------------


def gains_table(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """relatedness_gains.csv: per model and target language (see the module docstring)."""
    items = item_outcomes(frame)
    rows = []
    for (model, language, group), g in items.groupby(["model", "language", "group"], sort=False):
        n = len(g)
        row = {"model": model, "language": language, "group": group, "n_items": n,
               "baseline_acc": 100 * g["base"].mean()}
        ft = g.dropna(subset=["ft"])
        if len(ft) < n:
            log.warning("%s/%s: %d of %d base items have no fine-tuned outcome", model, language, n - len(ft), n)
        if len(ft):
            seeds = frame[(frame["variant"] == "ft") & (frame["model"] == model) & (frame["language"] == language)]
            row["n_seeds"] = int(seeds["seed"].nunique())
            row["ft_acc"] = 100 * ft["ft"].mean()
            row["gain"] = 100 * (ft["ft"] - ft["base"]).mean()
            before, after = ft["base"].to_numpy() > 0.5, ft["ft_major"].to_numpy() > 0.5
            both, only_after = int((before & after).sum()), int((~before & after).sum())
            only_before, neither = int((before & ~after).sum()), int((~before & ~after).sum())
            method, stat, p = mcnemar(only_before, only_after)
            lo, hi = newcombe_paired_interval(both, only_after, only_before, neither, level)
            row.update(n_improved=only_after, n_harmed=only_before, mcnemar_method=method,
                       mcnemar_stat=stat, mcnemar_p=p, gain_ci_low=100 * lo, gain_ci_high=100 * hi)
        else:
            row["n_seeds"] = 0
        cot = g.dropna(subset=["cot"])
        if len(cot):
            row["cot_acc"] = 100 * cot["cot"].mean()
            row["cot_gain"] = 100 * (cot["cot"] - cot["base"]).mean()
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=GAIN_COLUMNS)


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _boot_means(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per resample, the mean over items of each row of `matrix` (rows x items; NaN = missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no item of a row: NaN
        return np.nanmean(matrix[:, idx], axis=2)  # rows x resamples


def group_summary(frame: pd.DataFrame, related_group: str = "related", *, n_boot: int = N_BOOT,
                  seed: int = BOOT_SEED, level: float = 0.95) -> pd.DataFrame:
    """relatedness_group_summary.csv: mean gain per (model, metric, group) with bootstrap intervals.

    `metric` is "ft" (fine-tuning gain) or "cot" (chain-of-thought gain). Rows with model "all"
    average over models; rows with group "<related>-minus-<other>" are the difference of the
    related group's mean gain and another group's (each a mean over languages).
    """
    items = item_outcomes(frame)
    ids = sorted(items["item"].unique())
    pos = {i: k for k, i in enumerate(ids)}
    idx = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))
    rows = []
    for metric in ("ft", "cot"):
        sub = items.dropna(subset=[metric])
        if sub.empty:
            continue
        cells = sub[["model", "language", "group"]].drop_duplicates().reset_index(drop=True)
        matrix = np.full((len(cells), len(ids)), np.nan)
        where = {(m, lang): r for r, (m, lang) in enumerate(zip(cells["model"], cells["language"]))}
        r = sub[["model", "language"]].apply(tuple, axis=1).map(where).to_numpy()
        c = sub["item"].map(pos).to_numpy()
        matrix[r, c] = 100 * (sub[metric] - sub["base"]).to_numpy()
        point = np.nanmean(matrix, axis=1)
        boot = _boot_means(matrix, idx)
        models = list(dict.fromkeys(cells["model"]))
        groups = list(dict.fromkeys(cells["group"]))
        scopes = [(m, (cells["model"] == m).to_numpy()) for m in models]
        if len(models) > 1:
            scopes.append(("all", np.ones(len(cells), bool)))
        for model, in_scope in scopes:
            means: dict[str, tuple[float, np.ndarray, int]] = {}
            for group in groups:
                rows_g = in_scope & (cells["group"] == group).to_numpy()
                if not rows_g.any():
                    continue
                # over models: average languages within each model first, then models
                est, dist = _scope_mean(cells, rows_g, point, boot)
                means[group] = (est, dist, int(cells.loc[rows_g, "language"].nunique()))
            for group, (est, dist, n_lang) in means.items():
                lo, hi = _percentile(dist, level)
                rows.append({"model": model, "metric": metric, "group": group, "n_languages": n_lang,
                             "mean_gain": est, "ci_low": lo, "ci_high": hi})
            if related_group in means:
                est_r, dist_r, _ = means[related_group]
                for group, (est, dist, n_lang) in means.items():
                    if group == related_group:
                        continue
                    lo, hi = _percentile(dist_r - dist, level)
                    rows.append({"model": model, "metric": metric, "group": f"{related_group}-minus-{group}",
                                 "n_languages": means[related_group][2] + n_lang,
                                 "mean_gain": est_r - est, "ci_low": lo, "ci_high": hi})
    cols = ["model", "metric", "group", "n_languages", "mean_gain", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=cols)


def _scope_mean(cells: pd.DataFrame, rows: np.ndarray, point: np.ndarray, boot: np.ndarray):
    """Mean over languages within each model, then over models: (estimate, bootstrap draws)."""
    per_model_est, per_model_boot = [], []
    for _, sel in cells[rows].groupby("model", sort=False):
        k = sel.index.to_numpy()
        per_model_est.append(np.mean(point[k]))
        per_model_boot.append(boot[k].mean(axis=0))
    return float(np.mean(per_model_est)), np.mean(per_model_boot, axis=0)



def weak_strong(gains: pd.DataFrame, weak_baseline: float, related_group: str = "related") -> pd.DataFrame:
    """relatedness_weak_strong.csv: models split by mean baseline accuracy (over their target
    languages) at `weak_baseline` (a proportion): weak < threshold <= strong. Per class, means
    over the class's model x language cells."""
    threshold = 100 * weak_baseline
    per_model = gains.groupby("model", sort=False)["baseline_acc"].mean()
    klass = per_model.map(lambda acc: "weak" if acc < threshold else "strong")
    rows = []
    for name in ("weak", "strong"):
        models = list(klass[klass == name].index)
        g = gains[gains["model"].isin(models)]
        related = g[g["group"] == related_group]["gain"]
        control = g[g["group"] != related_group]["gain"]
        rows.append({"class": name, "threshold_acc": threshold, "n_models": len(models),
                     "models": ";".join(map(str, models)),
                     "baseline_acc": g["baseline_acc"].mean() if len(g) else math.nan,
                     "mean_gain": g["gain"].mean() if len(g) else math.nan,
                     "related_gain": related.mean() if len(related) else math.nan,
                     "control_gain": control.mean() if len(control) else math.nan,
                     "related_minus_control": (related.mean() - control.mean())
                     if len(related) and len(control) else math.nan,
                     "cot_gain": g["cot_gain"].mean() if len(g) else math.nan})
    return pd.DataFrame(rows)


# --- groups by language family ('auto') -------------------------------------------------------

# Used only when lang2vec (URIEL / Glottolog families) is not installed: top-level families of the
# languages in this project's examples and the paper (Belebele / ISO 639-3 codes).
_FALLBACK_FAMILIES = {
    "ara": "Afro-Asiatic", "arb": "Afro-Asiatic", "acm": "Afro-Asiatic", "apc": "Afro-Asiatic",
    "ary": "Afro-Asiatic", "arz": "Afro-Asiatic", "ars": "Afro-Asiatic", "heb": "Afro-Asiatic",
    "amh": "Afro-Asiatic", "mlt": "Afro-Asiatic", "jpn": "Japonic", "kor": "Koreanic",
    "fra": "Indo-European", "eng": "Indo-European", "ind": "Austronesian", "msa": "Austronesian",
    "zsm": "Austronesian", "tgl": "Austronesian", "vie": "Austroasiatic", "khm": "Austroasiatic",
    "tha": "Tai-Kadai", "lao": "Tai-Kadai", "mya": "Sino-Tibetan", "zho": "Sino-Tibetan",
    "cmn": "Sino-Tibetan", "tam": "Dravidian",
}
_TWO_LETTER = {"ar": "ara", "he": "heb", "am": "amh", "mt": "mlt", "ja": "jpn", "ko": "kor", "fr": "fra",
               "en": "eng", "id": "ind", "ms": "msa", "tl": "tgl", "vi": "vie", "km": "khm", "th": "tha",
               "lo": "lao", "my": "mya", "zh": "zho", "ta": "tam"}


def iso639_3(code: str) -> str:
    """'heb_Hebr' -> 'heb', 'zh-s' -> 'zho', 'id' -> 'ind' (Belebele / project language codes)."""
    base = code.split("_")[0].split("-")[0].lower()
    if len(base) == 2:
        table = _lang2vec_letter_codes() or _TWO_LETTER
        return table.get(base, _TWO_LETTER.get(base, base))
    return base


def _lang2vec_dir():
    from transfergrid.analysis.distance import lang2vec_data_dir

    try:
        path = lang2vec_data_dir()
    except ImportError:
        return None
    return path if (path / "family_features.npz").is_file() else None


def _lang2vec_letter_codes() -> dict[str, str] | None:
    import json

    root = _lang2vec_dir()
    return json.loads((root / "letter_codes.json").read_text()) if root else None


def language_families(codes: Sequence[str]) -> dict[str, str | None]:
    """Top-level family of each language: URIEL's Glottolog family features (read from lang2vec's
    data files, which need no network), else a small built-in table with a warning."""
    iso = {c: iso639_3(c) for c in codes}
    root = _lang2vec_dir()
    if root is None:
        log.warning("lang2vec is not installed: language families come from a small built-in table "
                    "(pip install lang2vec for URIEL/Glottolog families)")
        return {c: _FALLBACK_FAMILIES.get(i) for c, i in iso.items()}
    db = np.load(root / "family_features.npz")
    langs = {str(x): k for k, x in enumerate(db["langs"])}
    feats = db["feats"]
    data = db["data"][:, :, 0]
    size = data.sum(axis=0)
    out: dict[str, str | None] = {}
    for code, i in iso.items():
        row = langs.get(i)
        if row is None:
            out[code] = _FALLBACK_FAMILIES.get(i)
            continue
        member = np.flatnonzero(data[row] == 1)
        # the broadest family a language belongs to is its top-level family
        out[code] = str(feats[member[np.argmax(size[member])]]).removeprefix("F_") if member.size else None
    return out


def auto_groups(source_languages: Sequence[str], targets: Sequence[str],
                related_group: str = "related") -> dict[str, list[str]]:
    """groups = 'auto': a target is related when its top-level family is a source language's."""
    families = language_families([*source_languages, *targets])
    source_families = {families[s] for s in source_languages} - {None}
    if not source_families:
        raise UserError(f"relatedness.groups = 'auto': no language family known for the source "
                        f"language(s) {', '.join(source_languages)}; list the groups explicitly")
    unknown = [t for t in targets if families[t] is None]
    if unknown:
        raise UserError(f"relatedness.groups = 'auto': no language family known for {', '.join(unknown)}; "
                        f"list the groups explicitly")
    related = [t for t in targets if families[t] in source_families]
    control = [t for t in targets if families[t] not in source_families]
    return {related_group: related, CONTROL: control}


def resolve_groups(spec) -> dict[str, list[str]]:
    """The target groups of a RelatednessSpec (explicit, or 'auto' by family)."""
    if isinstance(spec.groups, dict):
        return {k: list(v) for k, v in spec.groups.items()}
    return auto_groups(spec.source_languages, spec.auto_targets, spec.related_group)
