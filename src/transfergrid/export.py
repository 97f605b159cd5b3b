"""Store -> the released-CSV frame (MISSION.md): one row per (model, source cell, target cell).

Per seed s: score = acc, score_norm = the headline metric (acc_norm where the task has it, else
acc, as `evaluation.metric = "auto"`), delta = 100 × (fine-tuned − base) in percentage points.
Columns report the mean over seeds, the sample standard deviation (ddof = 1; NaN with one seed)
and the standard error std/√n. The base model is evaluated once per model (evaluation is
deterministic) and counts as the same base score for every seed, so its std and SE are 0.
Only rows of the current study's keys are read, so results of an edited study never mix in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transfergrid.plan import EVAL, Job
from transfergrid.records import Cell

COLUMNS = [
    "model_name", "model_size", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language",
    "regime", "score_mean", "score_std", "score_base_mean", "score_base_std", "score_norm_mean",
    "score_norm_std", "score_norm_base_mean", "score_norm_base_std", "delta_score_mean", "delta_score_std",
    "delta_score_norm_mean", "delta_score_norm_std", "n_seeds", "score_se", "score_base_se", "score_norm_se",
    "score_norm_base_se", "delta_score_se", "delta_score_norm_se",
]


def regime(source: Cell, target: Cell) -> str:
    """MT-ML (the source cell itself), MT-CL, CT-ML or CT-CL (MISSION.md, Regimes)."""
    try:  # one definition for the whole project
        from transfergrid.analysis.regimes import regime as shared
    except ImportError:
        shared = None
    if shared is not None:
        return shared(source.task, source.lang, target.task, target.lang)
    task = "MT" if source.task == target.task else "CT"
    lang = "ML" if source.lang == target.lang else "CL"
    return f"{task}-{lang}"


def headline_uses_norm(study, task: str) -> bool:
    metric = study.evaluation.metric
    if metric != "auto":
        return metric == "acc_norm"
    try:
        from transfergrid.data import get_benchmark
    except ImportError:
        return True
    return bool(get_benchmark(task).has_norm)


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, sample std, standard error) over seeds; std and SE are NaN for a single seed."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, std / math.sqrt(n)


def export_results(study, store, jobs: Sequence[Job] | None = None, data=None):
    """The released-CSV DataFrame of everything the store holds for this study (complete cells:
    a (model, source, target) row needs the base score and at least one fine-tuned seed)."""
    import pandas as pd

    jobs = _jobs(study, jobs, data)
    evals = [j for j in jobs if j.kind == EVAL]
    scores = store.cell_scores(j.key for j in evals)
    by_key = {k: g.set_index("cell") for k, g in scores.groupby("job_key")}
    sizes = {m.id: m.size_b for m in study.models}
    norm = {t: headline_uses_norm(study, t) for t in [*study.tasks, *study.target_only_tasks()]}

    # the base evaluation (a relatedness study's CoT evaluation has no adapter either)
    base = {j.model: by_key.get(j.key) for j in evals
            if j.adapter_key is None and j.spec.get("variant", "base") == "base"}
    fine: dict[tuple[str, str], list[tuple[int, object]]] = {}
    for j in evals:
        if j.adapter_key is not None and j.key in by_key:
            fine.setdefault((j.model, j.spec["source_cell"]), []).append((j.spec["seed"], by_key[j.key]))

    rows = []
    for (model, source_text), seeds in fine.items():
        b = base.get(model)
        if b is None:
            continue
        source = Cell.parse(source_text)
        for target in study.target_cells():
            t = str(target)
            if t not in b.index:
                continue
            per_seed = [frame.loc[t] for _, frame in sorted(seeds, key=lambda x: x[0]) if t in frame.index]
            if not per_seed:
                continue
            use_norm = norm.get(target.task, True)
            ft = [float(r["acc"]) for r in per_seed]
            ft_norm = [float(r["acc_norm"] if use_norm else r["acc"]) for r in per_seed]
            base_acc = float(b.loc[t, "acc"])
            base_norm = float(b.loc[t, "acc_norm"] if use_norm else b.loc[t, "acc"])
            n = len(per_seed)
            row = {"model_name": model, "model_size": sizes.get(model), "fine_tuned_dataset": source.task,
                   "fine_tuned_language": source.lang, "eval_dataset": target.task, "eval_language": target.lang,
                   "regime": regime(source, target), "n_seeds": n}
            for name, values in (("score", ft), ("score_base", [base_acc] * n), ("score_norm", ft_norm),
                                 ("score_norm_base", [base_norm] * n),
                                 ("delta_score", [100 * (v - base_acc) for v in ft]),
                                 ("delta_score_norm", [100 * (v - base_norm) for v in ft_norm])):
                mean, std, se = _stats(values)
                row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_se"] = mean, std, se
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if study.evaluation.fewshot:  # k-shot scores say so (a column after the released schema's)
        frame["fewshot"] = study.evaluation.fewshot
    return frame


def export_items(study, store, jobs: Sequence[Job] | None = None, data=None):
    """Every per-item score of the study's current evaluations, with model / variant / seed columns
    (variant 'base' or the adapter's source cell): the input of paired tests and item bootstraps."""
    import pandas as pd

    jobs = _jobs(study, jobs, data)
    evals = {j.key: j for j in jobs if j.kind == EVAL}
    frames = []
    for _, row in store.cell_scores(evals).iterrows():
        frame = pd.read_parquet(store.root / row["items_path"])
        frame.insert(0, "model", row["model"])
        frame.insert(1, "variant", row["variant"])
        frame.insert(2, "seed", row["seed"])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _jobs(study, jobs, data):
    if jobs is not None:
        return list(jobs)
    from transfergrid.plan import study_jobs

    if data is None:
        from transfergrid.data import StudyData, resolve_data_dir

        data = StudyData(study, resolve_data_dir(None, study))
    return study_jobs(study, data)
