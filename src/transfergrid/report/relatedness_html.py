"""Study 2's whole output folder: tables/*.csv, figures/*.{png,svg} and report.html.

Written by `studies.relatedness.write_analysis` (into a staging folder it then publishes), for both
`transfergrid analyze` and the end of `transfergrid run` on a relatedness study.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from transfergrid.analysis import relatedness as rel
from transfergrid.report.html import write_report
from transfergrid.report.relatedness_figures import FIGURES, relatedness_report

SECTION = "Relatedness vs task alignment (study 2)"
CAPTIONS = {
    "relatedness_gains": "Fine-tuning gain (pp) per target language, coloured by group, with Newcombe 95% "
                         "intervals of the paired difference; one panel per model.",
    "relatedness_gain_vs_baseline": "Gain against baseline accuracy over models × languages, with the fit of "
                                    "gain ~ baseline_acc + related.",
    "relatedness_ft_vs_cot": "Fine-tuning gain against chain-of-thought gain (base model reasoning first), "
                             "per model × language and per model.",
}


def write_relatedness_analysis(study, frame: pd.DataFrame, out_dir: str | Path, *, n_boot: int = rel.N_BOOT
                               ) -> tuple[dict[str, pd.DataFrame], list[Path], Path]:
    """Write every study-2 table, figure and the HTML report into `out_dir`.

    `frame` is the per-item frame (`analysis.relatedness.ITEM_COLUMNS`). Returns (tables, figure
    paths, report path)."""
    out_dir = Path(out_dir)
    tables = relatedness_report(frame, study, out_dir, n_boot=n_boot)
    figures = [out_dir / "figures" / f"{name}.png" for name in FIGURES]
    figures = [p for p in figures if p.is_file()]
    section = (SECTION, [(p, CAPTIONS.get(p.stem, "")) for p in figures], tables)
    path = write_report(out_dir, {}, [], title=f"Relatedness study: {study.name}", study=study,
                        extra_sections=[section])
    return tables, figures, path
