"""The kinds of study a study file declares (`kind = "transfer" | "relatedness"`).

DESIGN.md's data flow, with the kind in it:

    study file → study kind → plan → execute → store → export → analysis → report

Plan, execute and store are shared: both kinds are train / evaluate jobs with content keys (plan.py
reads the study's pooled source and CoT settings off the `Study` record). A kind decides what is
exported from the store, how it is analysed and what the report shows, by composing the shared
modules; it holds no analysis or figure code of its own:

- `transfer` (study 1, "Donors and Recipients"): `export` (results.csv in the released schema,
  items.parquet) → `analysis.tables` → `report.figures` / `report.html`;
- `relatedness` (study 2): relatedness_items.parquet → `analysis.relatedness` →
  `report.relatedness_figures` / `report.relatedness_html`.

`for_study(study)` chooses the kind; the CLI only calls it and never branches on `study.kind`.
"""

from __future__ import annotations

import importlib

from transfergrid.studies.base import REPORT_DIR, Analysis, Exported, StudyKind

__all__ = ["KINDS", "REPORT_DIR", "Analysis", "Exported", "StudyKind", "for_study", "kind_named"]

# study file `kind` -> the module whose KIND implements it (imported on use: a study-1 run never
# loads study 2's analysis, and the other way round)
KINDS = {"transfer": "transfergrid.studies.transfer", "relatedness": "transfergrid.studies.relatedness"}


def kind_named(name: str) -> StudyKind:
    if name not in KINDS:  # study.py validates `kind`; this is a programming error, not a user's
        raise ValueError(f"unknown study kind {name!r}; expected one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[name]).KIND


def for_study(study) -> StudyKind:
    """The study kind that exports, analyses and reports `study`."""
    return kind_named(study.kind)
