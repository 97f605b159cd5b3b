"""Study 1 ("Donors and Recipients"): the store → results.csv (released schema) + items.parquet →
every analysis table (`analysis.tables`, plus the language-pair distances) → figures and report.html.

`write_analysis` is the one place a study-1 output folder is made: `transfergrid analyze` (a study's
export or any CSV in the released schema), and the report at the end of `transfergrid run`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from transfergrid.errors import UserError
from transfergrid.studies.base import REPORT_DIR, Analysis, Exported
from transfergrid.studies.publish import moved, staged, write_csv

RESULTS_FILE = "results.csv"  # the tidy cell frame `run` exports into the results folder
ITEMS_FILE = "items.parquet"  # its per-item scores (the uncertainty analysis' input)


# --- inputs -------------------------------------------------------------------------------------------
def read_frame(path: Path) -> pd.DataFrame:
    """The prepared cell frame of a results CSV; a user error when it has no Δ to analyse."""
    from transfergrid.analysis.frame import prepare, read_results

    frame = prepare(read_results(path))
    if frame.empty:
        raise UserError(f"{path}: no rows with a Δ to analyse")
    return frame


def exported_results(study, results_dir: Path, study_file: Path | None = None) -> Path:
    """<results_dir>/results.csv; a user error naming the command that writes it when absent."""
    path = Path(results_dir) / RESULTS_FILE
    if not path.is_file():
        run = f"transfergrid run {study_file}" if study_file else "transfergrid run"
        raise UserError(f"{path}: no exported results for study {study.name!r}; run `{run}` (or "
                        "`transfergrid export`) first, or pass --results FILE.csv")
    return path


def items_near(results: Path):
    """The per-item results exported next to a results CSV (`run`: <dir>/items.parquet; `export`:
    <stem>.items.parquet), only the columns the uncertainty analysis reads; None when absent."""
    from transfergrid.analysis.uncertainty import ITEM_COLUMNS

    for path in (results.with_name(results.stem + ".items.parquet"), results.parent / ITEMS_FILE):
        if path.is_file() and (path.name != ITEMS_FILE or results.name == RESULTS_FILE):
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
            if not set(ITEM_COLUMNS) <= names:
                return None
            return pd.read_parquet(path, columns=[c for c in (*ITEM_COLUMNS, "correct_norm") if c in names])
    return None


def uncertainty_inputs(frame, results: Path, study=None) -> tuple[dict, tuple[str, ...]]:
    """(compute_tables' `items` / `uses_norm` for a results CSV, notes): a note says when intervals
    over items are unavailable (a CSV without the uncertainty columns, such as the release)."""
    from transfergrid.analysis.intervals import ITEMS_UNAVAILABLE, has_cell_uncertainty

    items = items_near(results)
    notes: tuple[str, ...] = ()
    if not has_cell_uncertainty(frame) and items is None:
        note = (f"{results}: {ITEMS_UNAVAILABLE}; rates get Wilson intervals and donor / recipient scores "
                "intervals over models only")
        notes = (note,)
    uses_norm = None
    if study is not None:
        from transfergrid.export import headline_uses_norm

        def uses_norm(task: str) -> bool:
            return headline_uses_norm(study, task)
    return {"items": items, "uses_norm": uses_norm}, notes


def results_summary(frame, results: Path) -> dict[str, object]:
    """The report header's configuration when there is no study file."""
    tasks = set(frame["source_task"]) | set(frame["target_task"])
    langs = set(frame["source_lang"]) | set(frame["target_lang"])
    seeds = frame["n_seeds"].max() if "n_seeds" in frame else float("nan")
    summary: dict[str, object] = {"results": str(results), "models": sorted(frame["model_name"].unique()),
                                  "tasks": sorted(tasks), "languages": sorted(langs), "cells": len(frame)}
    if pd.notna(seeds):
        summary["seeds per cell (max)"] = int(seeds)
    return summary


def title(study, results: Path | None) -> str:
    if study is not None:
        return f"{KIND.title} study: {study.name}"
    return f"Transfer analysis: {results.name}" if results is not None else "Transfer analysis"


# --- analysis -----------------------------------------------------------------------------------------
def ling_pairs(frame, correlation) -> pd.DataFrame:
    """Per ordered language pair: mean MT-CL Δ and each distance that ling_correlation used (the data
    behind the Δ-vs-distance figure; empty when there is no correlation to show)."""
    if correlation is None or correlation.empty:
        return pd.DataFrame()
    from transfergrid.analysis.distance import distance_matrices, language_pair_delta

    delta = language_pair_delta(frame)
    languages = sorted(set(delta.index) | set(delta.columns))
    pairs = delta.stack().rename("delta").rename_axis(["source_lang", "target_lang"]).reset_index()
    pairs = pairs[pairs["source_lang"] != pairs["target_lang"]]
    wanted = set(correlation["distance"])
    for name, matrix in distance_matrices(languages, urielplus=any(d.startswith("urielplus") for d in wanted)).items():
        if name in wanted:
            pairs[name] = [matrix.at[a, b] if a in matrix.index and b in matrix.columns else float("nan")
                           for a, b in zip(pairs["source_lang"], pairs["target_lang"])]
    return pairs.reset_index(drop=True)


def analysis_tables(frame, results: Path, study=None, *, tolerance: float = 0.0
                    ) -> tuple[dict[str, pd.DataFrame], tuple[str, ...]]:
    """(every study-1 table of `frame`, read from `results`, notes): `compute_tables` with the
    per-item uncertainty inputs found beside `results`, and the language pairs of the Δ-vs-distance
    figure."""
    from transfergrid.analysis.tables import compute_tables

    inputs, notes = uncertainty_inputs(frame, results, study)
    tables = compute_tables(frame, tolerance=tolerance, **inputs)
    tables["ling_pairs"] = ling_pairs(frame, tables.get("ling_correlation"))
    return tables, notes


def cot_sections(zero_shot, results: Path, out_dir: Path, study=None, tolerance: float = 0.0
                 ) -> tuple[list, tuple[str, ...]]:
    """(the chain-of-thought variant's report section, notes) when a <stem>_cot.csv lies beside
    `results` (`evaluation.cot`, cot_export.py); its tables and figures go to out_dir/cot."""
    from transfergrid.cot_export import cot_path
    from transfergrid.report.cot_section import cot_section

    path = cot_path(results)
    if not path.is_file():
        return [], ()
    cot = read_frame(path)
    inputs, notes = uncertainty_inputs(cot, path, study)
    return cot_section(zero_shot, cot, out_dir, tolerance=tolerance, **inputs), notes


def write_analysis(frame, results: Path, out: Path, *, study=None, tolerance: float = 0.0) -> Analysis:
    """Every table (CSV, Markdown, LaTeX), figure (PNG + SVG) and report.html of `frame` into `out`
    (built aside and moved into place); the report header is `study`, or a summary of `results`."""
    from transfergrid.analysis.tables import write_tables
    from transfergrid.report.figures import write_figures
    from transfergrid.report.html import write_report

    with staged(out) as staging:  # checks `out` before the tables are computed
        tables, notes = analysis_tables(frame, results, study, tolerance=tolerance)
        write_tables(tables, staging / "tables")
        figures = write_figures(tables, staging / "figures")
        extra, cot_notes = cot_sections(frame, results, staging, study, tolerance)
        notes += cot_notes
        write_report(staging, tables, figures, title=title(study, results),
                     study=study or results_summary(frame, results), tolerance=tolerance, extra_sections=extra)
    return Analysis(Path(out), tables, moved(figures, staging, out), Path(out) / "report.html", notes)


# --- the study kind -----------------------------------------------------------------------------------
class TransferStudy:
    name = "transfer"
    title = "Transfer"

    def export(self, study, store, jobs: Sequence, out_dir: Path) -> Exported:
        return self.export_csv(study, store, jobs, Path(out_dir) / RESULTS_FILE, items=Path(out_dir) / ITEMS_FILE)

    def export_csv(self, study, store, jobs: Sequence, path: Path, *, items: Path | None = None,
                   with_items: bool = True) -> Exported:
        """results.csv at `path` and the per-item scores at `items` (default <stem>.items.parquet), from
        one read of the item files; `with_items=False` (`export` without --items): the CSV alone, its
        uncertainty columns from the ids and correctness columns only (docs/benchmarks.md, Grid scale)."""
        from transfergrid.cot_export import write_cot_results
        from transfergrid.export import (
            export_results,
            item_blocks,
            items_table,
            write_table,
        )

        if with_items:
            blocks = item_blocks(study, store, jobs)
            results = export_results(study, store, jobs, blocks=blocks)
            write_table(items_table(study, store, jobs, blocks=blocks), items or path.with_name(path.stem + ".items.parquet"))
        else:
            results = export_results(study, store, jobs)
        write_csv(results, path)
        write_cot_results(study, store, jobs, path, write_csv)  # <stem>_cot.csv with evaluation.cot
        return Exported(path, len(results), "rows")

    def results_file(self, results_dir: Path) -> Path:
        return Path(results_dir) / RESULTS_FILE

    def analyze(self, study, results_dir: Path, out: Path, *, tolerance: float = 0.0,
                study_file: Path | None = None) -> Analysis:
        path = exported_results(study, results_dir, study_file)
        return write_analysis(read_frame(path), path, out, study=study, tolerance=tolerance)

    def report(self, study, results_dir: Path) -> Analysis | None:
        from transfergrid.analysis.frame import prepare, read_results

        path = self.results_file(results_dir)
        frame = prepare(read_results(path))
        if frame.empty:  # nothing evaluated against its base model yet
            return None
        return write_analysis(frame, path, Path(results_dir) / REPORT_DIR, study=study)


KIND = TransferStudy()
