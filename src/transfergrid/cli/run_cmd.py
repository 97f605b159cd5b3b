"""Commands: run, status, export — a study file to a finished grid, and back out of the store.

Both kinds of study plan, execute and store alike; what is exported and reported is the study
kind's (`transfergrid.studies.for_study`): study 1, results.csv + items.parquet and the transfer
report; study 2, relatedness_items.parquet and the relatedness report. These commands only wire.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401
from transfergrid.cli.tables import FormatOpt
from transfergrid.errors import UserError
from transfergrid.studies import for_study

log = logging.getLogger(__name__)
Opt = typer.Option
Arg = typer.Argument

StudyArg = Annotated[Path, Arg(help="the study file (TOML)")]
OutOpt = Annotated[Path | None, Opt("--out", "-o", help="output directory (default: the study's output_dir)")]
DataOpt = Annotated[Path | None, Opt("--data-dir", help="benchmark data root")]


SimulateOpt = Annotated[bool, Opt("--simulate", help="instant stand-in train/evaluate (transfergrid.simulate): "
                                                      "exercise the runner without models or data")]


def _open(study_path: Path, out: Path | None, data_dir: Path | None, *, must_exist: bool = False,
          simulate: bool = False):
    """(study, store, data, data root, jobs) of a study file (`simulate`: data None, offline keys)."""
    from transfergrid.data import StudyData, resolve_data_dir
    from transfergrid.plan import study_jobs
    from transfergrid.store import DB_NAME, Store
    from transfergrid.study import load_study

    study = load_study(study_path)
    root = Path(out) if out is not None else study.output_path()
    if must_exist and not (root / DB_NAME).is_file():
        raise UserError(f"{root}: no results store ({DB_NAME}); run `transfergrid run {study_path}` first")
    if simulate:
        from transfergrid.simulate import simulated_jobs

        return study, Store(root), None, Path(data_dir or "."), simulated_jobs(study)
    data_root = resolve_data_dir(data_dir, study)
    data = StudyData(study, data_root)
    jobs = study_jobs(study, data)
    return study, Store(root), data, data_root, jobs


@app.command("run")
def run_command(
    study_path: StudyArg,
    out: OutOpt = None,
    executor: Annotated[str, Opt("--executor", "-e", help="local | ray")] = "local",
    address: Annotated[str | None, Opt("--address", help="Ray cluster address (default: start a local one)")] = None,
    data_dir: DataOpt = None,
    progress: Annotated[bool, Opt("--progress/--no-progress", help="progress bars")] = True,
    report: Annotated[bool, Opt("--report/--no-report", help="finish with the analysis report")] = True,
    dry_run: Annotated[bool, Opt("--dry-run", help="print the plan (as `transfergrid plan`) and stop")] = False,
    simulate: SimulateOpt = False,
) -> None:
    """Plan the study's missing jobs, run them, export results.csv and the report."""
    from transfergrid.execute import execute
    from transfergrid.plan import TRAIN

    if dry_run:
        from transfergrid.cli.plan_cmd import show_plan

        show_plan(study_path, out, data_dir)
        return

    if executor not in ("local", "ray"):
        raise UserError(f"--executor {executor!r}: expected local or ray")
    study, store, data, data_root, jobs = _open(study_path, out, data_dir, simulate=simulate)
    if not simulate:
        from transfergrid.profiles import profile_warnings

        for line in profile_warnings(study, data_root):
            log.warning(line)
    if data is not None:  # the split manifests of this version of the study (another version writes its own)
        data.write_manifests(store.root / "artifacts" / "manifests" / study.content_hash())
    missing = store.missing(jobs)
    n_train = sum(j.kind == TRAIN for j in missing)
    console.print(f"{study.name}: {len(jobs)} jobs, {len(missing)} to run ({n_train} trainings, "
                  f"{len(missing) - n_train} evaluations) -> {store.root}")
    summary = execute(study, store, jobs, data_root, executor=executor, address=address, progress=progress,
                      simulate=simulate)
    kind = for_study(study)
    console.print(kind.export(study, store, jobs, store.root).line())
    if report:
        analysis = kind.report(study, store.root)
        if analysis is not None:
            _print_notes(analysis.notes)
            console.print(f"wrote the report {analysis.report}")
    if not summary.ok:
        for label, error, path in summary.failed:
            console.print(f"[red]failed[/] {escape(label)}: {escape(error)} (traceback: {escape(str(path))})",
                          highlight=False, soft_wrap=True)
        for label in summary.blocked:
            console.print(f"[yellow]blocked[/] {escape(label)}: its adapter was not trained", highlight=False)
        console.print(f"{len(summary.done)} jobs done, {len(summary.failed)} failed, {len(summary.blocked)} blocked; "
                      "run again to retry")
        # SystemExit, not typer.Exit: in non-standalone mode click turns Exit into a return value
        raise SystemExit(1)
    console.print(f"{len(summary.done)} jobs done; the grid is complete")


def _print_notes(notes) -> None:
    for note in notes:
        console.print(note, soft_wrap=True, highlight=False)


@app.command("status")
def status_command(
    study_path: StudyArg,
    out: OutOpt = None,
    data_dir: DataOpt = None,
    fmt: FormatOpt = "table",
    as_json: Annotated[bool, Opt("--json", help="the same as --format json")] = False,
    simulate: SimulateOpt = False,
) -> None:
    """Grid progress per model: trainings and evaluated cells done / running / failed / missing."""
    from transfergrid.cli.app import err_console
    from transfergrid.cli.tables import check_format, print_table, write_csv
    from transfergrid.store import grid_status

    fmt = "json" if as_json else check_format(fmt)
    study, store, _, _, jobs = _open(study_path, out, data_dir, must_exist=True, simulate=simulate)
    report = grid_status(store, jobs)
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    states = ("done", "running", "failed", "missing")
    rows = [[model, *(r[part][k] for part in ("train", "cells") for k in states)]
            for model, r in report["models"].items()]
    if fmt == "csv":
        write_csv(["model", *(f"{part}_{k}" for part in ("train", "cells") for k in states)], rows)
    else:
        header = ["model", "train done", "running", "failed", "missing", "cells done", "running", "failed", "missing"]
        print_table(console, f"{study.name} ({store.root})", header, [list(map(str, row)) for row in rows],
                    key={"model"}, numeric=header[1:])
    notes = console if fmt == "table" else err_console  # a CSV on stdout stays only the CSV
    for f in report["failed"]:
        notes.print(f"[red]failed[/] {escape(str(f['job']))}: {escape(str(f['error']))} (attempts {f['attempts']}, "
                    f"traceback {escape(str(f['traceback']))})",
                    highlight=False, soft_wrap=True)
    if report["orphans"]:
        notes.print(f"{report['orphans']} jobs in the store belong to an earlier version of the study (not used)")


@app.command("export")
def export_command(
    study_path: StudyArg,
    out: Annotated[Path, Opt("--out", "-o", help="the results CSV to write")],
    store_dir: Annotated[Path | None, Opt("--store", help="the study's output directory (default: its output_dir)")] = None,
    data_dir: DataOpt = None,
    with_items: Annotated[bool, Opt("--items", help="study 1: also write every per-item score to "
                                                     "<stem>.items.parquet")] = False,
    simulate: SimulateOpt = False,
) -> None:
    """Write the study's exported frame as a CSV: study 1, the released-CSV schema (one row per model,
    source cell, target cell; with --items, its per-item scores beside it, <stem>.items.parquet);
    study 2, the per-item frame, and every per-item record beside it (<stem>.items.parquet)."""
    if out.suffix != ".csv":
        raise UserError(f"--out {out}: expected a .csv file")
    study, store, _, _, jobs = _open(study_path, store_dir, data_dir, must_exist=True, simulate=simulate)
    console.print(for_study(study).export_csv(study, store, jobs, out, with_items=with_items).line())
