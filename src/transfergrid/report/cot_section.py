"""The chain-of-thought variant's part of a transfer report (`evaluation.cot`, results_cot.csv).

Every study-1 table is computed for the CoT frame as for the zero-shot one and written to
`<report>/cot/tables/` (CSV, Markdown, LaTeX; the comparison table too), its headline figures to
`<report>/cot/figures/`; the report gets one extra section with the zero-shot vs CoT comparison
and the CoT variant's main tables and figures.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SECTION_TITLE = "Chain-of-thought variant"
# the CoT tables shown in the report (all of them are written to cot/tables/)
SHOWN = ("uplift_summary", "significance_summary", "language_roles", "task_roles")
FIGURE_TABLES = ("uplift_summary", "grid_matrix", "grid_significance", "language_matrix", "task_matrix")


def cot_tables(zero_shot: pd.DataFrame, cot: pd.DataFrame, *, items=None, uses_norm=None,
               tolerance: float = 0.0) -> dict[str, pd.DataFrame]:
    """Every table of the CoT frame (`compute_tables`) plus `cot_comparison` against zero-shot."""
    from transfergrid.analysis.cot_compare import cot_comparison
    from transfergrid.analysis.tables import compute_tables

    tables = compute_tables(cot, items=items, uses_norm=uses_norm, tolerance=tolerance)
    return {"cot_comparison": cot_comparison(zero_shot, cot, tolerance), **tables}


def cot_section(zero_shot: pd.DataFrame, cot: pd.DataFrame, out_dir: Path, *, items=None, uses_norm=None,
                tolerance: float = 0.0) -> list[tuple[str, list, dict]]:
    """Write the CoT tables and figures under out_dir/cot; the report's extra section."""
    from transfergrid.analysis.tables import write_tables
    from transfergrid.report.figures import write_figures

    tables = cot_tables(zero_shot, cot, items=items, uses_norm=uses_norm, tolerance=tolerance)
    write_tables(tables, out_dir / "cot" / "tables")
    figures = write_figures({n: tables[n] for n in FIGURE_TABLES if n in tables}, out_dir / "cot" / "figures")
    return [_section(tables, figures)]


def read_section(report_dir: Path) -> list[tuple[str, list, dict]]:
    """The section again from report_dir/cot as `cot_section` wrote it (`transfergrid report`)."""
    from transfergrid.report.html import read_tables

    cot = Path(report_dir) / "cot"
    tables = read_tables(cot / "tables") if (cot / "tables").is_dir() else {}
    if "cot_comparison" not in tables:
        return []
    return [_section(tables, sorted((cot / "figures").glob("*.png")))]


def _section(tables: dict, figures) -> tuple[str, list, dict]:
    pngs = [(p, "chain-of-thought variant") for p in figures if Path(p).suffix == ".png"]
    shown = {"cot_comparison": tables["cot_comparison"]}
    shown.update({f"cot_{n}": tables[n] for n in SHOWN if n in tables and not tables[n].empty})
    return (f"{SECTION_TITLE} (zero-shot vs CoT)", pngs, shown)
