"""A simulated transfer grid with known structure, in the released schema (tests, demos, benchmarks).

Per model m, source cell s, target cell g and seed k (Δ in pp):

    Δ = shift[regime] + a_m + b_s + c_g + e_msg + ε_msgk
    a ~ N(0, sd_model²), b ~ N(0, sd_source²), c ~ N(0, sd_target²), e ~ N(0, sd_cell²), ε ~ N(0, sd_seed²)

A row holds the seed mean, so within one regime the crossed variance components of the row-level
Δ are sd_model², sd_source², sd_target² and sd_cell² + sd_seed²/n_seeds (the residual).
Base scores are drawn per (model, target); fine-tuned scores are base + Δ/100. ARC and HellaSwag
carry acc_norm (the headline) with acc a little off it; other tasks have acc only (norm columns empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from transfergrid.analysis.frame import RESULT_COLUMNS, has_norm, parse_size
from transfergrid.analysis.regimes import regime

REFERENCE_TASKS = ["arc_challenge", "global_mmlu", "hellaswag", "truthfulqa"]
REFERENCE_LANGUAGES = ["ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh"]
REFERENCE_MODELS = ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct",
                    "Qwen2.5-0.5B-Instruct", "Qwen2.5-1.5B-Instruct", "Qwen2.5-3B-Instruct",
                    "Qwen2.5-7B-Instruct", "gemma-3-1b-it", "gemma-3-4b-it"]
DEFAULT_SD = {"model": 1.0, "source": 0.8, "target": 1.2, "cell": 1.5, "seed": 1.0}
DEFAULT_SHIFT = {"MT-ML": 2.0, "MT-CL": 1.2, "CT-ML": 0.8, "CT-CL": 0.8}


def simulate_results(tasks: Sequence[str] = REFERENCE_TASKS, languages: Sequence[str] = REFERENCE_LANGUAGES,
                     models: Sequence[str] | int = REFERENCE_MODELS, seeds: Sequence[int] | int = 3,
                     seed: int = 0, *, sd: Mapping[str, float] | None = None,
                     shift: Mapping[str, float] | None = None) -> pd.DataFrame:
    """A full grid (every model × source × target) in `frame.RESULT_COLUMNS`. The true standard
    deviations and shifts are in `.attrs["truth"]`."""
    from transfergrid.model_names import infer_family_size

    rng = np.random.default_rng(seed)
    sd = {**DEFAULT_SD, **(sd or {})}
    shift = {**DEFAULT_SHIFT, **(shift or {})}
    if isinstance(models, int):
        models = [f"sim-{i}-{0.5 * (i + 1):g}B" for i in range(models)]
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    cells = [(t, lang) for t in tasks for lang in languages]
    n_m, n_c = len(models), len(cells)

    a = rng.normal(0, sd["model"], n_m)[:, None, None]
    b = rng.normal(0, sd["source"], n_c)[None, :, None]
    c = rng.normal(0, sd["target"], n_c)[None, None, :]
    regimes = np.array([[regime(s[0], s[1], g[0], g[1]) for g in cells] for s in cells])
    mean = np.vectorize(shift.get)(regimes)[None] + a + b + c + rng.normal(0, sd["cell"], (n_m, n_c, n_c))
    delta = mean[..., None] + rng.normal(0, sd["seed"], (n_m, n_c, n_c, n_seeds))  # pp, per seed
    base = rng.uniform(0.3, 0.6, (n_m, 1, n_c, 1))
    base_norm = np.clip(base + rng.uniform(0.0, 0.08, base.shape), 0, 1)
    norm_task = np.array([has_norm(t) for t, _ in cells])[None, None, :, None]
    # The headline metric moves by Δ; the other metric by Δ plus a little metric noise.
    headline_base = np.where(norm_task, base_norm, base)
    headline_ft = np.clip(headline_base + delta / 100.0, 0, 1)
    other_base = np.where(norm_task, base, base_norm)
    other_ft = np.clip(other_base + (delta + rng.normal(0, 0.5, delta.shape)) / 100.0, 0, 1)
    ft = np.where(norm_task, other_ft, headline_ft)
    ft_norm = np.where(norm_task, headline_ft, np.nan)
    base_norm = np.where(norm_task, headline_base, np.nan)
    base_seeds = np.broadcast_to(base, delta.shape)
    base_norm_seeds = np.broadcast_to(base_norm, delta.shape)

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        std = x.std(axis=-1, ddof=1) if n_seeds > 1 else np.full(x.shape[:-1], np.nan)
        return x.mean(axis=-1), std, std / np.sqrt(n_seeds)

    cols: dict[str, np.ndarray] = {}
    for name, values in [("score", ft), ("score_base", base_seeds), ("score_norm", ft_norm),
                         ("score_norm_base", base_norm_seeds), ("delta_score", 100.0 * (ft - base_seeds)),
                         ("delta_score_norm", 100.0 * (ft_norm - base_norm_seeds))]:
        m, s, se = stats(values)
        cols[f"{name}_mean"], cols[f"{name}_std"], cols[f"{name}_se"] = m.ravel(), s.ravel(), se.ravel()

    mi, si, gi = (ix.ravel() for ix in np.meshgrid(np.arange(n_m), np.arange(n_c), np.arange(n_c), indexing="ij"))
    names = np.array(models, dtype=object)
    sizes = np.array([infer_family_size(m)[1] or np.nan for m in models], dtype=float)
    frame = pd.DataFrame({
        "model_name": names[mi], "model_size": sizes[mi],
        "fine_tuned_dataset": [cells[i][0] for i in si], "fine_tuned_language": [cells[i][1] for i in si],
        "eval_dataset": [cells[i][0] for i in gi], "eval_language": [cells[i][1] for i in gi],
        "regime": regimes[si, gi], "n_seeds": float(n_seeds), **cols,
    })
    frame = frame[RESULT_COLUMNS]
    frame.attrs["truth"] = {"sd": sd, "shift": shift, "n_seeds": n_seeds}
    return frame


__all__ = ["REFERENCE_LANGUAGES", "REFERENCE_MODELS", "REFERENCE_TASKS", "parse_size", "simulate_results"]
