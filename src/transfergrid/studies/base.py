"""The interface every study kind implements, and the records its stages return.

Exported files live in one results folder (`transfergrid run`: the store's root, the study's
output_dir unless --out). `report` is `analyze` of that folder into <folder>/report, so the report a
run ends with and the one `transfergrid analyze` writes are made by the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

REPORT_DIR = "report"  # inside the results folder: what `run` writes at its end


@dataclass(frozen=True)
class Exported:
    """What an export wrote: its main file and how many rows of what (for the one line printed)."""

    path: Path
    rows: int
    unit: str  # "rows", "item records", ...

    def line(self) -> str:
        return f"wrote {self.path} ({self.rows} {self.unit})"


@dataclass(frozen=True)
class Analysis:
    """What an analysis wrote into `out`: its tables, figure files and report.html; `notes` are
    lines for the user (e.g. why intervals over items are unavailable)."""

    out: Path
    tables: dict[str, pd.DataFrame]
    figures: list[Path]
    report: Path
    notes: tuple[str, ...] = field(default=())

    @property
    def n_figures(self) -> int:
        return sum(1 for p in self.figures if p.suffix == ".png")

    def line(self) -> str:
        return (f"{len(self.tables)} tables, {self.n_figures} figures and the report in {self.out}; "
                f"open {self.report}")


class StudyKind(Protocol):
    """One kind of study: what its store exports to, how that is analysed and reported."""

    name: str  # the study file's `kind`
    title: str  # reports are titled "<title> study: <study name>"

    def export(self, study, store, jobs: Sequence, out_dir: Path) -> Exported:
        """Write the kind's exported files into the results folder `out_dir` (what `analyze` reads)."""

    def export_csv(self, study, store, jobs: Sequence, path: Path, *, with_items: bool = True) -> Exported:
        """`transfergrid export`: the kind's frame as the CSV `path`, its per-item records beside it
        (<stem>.items.parquet; study 1 only `with_items`, `export --items`)."""

    def results_file(self, results_dir: Path) -> Path:
        """The exported file in `results_dir` that the analysis reads."""

    def analyze(self, study, results_dir: Path, out: Path, *, tolerance: float = 0.0,
                study_file: Path | None = None) -> Analysis:
        """Tables, figures and report.html of the results exported in `results_dir`, into `out`
        (staged: a failure leaves `out` as it was). A missing export is a user error naming
        `study_file`'s run command."""

    def report(self, study, results_dir: Path) -> Analysis | None:
        """`analyze` into <results_dir>/report at the end of a run; None when there is nothing to
        compare yet (no base-model results)."""
