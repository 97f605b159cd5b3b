"""Every study-1 table from one tidy cell frame; the file stems are the interface (issue 6).

`compute_tables` prepares the frame once and runs each analysis; an analysis the grid cannot
support (one model, no curated set, one language, ...) yields an empty table with its columns and
a logged reason, never an error. `write_tables` writes every table as `<stem>.csv`, `.md` and
`.tex` (the appendix Pareto table's `.tex` is the paper's bare rows, `model & task & lang & x & y \\`).
`definitions(tolerance)` says in one line per table which definition it uses (the report shows it).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from transfergrid.analysis import (
    composition,
    cot_compare,
    intervals,
    matrices,
    pareto,
    rates,
    roles,
)
from transfergrid.analysis import consistency as C
from transfergrid.analysis import distance as distance_mod
from transfergrid.analysis import variance as variance_mod
from transfergrid.analysis.frame import ensure_prepared

log = logging.getLogger(__name__)

TABLE_COLUMNS: dict[str, list[str]] = {
    "uplift_summary": rates.UPLIFT_COLUMNS,
    "harm_breakdown": rates.BREAKDOWN_COLUMNS,
    "language_roles": roles.LANGUAGE_ROLE_COLUMNS,
    "task_roles": roles.TASK_ROLE_COLUMNS,
    "family_roles": roles.FAMILY_ROLE_COLUMNS,
    "curated_vs_translated": roles.CURATED_COLUMNS,
    "on_off_task": roles.ON_OFF_COLUMNS,
    "pareto_family_summary": pareto.FAMILY_SUMMARY_COLUMNS,
    "task_on_off_summary": pareto.TASK_SUMMARY_COLUMNS,
    "pareto_appendix": pareto.APPENDIX_COLUMNS,
    "language_family_roles": roles.LANGUAGE_FAMILY_COLUMNS,
    "language_roles_curated": roles.LANGUAGE_ROLE_COLUMNS,
    "language_roles_translated": roles.LANGUAGE_ROLE_COLUMNS,
    "grid_matrix": ["source"],
    "language_matrix": ["source_lang"],
    "task_matrix": ["source_task"],
    "variance_decomposition": variance_mod.VARIANCE_COLUMNS,
    "consistency": C.CONSISTENCY_COLUMNS,
    "consistency_summary": C.SUMMARY_COLUMNS,
    "ling_correlation": distance_mod.LING_COLUMNS,
    "uplift_intervals": intervals.UPLIFT_INTERVAL_COLUMNS,
    "significance_summary": intervals.SIGNIFICANCE_COLUMNS,
    "role_intervals": intervals.ROLE_INTERVAL_COLUMNS,
    "grid_significance": intervals.GRID_SIGNIFICANCE_COLUMNS,
    "composition_cells": composition.CELL_COLUMNS,
    "composition_roles": composition.ROLE_COLUMNS,
}
TABLES = tuple(TABLE_COLUMNS)
SET_TABLES = ("composition_cells", "composition_roles")  # tables of source sets (composition.py)
SUMMARY_TABLES = TABLES  # every table is written as CSV, Markdown and LaTeX


def definitions(tolerance: float = 0.0) -> dict[str, str]:
    """One line per table: the definition it uses (reference = kdymkiewicz/Donors-and-Recipients)."""
    rule = rates.rule(tolerance)
    return {
        "uplift_summary": f"Headline Δ (pp); MT-ML apart from 'transfer' (MT-CL ∪ CT-ML ∪ CT-CL); {rule}.",
        "harm_breakdown": f"MT-CL cells only, by target language, task, size bucket (S ≤ 1.5B < M < 7B ≤ L), "
                          f"family and target construction; {rule}.",
        "language_roles": "MT-CL cells; donor = mean Δ by source language, recipient = by target language; mean per "
                          "model, then across models; SE = std across models (ddof 1) / √models.",
        "task_roles": "CT-ML cells; donor / recipient by source / target task, as language roles.",
        "family_roles": "Language (MT-CL) and task (CT-ML) roles computed within each model family.",
        "curated_vs_translated": "Spearman ρ between language donor scores on curated and on translated targets.",
        "on_off_task": f"Per adapter (model × source cell): mean MT-CL Δ, mean off-task (CT-ML ∪ CT-CL) Δ, "
                       f"off-task harm rate ({rule}); no minimum counts.",
        "pareto_family_summary": f"Adapters with ≥ {pareto.MIN_ON} MT-CL and ≥ {pareto.MIN_OFF} off-task cells "
                                 "(the reference's minimum), averaged over source languages per model and task.",
        "task_on_off_summary": f"Per source task, all models and languages pooled: MT-CL (on) vs CT-ML ∪ CT-CL "
                               f"(off) mean Δ, win and harm rates; {rule}.",
        "pareto_appendix": f"The paper's appendix rows: each adapter with ≥ {pareto.MIN_ON} MT-CL and ≥ "
                           f"{pareto.MIN_OFF} off-task cells; .tex holds the bare LaTeX rows.",
        "language_family_roles": "Mean of language donor / recipient scores (MT-CL) within the reference's language "
                                 "groups: Romance, Germanic, Indic, Chinese, Arabic, Indonesian.",
        "language_roles_curated": "Language roles on MT-CL cells whose target set is curated (Global-MMLU).",
        "language_roles_translated": "Language roles on MT-CL cells whose target set is machine-translated.",
        "grid_matrix": "Mean Δ over models, every source cell × target cell (MT-ML on the diagonal).",
        "language_matrix": "Mean Δ over models and tasks, MT-CL cells, source × target language.",
        "task_matrix": "Mean Δ over models and languages, CT-ML cells, source × target task.",
        "variance_decomposition": "REML random intercepts on transfer cells. nested = the reference's statsmodels "
                                  "MixedLM(groups=model, vc={source, target}); crossed = our recommendation. "
                                  "Subsets as the reference: curated = source or target task curated (Global-MMLU), "
                                  "translated = neither; regimes with < 50 cells skipped.",
        "consistency": "Mean Kendall τ-b between models' rankings of a source's recipients (≥ 3 recipients, "
                       "≥ 2 models); variants: model, family, exact size (reference), size bucket (ours).",
        "consistency_summary": "Median and quartiles of the consistency index over source cells.",
        "ling_correlation": "Mean MT-CL Δ per ordered language pair vs lang2vec cosine distance (reference codes: "
                            "zh → cmn; ISO 639-3 zh → zho rows beside them) and URIEL+; permutation p = Mantel test.",
        "ling_pairs": "Mean MT-CL Δ and each distance per ordered language pair.",
        "uplift_intervals": "Win / harm rates with Wilson 95 % intervals (cells treated as independent).",
        "significance_summary": "Cells whose paired item difference is significant: exact McNemar p, "
                                "Benjamini-Hochberg q < 0.05 across the grid; harmful = significant with Δ < 0.",
        "role_intervals": "Donor / recipient scores with bootstrap 95 % intervals over items and models "
                          "(over models alone without per-item results).",
        "grid_significance": "Per source × target cell: exact sign test on item differences averaged over "
                             "seeds and models, BH across the matrix (the heatmap's dots).",
        "cot_comparison": cot_compare.DEFINITION,  # the CoT variant's section (report/cot_section.py)
        "composition_cells": "Per model × source set × target whose members each have their own row: the set's Δ "
                             "against its members' mean, best and worst Δ (member = the target is one of the set's "
                             "cells; regimes against the set: task / language among the set's).",
        "composition_roles": f"Per source set and scope (its member cells, each regime of the others, transfer): "
                             f"the set's donor score (mean Δ per model, then across models) against its members' "
                             f"mean and best member's on the same cells; {rule}.",
    }


def compute_tables(frame: pd.DataFrame, *, variance: bool = True, distance: bool = True,
                   urielplus: bool = True, permutations: int = distance_mod.PERMUTATIONS,
                   items: pd.DataFrame | None = None, uses_norm=None,
                   tolerance: float = 0.0) -> dict[str, pd.DataFrame]:
    """All tables by file stem (`TABLES` order). `variance=False` / `distance=False` leave those
    tables empty; `urielplus=False` keeps only the lang2vec distances. `tolerance` (pp) widens the
    win / harm comparisons (opt-in; 0 = the reference's exact rule, `rates`). `items`
    (export_items' per-item frame; `uses_norm`: task -> headline is acc_norm) gives the role
    intervals and grid marks their item bootstrap and tests (intervals.py)."""
    df = ensure_prepared(frame)
    paired = intervals.paired_or_none(items, uses_norm)
    profiles = pareto.pareto_profiles(df, tolerance)
    steps: dict[str, Callable[[], pd.DataFrame]] = {
        "uplift_summary": lambda: rates.uplift_summary(df, tolerance),
        "harm_breakdown": lambda: rates.harm_breakdown(df, tolerance=tolerance),
        "language_roles": lambda: roles.language_roles(df),
        "task_roles": lambda: roles.task_roles(df),
        "family_roles": lambda: roles.family_roles(df),
        "curated_vs_translated": lambda: roles.curated_vs_translated(df),
        "on_off_task": lambda: roles.on_off_task(df, tolerance),
        "pareto_family_summary": lambda: pareto.pareto_family_summary(profiles),
        "task_on_off_summary": lambda: pareto.task_on_off_summary(df, tolerance),
        "pareto_appendix": lambda: pareto.pareto_appendix(profiles),
        "language_family_roles": lambda: roles.language_family_roles(df),
        "language_roles_curated": lambda: roles.language_roles_on(df, "curated"),
        "language_roles_translated": lambda: roles.language_roles_on(df, "translated"),
        "grid_matrix": lambda: matrices.grid_matrix(df),
        "language_matrix": lambda: matrices.language_matrix(df),
        "task_matrix": lambda: matrices.task_matrix(df),
        "consistency": lambda: C.consistency(df),
        "uplift_intervals": lambda: intervals.uplift_intervals(df),
        "significance_summary": lambda: intervals.significance_summary(df),
        "role_intervals": lambda: intervals.role_intervals(df, paired),
        "grid_significance": lambda: intervals.grid_significance(df, paired),
        "composition_cells": lambda: composition.composition_cells(df),
        "composition_roles": lambda: composition.composition_roles(df, tolerance),
    }
    if variance:
        steps["variance_decomposition"] = lambda: variance_mod.variance_decomposition(df)
    if distance:
        steps["ling_correlation"] = lambda: distance_mod.ling_correlation(
            df, permutations=permutations, urielplus=urielplus)
    tables: dict[str, pd.DataFrame] = {}
    has_sets = composition.has_sets(df)  # the composition tables exist only for a grid with source sets
    for name in TABLES:
        start = time.perf_counter()
        if name == "consistency_summary":
            tables[name] = C.consistency_summary(tables["consistency"])
        elif name in steps:
            tables[name] = steps[name]()
        else:
            log.info("%s: not computed (switched off)", name)
            tables[name] = pd.DataFrame(columns=TABLE_COLUMNS[name])
            continue
        if tables[name].empty:
            quiet = name in SET_TABLES and not has_sets  # no line for tables the grid cannot have
            (log.debug if quiet else log.info)("%s: empty for this grid", name)
        log.debug("%s: %.2f s", name, time.perf_counter() - start)
    return tables


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike) -> list[Path]:
    """`<stem>.csv`, `<stem>.md` and `<stem>.tex` for every table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        path = out / f"{name}.csv"
        _atomic_write(path, table.to_csv(index=False))
        written.append(path)
        md, tex = out / f"{name}.md", out / f"{name}.tex"
        _atomic_write(md, table.to_markdown(index=False, floatfmt=".3g") + "\n" if not table.empty else
                      "| " + " | ".join(table.columns) + " |\n")
        if name == "pareto_appendix":
            _atomic_write(tex, pareto.appendix_latex_rows(table))
        else:
            _atomic_write(tex, table.to_latex(index=False, float_format="%.3g", na_rep="--"))
        written += [md, tex]
    return written
