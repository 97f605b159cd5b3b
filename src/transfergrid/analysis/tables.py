"""Every study-1 table from one tidy cell frame; the file stems are the interface (issue 6).

`compute_tables` prepares the frame once and runs each analysis; an analysis the grid cannot
support (one model, no curated set, one language, ...) yields an empty table with its columns and
a logged reason, never an error. `write_tables` writes `<stem>.csv` for all, plus `.md` and `.tex`
for the summary tables.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from transfergrid.analysis import consistency as C
from transfergrid.analysis import distance as distance_mod
from transfergrid.analysis import intervals, matrices, rates, roles
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
}
TABLES = tuple(TABLE_COLUMNS)
SUMMARY_TABLES = ("uplift_summary", "harm_breakdown", "language_roles", "task_roles", "curated_vs_translated",
                  "variance_decomposition", "consistency_summary", "ling_correlation", "uplift_intervals",
                  "significance_summary", "role_intervals")


def compute_tables(frame: pd.DataFrame, *, variance: bool = True, distance: bool = True,
                   urielplus: bool = True, permutations: int = distance_mod.PERMUTATIONS,
                   items: pd.DataFrame | None = None, uses_norm=None) -> dict[str, pd.DataFrame]:
    """All tables by file stem (`TABLES` order). `variance=False` / `distance=False` leave those
    tables empty; `urielplus=False` keeps only the lang2vec distances (URIEL+ takes ~20 s).
    `items` (export_items' per-item frame; `uses_norm`: task -> headline is acc_norm) gives the
    role intervals and grid marks their item bootstrap and tests (intervals.py)."""
    df = ensure_prepared(frame)
    paired = intervals.paired_or_none(items, uses_norm)
    steps: dict[str, Callable[[], pd.DataFrame]] = {
        "uplift_summary": lambda: rates.uplift_summary(df),
        "harm_breakdown": lambda: rates.harm_breakdown(df),
        "language_roles": lambda: roles.language_roles(df),
        "task_roles": lambda: roles.task_roles(df),
        "family_roles": lambda: roles.family_roles(df),
        "curated_vs_translated": lambda: roles.curated_vs_translated(df),
        "on_off_task": lambda: roles.on_off_task(df),
        "grid_matrix": lambda: matrices.grid_matrix(df),
        "language_matrix": lambda: matrices.language_matrix(df),
        "task_matrix": lambda: matrices.task_matrix(df),
        "consistency": lambda: C.consistency(df),
        "uplift_intervals": lambda: intervals.uplift_intervals(df),
        "significance_summary": lambda: intervals.significance_summary(df),
        "role_intervals": lambda: intervals.role_intervals(df, paired),
        "grid_significance": lambda: intervals.grid_significance(df, paired),
    }
    if variance:
        steps["variance_decomposition"] = lambda: variance_mod.variance_decomposition(df)
    if distance:
        steps["ling_correlation"] = lambda: distance_mod.ling_correlation(
            df, permutations=permutations, urielplus=urielplus)
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        start = time.perf_counter()
        if name == "consistency_summary":
            tables[name] = C.consistency_summary(tables["consistency"])
        elif name in steps:
            tables[name] = steps[name]()
        else:
            log.info("%s: not computed (switched off)", name)
            tables[name] = pd.DataFrame(columns=TABLE_COLUMNS[name])
        if tables[name].empty:
            log.info("%s: empty for this grid", name)
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
    """`<stem>.csv` for every table; `<stem>.md` and `<stem>.tex` for the summary tables."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        path = out / f"{name}.csv"
        _atomic_write(path, table.to_csv(index=False))
        written.append(path)
        if name in SUMMARY_TABLES:
            md, tex = out / f"{name}.md", out / f"{name}.tex"
            _atomic_write(md, table.to_markdown(index=False, floatfmt=".3g") + "\n" if not table.empty else
                          "| " + " | ".join(table.columns) + " |\n")
            _atomic_write(tex, table.to_latex(index=False, float_format="%.3g", na_rep="--"))
            written += [md, tex]
    return written
