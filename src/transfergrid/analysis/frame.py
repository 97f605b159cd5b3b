"""The tidy cell frame: one row per (model, source cell, target cell), seeds aggregated.

Its columns are the released-CSV schema of "Donors and Recipients" (MISSION.md, `RESULT_COLUMNS`),
so the same analysis reads our own store and any CSV a research group published in that schema.
Δ columns are in percentage points, scores are proportions.

`read_results` validates a file once at the boundary; `prepare` adds the derived columns every
analysis uses (all analyses accept a raw or a prepared frame):

    delta         the headline Δ: acc_norm Δ where the eval task has acc_norm, else acc Δ
    source_task, source_lang, target_task, target_lang, source ("task:lang"), target
    regime        recomputed from the cells (MT-ML, MT-CL, CT-ML, CT-CL)
    family        llama, qwen, gemma, ... (from the model name unless given)
    size_b        parameters in billions; size_bucket S <= 1.5 < M < 7 <= L
    construction  of the eval set: curated (human-made, e.g. Global-MMLU-Lite) or translated (Okapi)
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.analysis.regimes import REGIMES, normalize_regime
from transfergrid.errors import DataError, UserError

log = logging.getLogger(__name__)

KEY_COLUMNS = ["model_name", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language"]
NUMERIC_COLUMNS = [
    "score_mean", "score_std", "score_base_mean", "score_base_std", "score_norm_mean", "score_norm_std",
    "score_norm_base_mean", "score_norm_base_std", "delta_score_mean", "delta_score_std",
    "delta_score_norm_mean", "delta_score_norm_std", "n_seeds", "score_se", "score_base_se",
    "score_norm_se", "score_norm_base_se", "delta_score_se", "delta_score_norm_se",
]
RESULT_COLUMNS = [*KEY_COLUMNS[:1], "model_size", *KEY_COLUMNS[1:], "regime", *NUMERIC_COLUMNS]
DELTA_COLUMNS = {"acc": "delta_score_mean", "acc_norm": "delta_score_norm_mean"}
DERIVED_COLUMNS = ["delta", "source_task", "source_lang", "target_task", "target_lang", "source", "target",
                   "family", "size_b", "size_bucket", "construction"]

# Benchmark kinds by name, whatever spelling a file uses (ours, the release's, the harness's okapi m_*),
# and the registry benchmark (data/) whose facts they share.
_TASK_KINDS = [
    (r"global[-_ ]?mmlu", "global_mmlu", "global_mmlu_lite"), (r"arc", "arc", "arc_challenge"),
    (r"hellaswag", "hellaswag", "hellaswag"), (r"truthful", "truthfulqa", "truthfulqa_mc1"),
    (r"mmlu", "mmlu", "mmlu"), (r"xstory", "xstorycloze", "xstorycloze"), (r"xcopa", "xcopa", "xcopa"),
    (r"belebele", "belebele", "belebele"), (r"mgsm", "mgsm", "mgsm"),
]


def task_kind(name: str) -> str:
    """The benchmark a dataset name refers to ("m_arc", "arc_challenge" -> "arc"); else the name."""
    low = str(name).lower()
    return next((kind for pat, kind, _ in _TASK_KINDS if re.search(pat, low)), low)


def _benchmark(name: str):
    """The registry's benchmark for any spelling of a dataset name; None for one it does not know."""
    from transfergrid.data.registry import BENCHMARKS

    low = str(name).lower()
    return next((BENCHMARKS[b] for pat, _, b in _TASK_KINDS if re.search(pat, low)), None)


_ALIASES = {"arc": "arc_challenge", "global_mmlu_lite": "global_mmlu", "truthfulqa_mc1": "truthfulqa",
            "truthfulqa_mc": "truthfulqa"}


def task_key(name: str) -> str:
    """One key per dataset across spellings ("m_arc", "ARC", "arc_challenge"), to tell whether a
    source and a target are the same task."""
    low = re.sub(r"^(m_|okapi[_-])", "", str(name).strip().lower()).replace("-", "_")
    return _ALIASES.get(low, low)


def has_norm(task: str) -> bool:
    """Whether lm-evaluation-harness reports acc_norm for the task (the registry's `has_norm`)."""
    bench = _benchmark(task)
    return bench is not None and bench.has_norm


def construction(task: str) -> str:
    """curated (human-made) or translated (machine-translated, Okapi): the registry's; an unknown
    dataset counts as translated."""
    bench = _benchmark(task)
    return bench.construction if bench is not None else "translated"


def parse_size(value: object) -> float | None:
    """Model size in billions from 8, "8", "8B", "0.5b" or "135M"; None when absent."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (int, float, np.number)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bBmM]?)\s*", str(value))
    if m is None:
        raise ValueError(f"expected a size such as 8, 0.5 or 8B, got {value!r}")
    return float(m.group(1)) / (1000.0 if m.group(2) in "mM" and m.group(2) else 1.0)


def family_of(model_name: str) -> str:
    """Model family without its version: Llama-3.2-1B and Llama-3.1-8B are both "llama"."""
    from transfergrid.model_names import infer_family_size

    family, _ = infer_family_size(model_name)
    if family is None:  # unknown family: the name's first word
        family = re.split(r"[-_ .0-9]", str(model_name).lower(), maxsplit=1)[0] or str(model_name)
    letters = re.match(r"[a-z]+", family)
    return letters.group(0) if letters else family


def size_bucket(size_b: float | None) -> str | None:
    from transfergrid.model_names import size_bucket as bucket

    return None if size_b is None or np.isnan(size_b) else bucket(size_b)


# --- reading and validating ---------------------------------------------------------------------
def validate(frame: pd.DataFrame, source: object = "<frame>") -> pd.DataFrame:
    """A checked copy in the released schema: required columns present, numbers numeric, regime
    labels known and canonical, one row per cell. Errors name the file (`source`), the CSV line
    (row + 2: line 1 is the header) and the column."""
    def line(i: int) -> int:
        return int(i) + 2

    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if not any(c in frame.columns for c in DELTA_COLUMNS.values()):
        missing.append("delta_score_mean or delta_score_norm_mean")
    if missing:
        raise DataError(f"missing required column(s) {', '.join(missing)}; the released schema has: "
                        f"{', '.join(RESULT_COLUMNS)}", file=source)
    out = frame.reset_index(drop=True).copy()
    for col in RESULT_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    for col in KEY_COLUMNS:
        text = out[col].astype("string").str.strip()
        bad = text.isna() | (text == "")
        if bad.any():
            raise DataError("empty value; expected a name", file=source, line=line(np.flatnonzero(bad)[0]), field=col)
        out[col] = text.astype(object)
    for col in NUMERIC_COLUMNS:
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() & out[col].notna() & (out[col].astype("string").str.strip() != "")
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise DataError(f"expected a number, got {out[col].iloc[i]!r}", file=source, line=line(i), field=col)
        out[col] = values.astype(float)
    sizes = []
    for i, value in enumerate(out["model_size"]):
        try:
            sizes.append(parse_size(value))
        except ValueError as exc:
            raise DataError(str(exc), file=source, line=line(i), field="model_size") from None
    out["model_size"] = pd.Series(sizes, dtype=float)
    labels = out["regime"]
    if labels.notna().any():
        canonical = labels.map(lambda x: None if pd.isna(x) or str(x).strip() == "" else normalize_regime(x))
        bad = canonical.isna() & labels.notna() & (labels.astype("string").str.strip() != "")
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise DataError(f"unknown regime label {labels.iloc[i]!r}; expected one of {', '.join(REGIMES)}",
                            file=source, line=line(i), field="regime")
        out["regime"] = canonical.astype(object)
    dup = out.duplicated(KEY_COLUMNS)
    if dup.any():
        i = np.flatnonzero(dup)[0]
        key = ", ".join(f"{c}={out[c].iloc[i]}" for c in KEY_COLUMNS)
        raise DataError(f"a second row for the same cell ({key})", file=source, line=line(i))
    return out


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a results CSV in the released schema (extra columns are kept)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: results file not found")
    try:
        frame = pd.read_csv(path, dtype={c: str for c in KEY_COLUMNS}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable CSV file: {str(exc).splitlines()[0]}", file=path) from None
    out = validate(frame, path)
    _check_regimes(out, path)
    return out


def write_results(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the released-schema columns (in their order) as CSV, atomically."""
    path = Path(path)
    out = frame.reindex(columns=RESULT_COLUMNS)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            out.to_csv(handle, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- derived columns ----------------------------------------------------------------------------
def headline_delta(frame: pd.DataFrame, metric: str = "auto") -> pd.Series:
    """The headline Δ (pp) per row.

    metric "auto" (MISSION.md): delta_score_norm_mean where the eval task has acc_norm (ARC,
    HellaSwag), else delta_score_mean; a row without the preferred column falls back to the other.
    "acc" / "acc_norm" force one column (the release's own headline numbers use acc_norm throughout,
    whose norm columns already hold each benchmark's selected metric).
    """
    acc = frame.get("delta_score_mean", pd.Series(np.nan, index=frame.index)).astype(float)
    norm = frame.get("delta_score_norm_mean", pd.Series(np.nan, index=frame.index)).astype(float)
    if metric == "acc":
        return acc.rename("delta")
    if metric == "acc_norm":
        return norm.rename("delta")
    if metric != "auto":
        raise UserError(f"unknown headline metric {metric!r}; expected auto, acc or acc_norm")
    wants_norm = frame["eval_dataset"].map(has_norm).astype(bool)
    preferred = norm.where(wants_norm, acc)
    fallback = acc.where(wants_norm, norm)
    return preferred.fillna(fallback).rename("delta")


def is_prepared(frame: pd.DataFrame) -> bool:
    return all(c in frame.columns for c in DERIVED_COLUMNS) and "regime" in frame.columns


def prepare(frame: pd.DataFrame, families: Mapping[str, str] | None = None, *,
            sizes: Mapping[str, float] | None = None, metric: str = "auto") -> pd.DataFrame:
    """Validated copy with the derived columns (module docstring). Rows without a headline Δ are
    dropped (logged). `families` / `sizes` override what is inferred from model names."""
    out = validate(frame)
    _check_regimes(out)
    out["delta"] = headline_delta(out, metric)
    empty = out["delta"].isna()
    if empty.any():
        log.warning("dropping %d row(s) without a headline delta", int(empty.sum()))
        out = out.loc[~empty].reset_index(drop=True)
    out["source_task"], out["source_lang"] = out["fine_tuned_dataset"], out["fine_tuned_language"]
    out["target_task"], out["target_lang"] = out["eval_dataset"], out["eval_language"]
    out["source"] = out["source_task"] + ":" + out["source_lang"]
    out["target"] = out["target_task"] + ":" + out["target_lang"]
    out["regime"] = _recomputed_regimes(out)
    names = out["model_name"].unique()
    fam = {n: (families or {}).get(n) or family_of(n) for n in names}
    out["family"] = out["model_name"].map(fam)
    size_b = out["model_size"].astype(float)
    inferred = {n: _size_from_name(n) for n in names}
    size_b = size_b.fillna(out["model_name"].map(inferred).astype(float))
    if sizes:
        size_b = out["model_name"].map(sizes).astype(float).fillna(size_b)
    out["size_b"] = size_b
    out["size_bucket"] = out["size_b"].map(size_bucket).astype(object)
    out["construction"] = out["eval_dataset"].map(construction)
    return out


def ensure_prepared(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if is_prepared(frame) else prepare(frame)


def _size_from_name(name: str) -> float:
    from transfergrid.model_names import infer_family_size

    _, size = infer_family_size(name)
    return np.nan if size is None else size


def _recomputed_regimes(frame: pd.DataFrame) -> pd.Series:
    src_task, src_lang = frame["fine_tuned_dataset"].astype(str), frame["fine_tuned_language"].astype(str)
    if src_task.str.contains("+", regex=False).any() or src_lang.str.contains("+", regex=False).any():
        # source sets (composition.py): matched if the target's task / language is among the set's
        same_task = pd.Series([task_key(t) in {task_key(p) for p in s.split("+")}
                               for s, t in zip(src_task, frame["eval_dataset"])], index=frame.index)
        same_lang = pd.Series([str(t).lower() in s.lower().split("+")
                               for s, t in zip(src_lang, frame["eval_language"])], index=frame.index)
    else:
        same_task = frame["fine_tuned_dataset"].map(task_key) == frame["eval_dataset"].map(task_key)
        same_lang = frame["fine_tuned_language"].str.lower() == frame["eval_language"].str.lower()
    codes = same_task.astype(int) * 2 + same_lang.astype(int)
    return codes.map({3: "MT-ML", 2: "MT-CL", 1: "CT-ML", 0: "CT-CL"}).astype(object)


def _check_regimes(frame: pd.DataFrame, source: object = None) -> None:
    labels = frame["regime"]
    given = labels.notna()
    if not given.any():
        return
    computed = _recomputed_regimes(frame)
    bad = given & (labels != computed)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = {"file": source, "line": i + 2} if source is not None else {}
        msg = (f"regime {labels.iloc[i]!r} disagrees with its cells "
               f"({frame['fine_tuned_dataset'].iloc[i]}:{frame['fine_tuned_language'].iloc[i]} -> "
               f"{frame['eval_dataset'].iloc[i]}:{frame['eval_language'].iloc[i]} is {computed.iloc[i]})")
        if source is None:
            msg = f"row {i}: {msg}"
        raise DataError(msg, field="regime", **where)
