"""Command: compare — the LoRA rank ablation or full fine-tuning vs LoRA over result sets.

`transfergrid compare --results r32.csv --results r64.csv --results r128.csv --out DIR` (rank sweep;
the first set is the reference) or `--results lora.csv --results full.csv --kind fullft` (LoRA
first). Writes DIR/<table>.csv, .md and .tex (tables from `analysis.ablation`) and prints a
summary. Definitions: analysis/ablation.py.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfergrid.cli.app import app, console
from transfergrid.errors import UserError


def _labels(results: list[Path], labels: list[str] | None) -> list[str]:
    if labels and len(labels) != len(results):
        raise UserError(f"--label given {len(labels)} time(s) for {len(results)} --results; give one label per "
                        "result set, in the same order, or none")
    names = labels or [p.stem for p in results]
    if len(set(names)) != len(names):
        raise UserError(f"result sets need distinct labels, got {', '.join(names)}; pass --label r32 --label r64 ...")
    bad = [n for n in names if not re.fullmatch(r"[\w.+-]+", n)]
    if bad:
        raise UserError(f"label {bad[0]!r}: use letters, digits and . _ + - (it names table columns)")
    return names


def _write(tables: dict, out: Path) -> None:
    """Every table as CSV (the project's writer), the summaries also as Markdown and LaTeX."""
    from transfergrid.analysis.tables import write_tables

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        write_tables(tables, staging)
        for name, table in tables.items():
            # the writer makes .md / .tex for its own summaries only; per-cell data stays CSV
            if name != "paired_cells" and not (staging / f"{name}.md").exists():
                (staging / f"{name}.md").write_text(table.to_markdown(index=False, floatfmt=".4g") + "\n",
                                                    encoding="utf-8")
                (staging / f"{name}.tex").write_text(table.to_latex(index=False, float_format="%.4g", na_rep="--"),
                                                     encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for entry in sorted(staging.iterdir()):
            entry.replace(out / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cell(value, column: str) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):  # undefined (for example Pearson over fewer than two cells)
        return "—"
    if float(value).is_integer() and column in ("n", "n_cells"):
        return str(int(value))
    return f"{value:.4f}" if column.startswith("pearson") else f"{value:.3f}"


def _print(title: str, table, columns: list[str]) -> None:
    shown = Table(title=title, title_justify="left")
    for col in columns:
        shown.add_column(col, justify="right" if table[col].dtype.kind in "fiu" else "left")
    for row in table[columns].itertuples(index=False, name=None):
        shown.add_row(*[_cell(v, c) for c, v in zip(columns, row)])
    console.print(shown)


@app.command("compare")
def compare_command(
    results: Annotated[list[Path], typer.Option("--results", "-r", help="a results CSV in the released schema "
                                                "(repeat; the first is the reference: r=32, or LoRA for fullft)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the tables (CSV, Markdown, LaTeX)")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="one name per --results, in order "
                                                    "(default: file names)")] = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="rank (LoRA rank sweep), fullft (LoRA vs full "
                                      "fine-tuning) or auto (fullft when one of two labels says 'full')")] = "auto",
    metric: Annotated[str | None, typer.Option("--metric", help="Δ column: acc_norm, acc or auto (default: the "
                                               "reference's, acc_norm for rank, acc for fullft)")] = None,
    common_only: Annotated[bool, typer.Option("--common-only", help="rank distributions over the cells every "
                                              "set has (the reference uses each set's own cells)")] = False,
) -> None:
    """The paper's ablations over result sets: LoRA rank sweep or full fine-tuning vs LoRA."""
    from transfergrid.analysis.ablation import compare
    from transfergrid.analysis.frame import read_results

    if kind not in ("auto", "rank", "fullft"):
        raise UserError(f"--kind: expected rank, fullft or auto, got {kind!r}")
    if metric not in (None, "acc", "acc_norm", "auto"):
        raise UserError(f"--metric: expected acc_norm, acc or auto, got {metric!r}")
    if len(results) < 2:
        raise UserError("give at least two --results files to compare")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    names = _labels(results, label)
    frames = {name: read_results(path) for name, path in zip(names, results)}
    kind, tables = compare(frames, kind, metric, common_only=common_only)
    _write(tables, out)
    if kind == "fullft":
        row = tables["fullft_comparison"].iloc[0]
        console.print(f"LoRA ({row['lora']}) vs full fine-tuning ({row['full']}): {row['n_cells']} shared cells; "
                      f"Pearson r {row['pearson_acc']:.4f} (acc Δ), {row['pearson_acc_norm']:.4f} (acc_norm Δ); "
                      f"sign agreement {row['sign_agreement']:.1f}%; Δ_lora − Δ_full mean {row['mean_diff']:.3f} pp, "
                      f"median {row['median_diff']:.3f} pp", soft_wrap=True, highlight=False)
    else:
        _print("LoRA rank ablation: Δ per result set (pp; rates in %)", tables["rank_distribution"],
               ["set", "n", "mean", "median", "p10", "p90", "harm_rate"])
        _print(f"Per-cell agreement with {names[0]}", tables["rank_correlation"],
               ["set", "n_cells", "pearson_acc", "pearson_acc_norm", "sign_agreement", "mean_diff"])
    console.print(f"{len(tables)} tables in {out}", highlight=False)
