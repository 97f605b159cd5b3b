"""The paper's ablations as analyses of result sets: the LoRA rank sweep and full fine-tuning vs LoRA.

Each result set is one configuration (one LoRA rank, or full fine-tuning) as a frame in the released
schema. The definitions are the reference's (kdymkiewicz/Donors-and-Recipients,
analysis/calc_delta_lora_rank_abl.py and analysis/calc_delta_full_ft.py):

- Cells pair across sets by (model, source cell, target cell), inner join. Task names pair by
  `frame.task_key` ("m_arc" = "arc_challenge"), languages case-insensitively.
- Rank ablation, per set, over all of its cells (MT-ML included), on `delta_score_norm_mean`: mean,
  median, p10 / p25 / p75 / p90 (linear interpolation), harm rate (Δ ≤ −1.0 pp, no tolerance); the
  same split into MT-ML, MT-CL and off-task (CT-ML ∪ CT-CL); the per-cell Pearson correlation of
  the first set (the paper: r = 32) against every other one, on both Δ columns, and the difference
  other − first. `common_only=True` restricts the distributions to the cells every set has (the
  reference does not; sets of unequal coverage then compare like with like).
- Full FT vs LoRA: Pearson on both Δ columns; sign agreement (`sign(Δ_lora) == sign(Δ_full)`, so
  0 = 0 agrees) and the difference Δ_lora − Δ_full (mean, median) on `delta_score_mean`, the
  reference's column. Its script defines a target LoRA rank but never filters on it, so with a LoRA
  file of several ranks it pairs each full-FT cell once per rank; here each set is one
  configuration: pass the r = 32 set.

Rates are in % (the reference prints fractions).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from transfergrid.analysis import rates
from transfergrid.analysis.frame import headline_delta, task_key, validate
from transfergrid.analysis.regimes import MT_CL, MT_ML, OFF_TASK, regime
from transfergrid.errors import UserError

ACC, NORM = "delta_score_mean", "delta_score_norm_mean"
OFF = "off-task"
PAIR_KEYS = ["model_name", "source", "target"]
RANK_METRIC, FULLFT_METRIC = "acc_norm", "acc"  # the reference's Δ column for each ablation
KINDS = ("rank", "fullft")

DISTRIBUTION_COLUMNS = ["set", "n", "mean", "median", "p10", "p25", "p75", "p90", "win_rate", "harm_rate"]
REGIME_COLUMNS = ["set", "regime", "n", "mean", "median", "win_rate", "harm_rate"]
CORRELATION_COLUMNS = ["reference", "set", "n_cells", "pearson_acc", "pearson_acc_norm", "sign_agreement",
                       "mean_diff", "median_diff"]
FULLFT_COLUMNS = ["lora", "full", "n_cells", "pearson_acc", "pearson_acc_norm", "sign_agreement",
                  "mean_diff", "median_diff"]


def keyed(frame: pd.DataFrame, metric: str, label: str = "result set") -> pd.DataFrame:
    """Validated copy with the pairing keys, the regime, both Δ columns and `delta` (`metric`'s Δ)."""
    df = validate(frame)
    src_task, tgt_task = df["fine_tuned_dataset"].map(task_key), df["eval_dataset"].map(task_key)
    src_lang, tgt_lang = df["fine_tuned_language"].str.lower(), df["eval_language"].str.lower()
    out = pd.DataFrame({"model_name": df["model_name"], "source": src_task + ":" + src_lang,
                        "target": tgt_task + ":" + tgt_lang})
    out["regime"] = [regime(*cells) for cells in zip(src_task, src_lang, tgt_task, tgt_lang)]
    out[ACC], out[NORM] = df[ACC], df[NORM]
    out["delta"] = headline_delta(df, metric).to_numpy()
    dup = out.duplicated(PAIR_KEYS)
    if dup.any():  # two spellings of one task ("arc" and "arc_challenge") in one file
        r = out.loc[dup].iloc[0]
        raise UserError(f"{label}: two rows for the cell ({r.model_name}, {r.source} -> {r.target}) once task names "
                        "are matched across spellings; keep one spelling per task")
    return out.loc[out["delta"].notna()].reset_index(drop=True)


def pearson(x, y) -> float:
    """Pearson r over the pairs where both are present; NaN for < 2 pairs or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def pair(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Cells present in both keyed sets: the keys, regime, and each Δ column suffixed `_a` / `_b`.
    No shared cell is a user error (the sets describe different grids)."""
    cols = [ACC, NORM, "delta"]
    paired = a[PAIR_KEYS + ["regime"] + cols].merge(b[PAIR_KEYS + cols], on=PAIR_KEYS, how="inner",
                                                    suffixes=("_a", "_b"), validate="one_to_one")
    if paired.empty:
        raise UserError(f"result sets {names[0]!r} and {names[1]!r} share no (model, source cell, target cell); "
                        f"{names[0]!r} has models {_few(a['model_name'])} and sources {_few(a['source'])}, "
                        f"{names[1]!r} has models {_few(b['model_name'])} and sources {_few(b['source'])}")
    return paired


def _few(values: pd.Series, k: int = 3) -> str:
    unique = sorted(set(values))
    return ", ".join(unique[:k]) + (f" (+{len(unique) - k} more)" if len(unique) > k else "")


def _stats(delta: pd.Series) -> dict:
    d = delta.to_numpy(dtype=float)
    if not d.size:
        return {"n": 0}
    return {"n": int(d.size), "mean": float(d.mean()), "median": float(np.median(d)),
            "win_rate": rates.win_rate(d), "harm_rate": rates.harm_rate(d)}  # the exact rule, no tolerance


def _common(sets: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    keys = None
    for df in sets.values():
        k = set(map(tuple, df[PAIR_KEYS].to_numpy()))
        keys = k if keys is None else keys & k
    if not keys:
        raise UserError(f"result sets {', '.join(map(repr, sets))} have no cell in common")
    return {label: df[[tuple(r) in keys for r in df[PAIR_KEYS].to_numpy()]] for label, df in sets.items()}


def rank_distribution(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per keyed set: n, mean, median, p10-p90, win and harm rate (%) of `delta` over all its cells."""
    rows = []
    for label, df in sets.items():
        d = df["delta"].to_numpy(dtype=float)
        q = np.quantile(d, [0.10, 0.25, 0.75, 0.90]) if d.size else [np.nan] * 4
        rows.append({"set": label, **_stats(df["delta"]), **dict(zip(["p10", "p25", "p75", "p90"], map(float, q)))})
    return pd.DataFrame(rows, columns=DISTRIBUTION_COLUMNS)


def rank_regimes(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per keyed set and regime group (MT-ML, MT-CL, off-task): n, mean, median, win and harm rate."""
    rows = []
    for label, df in sets.items():
        group = df["regime"].where(~df["regime"].isin(OFF_TASK), OFF)
        for name in (MT_ML, MT_CL, OFF):
            sub = df.loc[group == name, "delta"]
            if len(sub):
                rows.append({"set": label, "regime": name, **_stats(sub)})
    return pd.DataFrame(rows, columns=REGIME_COLUMNS)


def _paired_stats(paired: pd.DataFrame, diff: pd.Series) -> dict:
    return {"n_cells": len(paired), "pearson_acc": pearson(paired[f"{ACC}_a"], paired[f"{ACC}_b"]),
            "pearson_acc_norm": pearson(paired[f"{NORM}_a"], paired[f"{NORM}_b"]),
            "sign_agreement": float(100.0 * (np.sign(paired["delta_a"]) == np.sign(paired["delta_b"])).mean()),
            "mean_diff": float(diff.mean()), "median_diff": float(diff.median())}


def rank_correlation(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The first keyed set (the reference, r = 32) against every other: per-cell Pearson on both Δ
    columns, sign agreement and the difference other − reference of `delta`, over shared cells."""
    labels = list(sets)
    ref = labels[0]
    rows = []
    for label in labels[1:]:
        paired = pair(sets[ref], sets[label], (ref, label))
        rows.append({"reference": ref, "set": label, **_paired_stats(paired, paired["delta_b"] - paired["delta_a"])})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def fullft_comparison(lora: pd.DataFrame, full: pd.DataFrame, labels: tuple[str, str] = ("lora", "full")) -> pd.DataFrame:
    """One row: LoRA against full fine-tuning over shared cells; difference Δ_lora − Δ_full."""
    paired = pair(lora, full, labels)
    stats = _paired_stats(paired, paired["delta_a"] - paired["delta_b"])
    return pd.DataFrame([{"lora": labels[0], "full": labels[1], **stats}], columns=FULLFT_COLUMNS)


def paired_cells(sets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per cell (union over sets): regime and each set's `delta` (NaN where a set lacks the cell)."""
    wide = None
    for label, df in sets.items():
        part = df[PAIR_KEYS + ["regime", "delta"]].rename(columns={"delta": f"delta_{label}"})
        if wide is None:
            wide = part
        else:
            wide = wide.merge(part, on=PAIR_KEYS, how="outer", suffixes=("", "_dup"))
            wide["regime"] = wide["regime"].fillna(wide.pop("regime_dup"))
    return wide.sort_values(PAIR_KEYS).reset_index(drop=True)


def guess_kind(labels: list[str]) -> str:
    """`auto`: full FT vs LoRA for two sets one of whose labels says "full", else a rank sweep."""
    return "fullft" if len(labels) == 2 and any("full" in label.lower() for label in labels) else "rank"


def compare(frames: Mapping[str, pd.DataFrame], kind: str = "auto", metric: str | None = None,
            *, common_only: bool = False) -> tuple[str, dict[str, pd.DataFrame]]:
    """(kind, tables by file stem) for the result sets in `frames` (label -> released-schema frame,
    in order: the first is the reference rank, or LoRA for `fullft`). `metric` picks the Δ column
    (acc, acc_norm or auto; default the reference's for the kind)."""
    if len(frames) < 2:
        raise UserError(f"compare needs at least two result sets, got {len(frames)}")
    kind = guess_kind(list(frames)) if kind == "auto" else kind
    if kind not in KINDS:
        raise UserError(f"unknown comparison kind {kind!r}; expected rank, fullft or auto")
    metric = metric or (RANK_METRIC if kind == "rank" else FULLFT_METRIC)
    sets = {label: keyed(frame, metric, label) for label, frame in frames.items()}
    for label, df in sets.items():
        if df.empty:
            raise UserError(f"result set {label!r}: no cell with a {metric} Δ")
    if kind == "fullft":
        if len(sets) != 2:
            raise UserError(f"full fine-tuning vs LoRA compares exactly two result sets (LoRA first), got {len(sets)}")
        lora, full = sets.values()
        tables = {"fullft_comparison": fullft_comparison(lora, full, tuple(sets)),
                  "fullft_regimes": rank_regimes(_common(sets))}
    else:
        dist = _common(sets) if common_only else sets
        tables = {"rank_distribution": rank_distribution(dist), "rank_regimes": rank_regimes(dist),
                  "rank_correlation": rank_correlation(sets)}
    tables["paired_cells"] = paired_cells(sets)
    return kind, tables
