"""Commands: analyze, report, recommend — a study's exported results, or any results CSV, to tables,
figures and the HTML report.

Input is a study file (the study kind reads its own export from <output_dir>: `transfergrid.studies`)
or any CSV in the released schema (`--results`, study 1). `analyze` writes DIR/tables/*.csv,
DIR/figures/*.{png,svg} and DIR/report.html; it builds everything in a hidden sibling directory and
moves it into place at the end, so a failure leaves DIR as it was. These commands only wire.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

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
from transfergrid.studies import KINDS, for_study
from transfergrid.studies import transfer as T

log = logging.getLogger(__name__)

Opt = typer.Option
Arg = typer.Argument

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
    return study, T.exported_results(study, study.output_path(), study_file)


def _default_out(study, out: Path | None, what: str = "--out DIR") -> Path:
    if out is not None:
        return out
    if study is not None:
        return study.output_path() / ANALYSIS_DIR
    raise UserError(f"with --results, give {what} for the tables, figures and report")


def _print_notes(notes) -> None:
    for note in notes:
        console.print(note, soft_wrap=True, highlight=False)


# --- outputs ------------------------------------------------------------------------------------------
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


@app.command("analyze")
def analyze_command(
    study_file: Annotated[Path | None, Arg(metavar="STUDY", help="study file (reads <output_dir>/results.csv)")] = None,
    results: Annotated[Path | None, Opt("--results", "-r", help="a results CSV in the released schema")] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="output folder (default with STUDY: <output_dir>/analysis)")] = None,
    tolerance: Annotated[float, Opt("--tolerance", min=0.0, help="pp added to both win / harm comparisons "
                                    "(default 0: the reference's exact Δ > 0 and Δ ≤ −1)")] = 0.0,
) -> None:
    """Every table (CSV, Markdown, LaTeX), figure (PNG + SVG) and the self-contained HTML report."""
    if study_file is not None and results is None:
        study = _load_study(study_file, tuple(KINDS))
        analysis = for_study(study).analyze(study, study.output_path(), _default_out(study, out),
                                            tolerance=tolerance, study_file=study_file)
    else:
        _, path = _results_path(study_file, results)
        out = _default_out(None, out)
        analysis = T.write_analysis(T.read_frame(path), path, out, tolerance=tolerance)
    _print_notes(analysis.notes)
    console.print(analysis.line(), soft_wrap=True)


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
        frame = T.read_frame(results)
        tables, notes = T.analysis_tables(frame, results)
        _print_notes(notes)
        header, title, source = T.results_summary(frame, results), T.title(None, results), out
    else:
        if study_file is not None:
            study = _load_study(study_file, tuple(KINDS))
            from_dir = study.output_path() / ANALYSIS_DIR
            title = f"{for_study(study).title} study: {study.name}"
        source = from_dir
        if not (source / "tables").is_dir():
            raise UserError(f"{source / 'tables'}: no tables to report; run `transfergrid analyze` first")
        tables = read_tables(source / "tables")
        if not tables:
            raise UserError(f"{source / 'tables'}: no CSV tables found; run `transfergrid analyze` first")
        out = out or source
    figures = sorted((source / "figures").glob("*.png")) if (source / "figures").is_dir() else []
    extra = _relatedness_section(tables, figures)
    if from_dir is not None:  # the CoT variant's section (evaluation.cot), from its cot/ folder
        from transfergrid.report.cot_section import read_section

        extra += read_section(from_dir)
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
    frame = T.read_frame(path)
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
