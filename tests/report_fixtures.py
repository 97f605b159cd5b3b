"""Stand-in analysis tables (the columns and layout of analysis.tables.compute_tables: matrices carry
their row labels in the first column) for the report tests, with random numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

TASKS = ["arc_challenge", "global_mmlu", "hellaswag"]
LANGS = ["en", "es", "hi", "zh"]
MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "llama3.2-1b"]
FAMILY = {"qwen2.5-0.5b": "qwen2.5", "qwen2.5-1.5b": "qwen2.5", "llama3.2-1b": "llama3.2"}


def stand_in_tables(seed: int = 0, tasks=TASKS, langs=LANGS, models=MODELS) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cells = [f"{t}:{lang}" for t in tasks for lang in langs]
    values = rng.normal(0.8, 2.0, (len(cells), len(cells)))
    values[0, 1] = np.nan  # a ragged grid: one pair never measured
    grid = pd.DataFrame(values, index=pd.Index(cells, name="source"), columns=cells).reset_index()
    values = rng.normal(1.0, 1.5, (len(langs), len(langs)))
    np.fill_diagonal(values, np.nan)  # MT-ML is not cross-language transfer
    lang_m = pd.DataFrame(values, index=pd.Index(langs, name="source_lang"), columns=langs).reset_index()
    values = rng.normal(0.5, 1.5, (len(tasks), len(tasks)))
    np.fill_diagonal(values, np.nan)
    task_m = pd.DataFrame(values, index=pd.Index(tasks, name="source_task"), columns=tasks).reset_index()

    def roles(key, names):
        return pd.DataFrame({key: names, "donor": rng.normal(1, 1, len(names)),
                             "donor_se": rng.uniform(0.1, 0.5, len(names)),
                             "recipient": rng.normal(1, 1, len(names)),
                             "recipient_se": rng.uniform(0.1, 0.5, len(names)), "n_models": len(models)})

    on_off = pd.DataFrame([
        {"model_name": m, "family": FAMILY.get(m, m.split("-")[0].lower()), "source_task": t, "source_lang": lang,
         "mt_cl_mean": rng.normal(1.2, 1), "off_task_mean": rng.normal(0.6, 1),
         "off_task_harm_rate": rng.uniform(0, 30), "n_mt_cl": 3, "n_off_task": 8}
        for m, t, lang in itertools.product(models, tasks, langs)])
    uplift = pd.DataFrame({"scope": ["transfer", "MT-ML", "MT-CL", "CT-ML", "CT-CL"],
                           "n": [1000, 30, 200, 300, 470], "mean": [0.894, 2.02, 1.246, 0.808, -0.2],
                           "median": [0.25, 1.5, 0.9, 0.3, -0.1], "win_rate": [59.7, 68.2, 66.4, 56.9, 47.7],
                           "harm_rate": [9.1, 9.3, 7.1, 11.4, 19.5]})
    harm = pd.DataFrame([{"dimension": "eval_language", "value": lang, "n": 50, "mean": rng.normal(1, 1),
                          "win_rate": rng.uniform(40, 80), "harm_rate": rng.uniform(0, 20)} for lang in langs])
    variance = pd.DataFrame([
        {"subset": subset, "scope": scope, "spec": spec, "component": comp, "variance": v, "share": 100 * v / 4.0}
        for subset in ("all", "curated") for scope in ("transfer", "MT-CL", "CT-ML", "CT-CL")
        for spec in ("crossed", "nested")
        for comp, v in zip(("model", "source", "target", "residual"), (1.0, 0.5, 0.5, 2.0))])
    consistency = pd.DataFrame([
        {"variant": variant, "regime": regime, "source": c, "index": float(np.clip(rng.normal(0.4, 0.3), -1, 1)),
         "n_models": 3, "n_recipients": 3}
        for variant in ("model", "family") for regime in ("MT-CL", "CT-ML", "CT-CL") for c in cells])
    summary = (consistency.groupby(["variant", "regime"])["index"]
               .agg(median="median", q1=lambda s: s.quantile(0.25), q3=lambda s: s.quantile(0.75), n_sources="size")
               .reset_index())
    pairs = pd.DataFrame([{"source_language": a, "target_language": b, "delta": rng.normal(1, 1),
                           "syntax_knn": rng.uniform(0, 1), "phonology_knn": rng.uniform(0, 1)}
                          for a in langs for b in langs if a != b])
    ling = pd.DataFrame({"distance": ["syntax_knn", "phonology_knn"], "n": [len(pairs)] * 2,
                         "spearman_rho": [-0.2, 0.05], "spearman_p": [0.04, 0.7], "pearson_r": [-0.25, 0.1],
                         "pearson_p": [0.03, 0.5], "permutation_p": [0.2, 0.8]})
    sizes = {"qwen2.5-0.5b": 0.5, "qwen2.5-1.5b": 1.5, "llama3.2-1b": 1.0}
    pareto = (on_off.assign(size_b=on_off["model_name"].map(sizes).fillna(1.0))
              .groupby(["model_name", "family", "size_b", "source_task"], as_index=False)
              .agg(mt_cl_mean=("mt_cl_mean", "mean"), off_task_mean=("off_task_mean", "mean"),
                   n_languages=("source_lang", "nunique")))
    return {
        "uplift_summary": uplift, "harm_breakdown": harm, "pareto_family_summary": pareto,
        "language_roles": roles("language", langs), "task_roles": roles("task", tasks),
        "family_roles": pd.concat([roles("name", langs).assign(family=f, unit="language")
                                   for f in sorted(set(FAMILY.values()))], ignore_index=True)
                          [["family", "unit", "name", "donor", "donor_se", "recipient", "recipient_se", "n_models"]],
        "curated_vs_translated": pd.DataFrame({"rho": [0.6], "p": [0.2], "n": [len(langs)]}),
        "on_off_task": on_off, "grid_matrix": grid, "language_matrix": lang_m, "task_matrix": task_m,
        "variance_decomposition": variance, "consistency": consistency, "consistency_summary": summary,
        "ling_pairs": pairs, "ling_correlation": ling,
    }
