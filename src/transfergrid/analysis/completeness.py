"""Grid completeness of per-seed results: every missing (model, source, target, seed), named.

The per-seed frame (see `transfergrid.ingest`) has one row per (model_name, source, target, seed)
with source "base" for the base model; a base row without a seed stands for every seed. The
expected grid is the union of what the frame shows: every model × every fine-tuned source × every
target × every seed (or the seeds the user names), and a base score for every model × target ×
seed. A model that was never fine-tuned on some source, a target one model lacks, a seed that
one adapter misses: each shows up as its own missing entries, so a gap is found before the
seed aggregation, not as a silently thinner mean.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pandas as pd

BASE = "base"
MISSING_COLUMNS = ["kind", "model_name", "source", "target", "seed"]


def missing_entries(per_seed: pd.DataFrame, seeds: Iterable[object] | None = None) -> tuple[pd.DataFrame, int]:
    """(missing entries, number expected). Entries are rows of `MISSING_COLUMNS`, kind "base" or
    "fine-tuned" (a base entry's source is "base"). `seeds` replaces the seeds seen in the frame."""
    is_base = per_seed["source"] == BASE
    ft, base = per_seed.loc[~is_base], per_seed.loc[is_base]
    models = sorted(per_seed["model_name"].unique())
    sources = sorted(ft["source"].unique())
    targets = sorted(per_seed["target"].unique())
    if seeds is None:
        seeds = sorted({s for s in normalize_seeds(per_seed["seed"]) if s is not None})
    seeds = list(seeds) or [None]

    have_ft = set(zip(ft["model_name"], ft["source"], ft["target"], normalize_seeds(ft["seed"])))
    have_base = set(zip(base["model_name"], base["target"], normalize_seeds(base["seed"])))
    rows = []
    for model, target in itertools.product(models, targets):
        for seed in seeds:
            if (model, target, seed) not in have_base and (model, target, None) not in have_base:
                rows.append((BASE, model, BASE, target, seed))
    for model, source, target, seed in itertools.product(models, sources, targets, seeds):
        if (model, source, target, seed) not in have_ft:
            rows.append(("fine-tuned", model, source, target, seed))
    expected = len(models) * len(targets) * len(seeds) * (1 + len(sources))
    return pd.DataFrame(rows, columns=MISSING_COLUMNS), expected


def normalize_seeds(values: pd.Series) -> list:
    """Seeds as ints, None where absent (a column holding None turns ints into floats)."""
    return [None if pd.isna(v) else int(v) if float(v).is_integer() else v for v in values]


def _top(counts: pd.Series, k: int = 3) -> str:
    shown = ", ".join(f"{name} {n}" for name, n in counts.head(k).items())
    return shown + (f", +{len(counts) - k} more" if len(counts) > k else "")


def describe_missing(missing: pd.DataFrame, expected: int, examples: int = 5) -> str:
    """One line: how many entries are missing, by kind, model, source and seed, with examples."""
    if missing.empty:
        return f"grid complete: all {expected} (model, source, target, seed) entries present"
    kinds = missing["kind"].value_counts()
    by = {col: missing.groupby(col, dropna=False).size().sort_values(ascending=False, kind="stable")
          for col in ("model_name", "source", "seed")}
    shown = "; ".join(f"({r.model_name}, {r.source}, {r.target}, seed {_seed(r.seed)})"
                      for r in missing.head(examples).itertuples())
    more = f" and {len(missing) - examples} more" if len(missing) > examples else ""
    return (f"grid incomplete: {len(missing)} of {expected} (model, source, target, seed) entries missing "
            f"({', '.join(f'{n} {k}' for k, n in kinds.items())}); by model: {_top(by['model_name'])}; "
            f"by source: {_top(by['source'])}; by seed: {_top(by['seed'].rename(index=_seed))}; "
            f"e.g. {shown}{more}")


def _seed(seed: object) -> str:
    return "any" if seed is None or (isinstance(seed, float) and pd.isna(seed)) else str(seed)
