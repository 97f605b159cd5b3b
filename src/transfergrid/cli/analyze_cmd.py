"""Commands: analyze, report, recommend — the study-1 analysis of a results CSV (released schema).

Input is a study file (its exported `<output_dir>/results.csv`) or any CSV in the released schema
(`--results`). A relatedness (study-2) study file is analysed from its exported per-item records
(`<output_dir>/relatedness_items.parquet`) instead. `analyze` writes DIR/tables/*.csv, DIR/figures/*.{png,svg} and DIR/report.html; it
builds everything in a hidden sibling directory and moves it into place at the end, so a failure
leaves DIR as it was.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401
from transfergrid.cli.tables import (
    FormatOpt,
    check_format,
    plain,
    print_table,
    write_csv,
    write_json,
)
from transfergrid.errors import UserError

log = logging.getLogger(__name__)

Opt = typer.Option
Arg = typer.Argument

RESULTS_FILE = "results.csv"  # where `transfergrid run` / `export` put a study's tidy cell frame
ANALYSIS_DIR = "analysis"  # default output folder inside the study's output_dir


# --- inputs -------------------------------------------------------------------------------------------
def _load_study(path: Path, kinds: tuple[str, ...] = ("transfer",)):
    from transfergrid.study import load_study

    study = load_study(path)
    if study.kind not in kinds:
        raise UserError(f"{path}: study {study.name!r} is a {study.kind} study; this command works on "
                        f"{' or '.join(kinds)} studies")
    return study


def _one_input(study_file: Path | None, results: Path | None) -> None:
    if (study_file is None) == (results is None):
        raise UserError("give either a STUDY file or --results FILE.csv (exactly one)")


def _results_path(study_file: Path | None, results: Path | None):
    """(study or None, path of the results CSV)."""
    _one_input(study_file, results)
    if results is not None:
        return None, results
    study = _load_study(study_file)
    path = study.output_path() / RESULTS_FILE
    if not path.is_file():
        raise UserError(f"{path}: no exported results for study {study.name!r}; run `transfergrid run "
                        f"{study_file}` (or `transfergrid export`) first, or pass --results FILE.csv")
    return study, path


def _read_frame(path: Path):
    from transfergrid.analysis.frame import prepare, read_results

    frame = prepare(read_results(path))
    if frame.empty:
        raise UserError(f"{path}: no rows with a Δ to analyse")
    return frame


def _summary(frame, results: Path) -> dict[str, object]:
    """The report header's configuration when there is no study file."""
    tasks = set(frame["source_task"]) | set(frame["target_task"])
    langs = set(frame["source_lang"]) | set(frame["target_lang"])
    seeds = frame["n_seeds"].max() if "n_seeds" in frame else float("nan")
    summary: dict[str, object] = {"results": str(results), "models": sorted(frame["model_name"].unique()),
                                  "tasks": sorted(tasks), "languages": sorted(langs), "cells": len(frame)}
    if pd.notna(seeds):
        summary["seeds per cell (max)"] = int(seeds)
    return summary


def _default_out(study, out: Path | None, what: str = "--out DIR") -> Path:
    if out is not None:
        return out
    if study is not None:
        return study.output_path() / ANALYSIS_DIR
    raise UserError(f"with --results, give {what} for the tables, figures and report")


def items_near(results: Path):
    """The per-item results exported next to a results CSV (`run`: <dir>/items.parquet; `export`:
    <stem>.items.parquet), only the columns the uncertainty analysis reads; None when absent."""
    from transfergrid.analysis.uncertainty import ITEM_COLUMNS

    for path in (results.with_name(results.stem + ".items.parquet"), results.parent / "items.parquet"):
        if path.is_file() and (path.name != "items.parquet" or results.name == RESULTS_FILE):
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
            if not set(ITEM_COLUMNS) <= names:
                return None
            return pd.read_parquet(path, columns=[c for c in (*ITEM_COLUMNS, "correct_norm") if c in names])
    return None


def uncertainty_inputs(frame, results: Path, study=None) -> dict:
    """compute_tables' `items` / `uses_norm` for a results CSV; says when intervals over items are
    unavailable (a CSV without the uncertainty columns, such as the release)."""
    from transfergrid.analysis.intervals import ITEMS_UNAVAILABLE, has_cell_uncertainty

    items = items_near(results)
    if not has_cell_uncertainty(frame) and items is None:
        console.print(f"{results}: {ITEMS_UNAVAILABLE}; rates get Wilson intervals and donor / recipient "
                      "scores intervals over models only", soft_wrap=True, highlight=False)
    uses_norm = None
    if study is not None:
        from transfergrid.export import headline_uses_norm

        def uses_norm(task: str) -> bool:
            return headline_uses_norm(study, task)
    return {"items": items, "uses_norm": uses_norm}


# --- outputs ------------------------------------------------------------------------------------------
def _publish(staging: Path, out: Path) -> None:
    """Move each finished entry of `staging` into `out`, replacing what was there (only our own
    entries: tables/, figures/, report.html; other files in `out` are left alone)."""
    out.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.exists():
            old = staging / f".old-{entry.name}"
            target.rename(old)
            entry.rename(target)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            entry.rename(target)


def _ling_pairs(frame, correlation) -> pd.DataFrame:
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


def _relatedness_section(tables: dict, figures: list[Path]):
    """Study-2 tables and figures found next to study-1 ones become an extra report section."""
    from transfergrid.report.relatedness_figures import FIGURES as REL_FIGURES
    from transfergrid.report.relatedness_figures import TABLES as REL_TABLES

    rel_tables = {name: tables.pop(name) for name in list(tables) if name in REL_TABLES}
    rel_figures = [p for p in figures if p.stem in REL_FIGURES]
    figures[:] = [p for p in figures if p.stem not in REL_FIGURES]
    if not rel_tables and not rel_figures:
        return []
    return [("Relatedness vs task alignment (study 2)", rel_figures, rel_tables)]


def _title(study, results: Path | None) -> str:
    if study is not None:
        return f"{'Relatedness' if study.kind == 'relatedness' else 'Transfer'} study: {study.name}"
    return f"Transfer analysis: {results.name}" if results is not None else "Transfer analysis"


@app.command("analyze")
def analyze_command(
    study_file: Annotated[Path | None, Arg(metavar="STUDY", help="study file (reads <output_dir>/results.csv)")] = None,
    results: Annotated[Path | None, Opt("--results", "-r", help="a results CSV in the released schema")] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="output folder (default with STUDY: <output_dir>/analysis)")] = None,
    tolerance: Annotated[float, Opt("--tolerance", min=0.0, help="pp added to both win / harm comparisons "
                                    "(default 0: the reference's exact Δ > 0 and Δ ≤ −1)")] = 0.0,
) -> None:
    """Every table (CSV, Markdown, LaTeX), figure (PNG + SVG) and the self-contained HTML report."""
    from transfergrid.analysis.tables import compute_tables, write_tables
    from transfergrid.report.figures import write_figures
    from transfergrid.report.html import write_report

    if study_file is not None and results is None:
        study = _load_study(study_file, ("transfer", "relatedness"))
        if study.kind == "relatedness":
            _analyze_relatedness(study, study_file, _default_out(study, out))
            return
    study, path = _results_path(study_file, results)
    out = _default_out(study, out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    frame = _read_frame(path)
    tables = compute_tables(frame, tolerance=tolerance, **uncertainty_inputs(frame, path, study))
    tables["ling_pairs"] = _ling_pairs(frame, tables.get("ling_correlation"))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        write_tables(tables, staging / "tables")
        figures = write_figures(tables, staging / "figures")
        write_report(staging, tables, figures, title=_title(study, path), study=study or _summary(frame, path),
                     tolerance=tolerance)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    n_png = sum(1 for p in figures if p.suffix == ".png")
    console.print(f"{len(tables)} tables, {n_png} figures and the report in {out}; open {out / 'report.html'}",
                  soft_wrap=True)


def _analyze_relatedness(study, study_file: Path, out: Path) -> None:
    """Study 2: the per-item records exported by `transfergrid run` -> tables, figures, report."""
    from transfergrid.relatedness_export import ITEMS_FILE, read_item_frame
    from transfergrid.report.relatedness_html import write_relatedness_analysis

    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    path = study.output_path() / ITEMS_FILE
    if not path.is_file():
        raise UserError(f"{path}: no exported per-item results for study {study.name!r}; run "
                        f"`transfergrid run {study_file}` first")
    frame = read_item_frame(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        tables, figures, _ = write_relatedness_analysis(study, frame, staging)
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    console.print(f"{len(tables)} tables, {len(figures)} figures and the report in {out}; "
                  f"open {out / 'report.html'}", soft_wrap=True)


@app.command("report")
def report_command(
    study_file: Annotated[Path | None, Arg(metavar="STUDY", help="study file (its <output_dir>/analysis)")] = None,
    results: Annotated[Path | None, Opt("--results", "-r", help="recompute the tables from this CSV")] = None,
    from_dir: Annotated[Path | None, Opt("--from", help="a folder written by `transfergrid analyze`")] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="where report.html goes (default: the --from folder)")] = None,
) -> None:
    """Rebuild report.html only, from existing tables and figures (no figure is redrawn)."""
    from transfergrid.report.html import read_tables, write_report

    given = [x for x in (study_file, results, from_dir) if x is not None]
    if len(given) != 1:
        raise UserError("give exactly one of STUDY, --results FILE.csv or --from DIR")
    study, header, title = None, None, "Transfer analysis"
    if results is not None:
        if out is None:
            raise UserError("with --results, give --out DIR (a folder with figures/ from `transfergrid analyze`)")
        from transfergrid.analysis.tables import compute_tables

        frame = _read_frame(results)
        tables = compute_tables(frame, **uncertainty_inputs(frame, results))
        header, title, source = _summary(frame, results), _title(None, results), out
    else:
        if study_file is not None:
            study = _load_study(study_file, ("transfer", "relatedness"))
            from_dir = study.output_path() / ANALYSIS_DIR
            title = _title(study, None)
        source = from_dir
        if not (source / "tables").is_dir():
            raise UserError(f"{source / 'tables'}: no tables to report; run `transfergrid analyze` first")
        tables = read_tables(source / "tables")
        if not tables:
            raise UserError(f"{source / 'tables'}: no CSV tables found; run `transfergrid analyze` first")
        out = out or source
    figures = sorted((source / "figures").glob("*.png")) if (source / "figures").is_dir() else []
    extra = _relatedness_section(tables, figures)
    path = write_report(out, tables, figures, title=title, study=study or header, extra_sections=extra)
    console.print(f"report: {path} ({len(tables)} tables, {len(figures)} figures)", soft_wrap=True)


def _parse_targets(text: str) -> list[str]:
    from transfergrid.records import Cell

    cells = [str(Cell.parse(part.strip())) for part in text.split(",") if part.strip()]
    if not cells:
        raise UserError("--targets: expected TASK:LANG[,TASK:LANG...], for example arc_challenge:hi,mmlu:hi")
    return cells


@app.command("recommend")
def recommend_command(
    targets: Annotated[str, Opt("--targets", "-t", help="target cells, e.g. arc_challenge:hi,global_mmlu:hi")],
    study_file: Annotated[Path | None, Arg(metavar="STUDY", help="study file (reads <output_dir>/results.csv)")] = None,
    results: Annotated[Path | None, Opt("--results", "-r", help="a results CSV in the released schema")] = None,
    max_harm: Annotated[float | None, Opt("--max-harm", help="highest tolerated off-target harm rate, in % "
                                               "of cells with Δ ≤ −1 pp")] = None,
    top: Annotated[int, Opt("--top", "-n", min=1, help="how many source cells to show")] = 10,
    fmt: FormatOpt = "table",
) -> None:
    """Rank source cells to fine-tune on by expected gain on the targets and off-target harm risk."""
    from transfergrid.analysis.recommend import recommend
    from transfergrid.cli.app import err_console
    from transfergrid.report.html_parts import format_value

    check_format(fmt)
    cells = _parse_targets(targets)
    _, path = _results_path(study_file, results)
    frame = _read_frame(path)
    kwargs = {} if max_harm is None else {"max_harm": max_harm}
    ranked = recommend(frame, cells, **kwargs)
    shown = ranked.head(top)
    columns = [str(c) for c in shown.columns]
    rows = list(shown.itertuples(index=False, name=None))
    notes = console if fmt == "table" else err_console  # stdout holds only the CSV / JSON
    if fmt == "csv":
        write_csv(columns, rows)
    elif fmt == "json":
        write_json([dict(zip(columns, map(plain, row))) for row in rows])
    if ranked.empty:
        notes.print("no source cell meets the harm tolerance" if max_harm is not None
                    else "no source cell has results on these targets")
        return
    if fmt == "table":
        numeric = [str(c) for c in shown.columns if shown[c].dtype.kind in "fiu"]
        title = f"Source cells for {', '.join(cells)}" + (
            f" (off-target harm rate ≤ {max_harm:g}%)" if max_harm is not None else "")
        shown_rows = [[format_value(v, c) for c, v in zip(columns, row)] for row in rows]
        print_table(console, title, columns, shown_rows, key={"rank", "source"}, numeric=numeric,
                    title_justify="left")
    if len(ranked) > top:
        notes.print(f"({len(ranked) - top} more; --top N to show more)")
