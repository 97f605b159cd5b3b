"""Bring your own runs: lm-evaluation-harness output and per-seed CSVs -> the released schema.

Both inputs become one per-seed frame, `SEED_COLUMNS`: one row per (model_name, source, target,
seed) with the fine-tuned score and score_norm as proportions; source "base" marks the base model,
whose row may leave the seed empty to stand for every seed. `aggregate_seeds` then pairs each
fine-tuned row with its base (same model, target and seed, else the seedless base), takes
Δ = 100 × (fine-tuned − base) per seed and aggregates over seeds as the release does: mean, std
(ddof = 1, empty for one seed), n_seeds = distinct seeds, se = std / √n_seeds. score_norm is
acc_norm where the harness reports it, else acc (the reference's parse_lm_eval_output.py).

lm-evaluation-harness layout: `lm_eval --output_path DIR` writes `DIR/<model>/results_<date>.json`
with `results.<task>["acc,none"]` (and `"acc_norm,none"`), `group_subtasks`, `config.model_args` and
`model_name`. An index file (TOML or CSV) lists one run per entry (docs: README "Bring your own
runs"):

    [tasks]                         # optional: harness task -> "dataset:language" ("" = skip)
    xnli_de = "xnli:de"
    [[run]]
    model = "Qwen2.5-0.5B-Instruct" # optional: else the JSON's model_name, last path part
    source = "base"                 # or the fine-tuned source cell, "arc_challenge:ar"
    seed = 17                       # optional for base (then: every seed)
    path = "base/Qwen2.5-0.5B-Instruct"   # a results JSON or a folder searched for results_*.json

Without a [tasks] entry the paper's harness tasks map by name: arc_<lang>, hellaswag_<lang>,
truthfulqa_<lang>_mc1, global_mmlu_<lang> / global_mmlu_full_<lang>, m_mmlu_<lang> (English:
arc_challenge, hellaswag, truthfulqa_mc1). Other tasks are skipped and logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.analysis.completeness import BASE, normalize_seeds
from transfergrid.analysis.frame import RESULT_COLUMNS, task_key
from transfergrid.analysis.regimes import regime
from transfergrid.errors import DataError, UserError

log = logging.getLogger(__name__)

SEED_COLUMNS = ["model_name", "model_size", "source", "target", "seed", "score", "score_norm"]
_DEFAULT_TASKS = [
    (r"arc_challenge", "arc_challenge", "en"), (r"arc_([a-z]{2,3})", "arc_challenge", None),
    (r"hellaswag", "hellaswag", "en"), (r"hellaswag_([a-z]{2,3})", "hellaswag", None),
    (r"truthfulqa_mc1", "truthfulqa", "en"), (r"truthfulqa_([a-z]{2,3})_mc1", "truthfulqa", None),
    (r"global_mmlu_(?:full_)?([a-z]{2,3})", "global_mmlu", None), (r"m_?mmlu_([a-z]{2,3})", "mmlu", None),
]


# --- cells and seeds ------------------------------------------------------------------------------
def parse_cell(text: object, where: dict) -> str:
    """ "task:lang" -> normalised "task:lang" (a DataError naming `where` otherwise)."""
    parts = str(text).strip().split(":")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise DataError(f"expected a cell TASK:LANG such as arc_challenge:ar, got {text!r}", **where)
    return f"{parts[0].strip()}:{parts[1].strip()}"


def parse_seed(value: object, where: dict, *, required: bool) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        if required:
            raise DataError("a fine-tuned run needs its seed (an integer)", **where)
        return None
    text = str(value).strip()
    text = text[4:] if text.lower().startswith("seed") else text  # "seed17" as in the reference's folders
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise DataError(f"expected an integer seed, got {value!r}", **where)
    return int(number)


def map_task(name: str, tasks: dict[str, str | None]) -> str | None:
    """The target cell a harness task measures, or None to skip it."""
    if name in tasks:
        return tasks[name]
    for pattern, dataset, lang in _DEFAULT_TASKS:
        m = re.fullmatch(pattern, name)
        if m:
            return f"{dataset}:{lang or m.group(1)}"
    return None


# --- lm-evaluation-harness ----------------------------------------------------------------------
def read_harness_json(path: Path, metric_filter: str = "none") -> tuple[dict[str, tuple[float, float]], str | None]:
    """({harness task: (acc, score_norm)}, model name) from one results_*.json. Subtasks of a group
    are left out (the group's aggregate stands for them), as the reference does."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not a JSON file: {exc}", file=path) from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DataError("no 'results' object; expected lm-evaluation-harness's results_*.json", file=path)
    subtasks = {s for subs in (data.get("group_subtasks") or {}).values() for s in (subs or [])}
    scores = {}
    for task, metrics in results.items():
        if task in subtasks or not isinstance(metrics, dict):
            continue
        acc, norm = metrics.get(f"acc,{metric_filter}"), metrics.get(f"acc_norm,{metric_filter}")
        if not isinstance(acc, (int, float)):
            log.info("%s: task %s has no acc,%s; skipped", path, task, metric_filter)
            continue
        scores[task] = (float(acc), float(norm) if isinstance(norm, (int, float)) else float(acc))
    return scores, _model_name(data)


def _model_name(data: dict) -> str | None:
    """The base model a results file names: `pretrained=` of config.model_args (with a PEFT adapter,
    model_name is the adapter's path), else model_name; its last path part. (config.model is the
    harness backend, "hf".)"""
    args = (data.get("config") or {}).get("model_args")
    model = None
    if isinstance(args, dict):
        model = args.get("pretrained")
    elif isinstance(args, str):
        found = re.search(r"(?:^|,)\s*pretrained=([^,]+)", args)
        model = found.group(1) if found else None
    model = model or data.get("model_name")
    return str(model).rstrip("/").split("/")[-1] if model else None


def _run_files(path: Path, where: dict) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder", **where)
    # by file name: results_<ISO date>.json sorts by time, whatever sub-folder the harness chose
    files = sorted(path.rglob("results_*.json"), key=lambda p: (p.name, str(p)))
    if not files:
        raise DataError(f"{path}: no results_*.json below this folder (lm_eval --output_path writes them)", **where)
    return files


def read_index(path: Path) -> tuple[list[dict], dict[str, str | None]]:
    """(runs, task map) from a TOML index ([[run]] + optional [tasks]) or a CSV index (columns
    model, model_size, source, seed, path; model, model_size and seed optional)."""
    if not path.is_file():
        raise UserError(f"{path}: index file not found")
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not a valid TOML file: {exc}", file=path) from None
        runs, tasks = data.get("run", []), data.get("tasks", {})
        if not isinstance(runs, list) or not isinstance(tasks, dict):
            raise DataError("expected [[run]] tables and an optional [tasks] table", file=path)
    else:
        runs, tasks = _read_csv(path, ["source", "path"]).to_dict("records"), {}
    if not runs:
        raise DataError("no runs listed ([[run]] entries in TOML, rows in CSV)", file=path)
    task_map = {str(k): (parse_cell(v, {"file": path, "field": f"tasks.{k}"}) if str(v).strip() else None)
                for k, v in tasks.items()}
    return runs, task_map


def read_task_map(path: Path) -> dict[str, str | None]:
    """A CSV harness_task,dataset,language -> {harness task: "dataset:language"} (empty dataset: skip)."""
    path = Path(path)
    frame = _read_csv(path, ["harness_task", "dataset", "language"])
    out: dict[str, str | None] = {}
    for i, rec in enumerate(frame.to_dict("records")):
        task, dataset, lang = (str(rec[c]).strip() for c in ("harness_task", "dataset", "language"))
        if not task:
            raise DataError("empty harness task name", file=path, line=i + 2, field="harness_task")
        out[task] = parse_cell(f"{dataset}:{lang}", {"file": path, "line": i + 2}) if dataset else None
    return out


def read_harness_runs(index: Path, tasks: dict[str, str | None] | None = None, metric_filter: str = "none",
                      progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The per-seed frame of every run an index lists (paths relative to the index's folder). When
    several results files of one run measure the same task, the newest (by file name) counts.
    `progress(done, total)` is called after each run."""
    index = Path(index)
    runs, task_map = read_index(index)
    task_map = {**task_map, **(tasks or {})}
    rows, skipped = [], set()
    for i, run in enumerate(runs):
        where = {"file": index, "item": f"run {i + 1}"}
        if not isinstance(run, dict) or not str(run.get("path") or "").strip():
            raise DataError("each run needs a path (a results JSON or a folder of them)", **where)
        source = str(run.get("source") or "").strip()
        source = BASE if source.lower() in (BASE, "n/a", "") else parse_cell(source, {**where, "field": "source"})
        seed = parse_seed(run.get("seed"), {**where, "field": "seed"}, required=source != BASE)
        path = Path(str(run["path"]).strip())
        found: dict[str, tuple[float, float]] = {}
        model = None
        for file in _run_files(path if path.is_absolute() else index.parent / path, where):
            scores, model = read_harness_json(file, metric_filter)
            found.update(scores)  # a later (newer) file wins
        model = str(run.get("model") or "").strip() or model
        if not model:
            raise DataError("no model name: give model = ... (the results file has no model_name)", **where)
        n_before = len(rows)
        for task, (acc, norm) in found.items():
            target = map_task(task, task_map)
            if target is None:
                skipped.add(task)
                continue
            rows.append({"model_name": model, "model_size": run.get("model_size", run.get("size")),
                         "source": source, "target": target, "seed": seed, "score": acc, "score_norm": norm})
        if len(rows) == n_before:
            raise DataError(f"{path}: no task maps to a (dataset, language) cell (tasks: "
                            f"{', '.join(sorted(found)) or 'none'}); map them in the index's [tasks] table "
                            "or with --tasks FILE.csv", **where)
        if progress is not None:
            progress(i + 1, len(runs))
    if skipped:
        log.info("skipped %d harness task(s) with no cell mapping: %s", len(skipped), ", ".join(sorted(skipped)))
    return check_seed_frame(pd.DataFrame(rows, columns=SEED_COLUMNS), index)


# --- per-seed CSVs --------------------------------------------------------------------------------
def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"not a readable CSV file: {str(exc).splitlines()[0]}", file=path) from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", file=path)
    return frame


def read_seed_csv(path: Path) -> pd.DataFrame:
    """A per-seed CSV -> the per-seed frame. Columns: model (or model_name), optional model_size,
    source and target as TASK:LANG (or the reference's fine_tuned_dataset / fine_tuned_language /
    eval_dataset / eval_language, base as "n/a"), seed, score, optional score_norm (else score)."""
    path = Path(path)
    raw = _read_csv(path, [])
    raw = raw.rename(columns={"model": "model_name"})
    if "source" not in raw and {"fine_tuned_dataset", "fine_tuned_language"} <= set(raw.columns):
        base = raw["fine_tuned_dataset"].str.strip().str.lower().isin(["", "n/a", BASE])
        raw["source"] = (raw["fine_tuned_dataset"] + ":" + raw["fine_tuned_language"]).where(~base, BASE)
    if "target" not in raw and {"eval_dataset", "eval_language"} <= set(raw.columns):
        raw["target"] = raw["eval_dataset"] + ":" + raw["eval_language"]
    missing = [c for c in ("model_name", "source", "target", "seed", "score") if c not in raw.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}; expected model, source, target, seed, score "
                        "[, score_norm, model_size]", file=path)
    rows = []
    for i, rec in enumerate(raw.to_dict("records")):
        where = {"file": path, "line": i + 2}
        source = rec["source"].strip()
        source = BASE if source.lower() in (BASE, "n/a", "") else parse_cell(source, {**where, "field": "source"})
        row = {"model_name": rec["model_name"].strip(), "model_size": rec.get("model_size") or None, "source": source,
               "target": parse_cell(rec["target"], {**where, "field": "target"}),
               "seed": parse_seed(rec["seed"], {**where, "field": "seed"}, required=source != BASE)}
        if not row["model_name"]:
            raise DataError("empty model name", field="model_name", **where)
        for col in ("score", "score_norm"):
            text = str(rec.get(col) or "").strip()
            if col == "score_norm" and not text:
                row[col] = row["score"]
                continue
            try:
                row[col] = float(text)
            except ValueError:
                raise DataError(f"expected a number, got {text!r}", field=col, **where) from None
        rows.append(row)
    return check_seed_frame(pd.DataFrame(rows, columns=SEED_COLUMNS), path)


def check_seed_frame(frame: pd.DataFrame, source: object) -> pd.DataFrame:
    """Scores are finite proportions and each (model, source, target, seed) appears once."""
    for col in ("score", "score_norm"):
        values = frame[col].astype(float)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            r = frame.loc[bad].iloc[0]
            raise DataError(f"{col} {r[col]!r} for ({r.model_name}, {r.source}, {r.target}, seed {r.seed}) is not a "
                            "proportion in [0, 1] (scores are accuracies, not percentages)", file=source)
    keys = ["model_name", "source", "target", "seed"]
    dup = frame.duplicated(keys, keep=False)
    if dup.any():
        r = frame.loc[dup].iloc[0]
        raise DataError(f"{int(dup.sum())} rows share a (model, source, target, seed), e.g. ({r.model_name}, "
                        f"{r.source}, {r.target}, seed {r.seed}); each score must appear once", file=source)
    frame["seed"] = pd.Series(normalize_seeds(frame["seed"]), index=frame.index, dtype=object)
    return frame


# --- seeds -> released schema ---------------------------------------------------------------------
def _size(model: str, given: object) -> float:
    from transfergrid.analysis.frame import parse_size
    from transfergrid.model_names import infer_family_size

    try:
        size = parse_size(given)
    except ValueError:
        raise DataError(f"model {model}: expected a size such as 8, 0.5 or 8B, got {given!r}",
                        field="model_size") from None
    if size is None:
        size = infer_family_size(model)[1]
    return float("nan") if size is None else float(size)


def aggregate_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """The released-schema frame (`RESULT_COLUMNS`) of a per-seed frame. Fine-tuned rows without a
    base score are left out (run `analysis.completeness.missing_entries` first to name them)."""
    is_base = per_seed["source"] == BASE
    ft, base = per_seed.loc[~is_base].copy(), per_seed.loc[is_base]
    keys = ["model_name", "target", "seed"]
    base_cols = base[keys + ["score", "score_norm"]].rename(
        columns={"score": "score_base", "score_norm": "score_norm_base"})
    ft["seed"] = ft["seed"].astype(object)
    merged = ft.merge(base_cols[base_cols["seed"].notna()], on=keys, how="left")
    seedless = base_cols[base_cols["seed"].isna()].drop(columns="seed")
    fallback = merged[["model_name", "target"]].merge(seedless, on=["model_name", "target"], how="left",
                                                      validate="many_to_one")
    for col in ("score_base", "score_norm_base"):  # a seedless base serves every seed
        merged[col] = merged[col].astype(float).fillna(pd.Series(fallback[col].to_numpy(dtype=float), index=merged.index))
    merged = merged.loc[merged["score_base"].notna()]
    if merged.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    merged["delta_score"] = 100.0 * (merged["score"] - merged["score_base"])
    merged["delta_score_norm"] = 100.0 * (merged["score_norm"] - merged["score_norm_base"])
    values = ["score", "score_base", "score_norm", "score_norm_base", "delta_score", "delta_score_norm"]
    groups = merged.groupby(["model_name", "source", "target"], sort=True)
    out = groups[values].agg(["mean", "std"])  # pandas std: ddof = 1, NaN for one seed
    out.columns = [f"{v}_{stat}" for v, stat in out.columns]
    out["n_seeds"] = groups["seed"].nunique().astype(float)
    for v in values:
        out[f"{v}_se"] = out[f"{v}_std"] / np.sqrt(out["n_seeds"])
    out = out.reset_index()
    given = per_seed.loc[per_seed["model_size"].notna() & (per_seed["model_size"].astype(str).str.strip() != "")]
    first = given.drop_duplicates("model_name").set_index("model_name")["model_size"]
    sizes = {m: _size(m, first.get(m)) for m in out["model_name"].unique()}
    out["model_size"] = out["model_name"].map(sizes)
    out[["fine_tuned_dataset", "fine_tuned_language"]] = out["source"].str.split(":", n=1, expand=True)
    out[["eval_dataset", "eval_language"]] = out["target"].str.split(":", n=1, expand=True)
    out["regime"] = [regime(task_key(a), b.lower(), task_key(c), d.lower()) for a, b, c, d in
                     zip(out["fine_tuned_dataset"], out["fine_tuned_language"], out["eval_dataset"], out["eval_language"])]
    return out.reindex(columns=RESULT_COLUMNS)
