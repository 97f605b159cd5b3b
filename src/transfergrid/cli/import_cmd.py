"""Commands: import harness | import seeds — your own runs into the released schema.

`transfergrid import harness runs.toml --out results.csv` reads lm-evaluation-harness results listed
in an index file; `transfergrid import seeds per_seed.csv [...] --out results.csv` reads per-seed
score CSVs. Both check grid completeness first: an incomplete grid is an error naming the missing
(model, source, target, seed) entries by count and example (`--missing FILE.csv` lists them all),
unless `--allow-incomplete`; `--check` only reports. Formats: transfergrid/ingest.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from transfergrid.cli.app import app, console, err_console
from transfergrid.errors import UserError

log = logging.getLogger(__name__)

import_app = typer.Typer(help="Bring your own runs: lm-evaluation-harness output or per-seed CSVs -> "
                              "the released results schema.", no_args_is_help=True)
app.add_typer(import_app, name="import")

Out = Annotated[Path | None, typer.Option("--out", "-o", help="the results CSV to write (released schema)")]
Check = Annotated[bool, typer.Option("--check", help="only check grid completeness; write nothing")]
Allow = Annotated[bool, typer.Option("--allow-incomplete", help="write the complete cells of an incomplete grid")]
Missing = Annotated[Path | None, typer.Option("--missing", help="write every missing entry to this CSV")]
Seeds = Annotated[str | None, typer.Option("--seeds", help="the seeds every run should have, e.g. 17,42,101 "
                                           "(default: every seed seen)")]


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected integers separated by commas, got {text!r}") from None


def _finish(per_seed, out: Path | None, check: bool, allow: bool, missing_out: Path | None, seeds) -> None:
    from transfergrid.analysis.completeness import (
        BASE,
        describe_missing,
        missing_entries,
    )
    from transfergrid.analysis.frame import write_results
    from transfergrid.ingest import aggregate_seeds

    if not check and out is None:
        raise UserError("give --out FILE.csv for the results (or --check to only check the grid)")
    if out is not None and out.is_dir():
        raise UserError(f"{out}: is a directory; --out names the results CSV to write")
    if per_seed.empty:
        raise UserError("no scores found in the input; nothing to import")
    if (per_seed["source"] == BASE).all():
        raise UserError("only base-model scores found: list the fine-tuned runs too (source = TASK:LANG)")
    missing, expected = missing_entries(per_seed, _seeds(seeds))
    if missing_out is not None:
        listed = missing.sort_values(["kind", "model_name", "source", "target"], kind="stable")
        missing_out.parent.mkdir(parents=True, exist_ok=True)
        listed.to_csv(missing_out, index=False)
        console.print(f"{len(missing)} missing entries listed in {missing_out}", highlight=False)
    summary = describe_missing(missing, expected)
    if check:
        if not missing.empty:
            raise UserError(summary)
        console.print(summary, highlight=False, soft_wrap=True)
        return
    if not missing.empty:
        if not allow:
            raise UserError(f"{summary}. Nothing written: rerun the missing runs, or pass --allow-incomplete "
                            "to write the cells that are complete")
        log.warning("%s", summary)
    frame = aggregate_seeds(per_seed)
    if frame.empty:
        raise UserError("no fine-tuned cell has a base score to compare with; nothing written")
    write_results(frame, out)
    n_models = frame["model_name"].nunique()
    console.print(f"{len(frame)} cells ({n_models} model(s), up to {int(frame['n_seeds'].max())} seed(s)) in {out}; "
                  f"analyse with: transfergrid analyze --results {out} --out DIR", highlight=False, soft_wrap=True)


@import_app.command("harness")
def import_harness(
    index: Annotated[Path, typer.Argument(help="index file: TOML (run entries and an optional tasks table) or CSV (model, model_size, source, seed, path)")],
    out: Out = None,
    tasks: Annotated[Path | None, typer.Option("--tasks", help="CSV harness_task,dataset,language mapping "
                                               "task names to cells (adds to / overrides the index tasks table)")] = None,
    metric_filter: Annotated[str, typer.Option("--filter", help="the harness filter of the metric keys "
                                               "(acc,<filter>)")] = "none",
    seeds: Seeds = None,
    check: Check = False,
    allow_incomplete: Allow = False,
    missing: Missing = None,
) -> None:
    """lm-evaluation-harness results_*.json of base and fine-tuned runs -> the released schema."""
    from transfergrid.ingest import read_harness_runs, read_task_map

    task_map = read_task_map(tasks) if tasks else None
    with Progress(TextColumn("reading runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("runs", total=None)
        per_seed = read_harness_runs(index, task_map, metric_filter,
                                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    _finish(per_seed, out, check, allow_incomplete, missing, seeds)


@import_app.command("seeds")
def import_seeds(
    files: Annotated[list[Path], typer.Argument(help="per-seed CSVs: model, source, target, seed, score[, "
                                                "score_norm, model_size]; base rows have source 'base'")],
    out: Out = None,
    seeds: Seeds = None,
    check: Check = False,
    allow_incomplete: Allow = False,
    missing: Missing = None,
) -> None:
    """Per-seed score CSVs (ours or the reference's results_seed*.csv) -> the released schema."""
    import pandas as pd

    from transfergrid.ingest import check_seed_frame, read_seed_csv

    frames = [read_seed_csv(path) for path in files]
    per_seed = check_seed_frame(pd.concat(frames, ignore_index=True), ", ".join(map(str, files)))
    _finish(per_seed, out, check, allow_incomplete, missing, seeds)
