"""One self-contained HTML report: CSS inline, figures inlined as base64 PNG, tables rendered and
offered for download as data: URIs. No external URL, so the file can be mailed or archived alone.

`write_report(out_dir, tables, figures, *, title, study=None, extra_sections=())` writes
out_dir/report.html atomically. Every piece of text is escaped. This module lays out the page and
its sections; `headline` makes its top, `html_parts` the tables and figures in it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

import pandas as pd

from transfergrid.report import style
from transfergrid.report.figures import FIGURES, FIGURES_BY_NAME
from transfergrid.report.headline import (
    configuration,
    findings,
    headline_cards,
    significance_note,
    study_counts,
)
from transfergrid.report.html_parts import render_figure, render_table, table_csv

# (anchor, heading, tables shown in it, one-line introduction)
SECTIONS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("uplift", "Uplift and harm", ("uplift_summary", "uplift_intervals", "significance_summary", "harm_breakdown"),
     ("Δ is the change of the headline score against the base model, in percentage points. "
      "The breakdown is over MT-CL cells.")),
    ("matrices", "Transfer matrices", ("language_matrix", "task_matrix", "grid_matrix", "grid_significance"),
     "Mean Δ from each source (rows) to each target (columns)."),
    ("roles", "Donors and recipients", ("language_roles", "language_family_roles", "language_roles_curated",
                                        "language_roles_translated", "task_roles", "role_intervals", "family_roles",
                                        "curated_vs_translated"),
     ("Donor score: mean Δ a source gives; recipient score: mean Δ a target receives; averaged per model, "
      "then across models (SE across models).")),
    ("on_off", "On-task vs off-task", ("pareto_family_summary", "task_on_off_summary", "on_off_task",
                                       "pareto_appendix"),
     "Whether an adapter that helps its own task elsewhere also helps, or harms, the other tasks."),
    ("variance", "Variance decomposition", ("variance_decomposition",),
     "How much of the variation in Δ is due to the model, the source cell and the target cell."),
    ("consistency", "Consistency across models", ("consistency_summary", "consistency"),
     "Do different models agree on which targets a source helps most?"),
    ("distance", "Linguistic distance", ("ling_correlation", "ling_pairs"),
     "Does transfer fall off with the distance between source and target language?"),
    ("composition", "Composition: source sets vs their members", ("composition_roles", "composition_cells"),
     ("Does an adapter trained on several cells pooled give more (or harm less) than each of its cells alone, "
      "on the same targets?")),
)

TABLE_TITLES = {
    "uplift_summary": "Uplift summary", "harm_breakdown": "Harm breakdown (MT-CL)",
    "language_roles": "Language roles (MT-CL)", "task_roles": "Task roles (CT-ML)",
    "family_roles": "Family roles", "curated_vs_translated": "Donor scores: curated vs translated targets",
    "on_off_task": "On-task vs off-task per adapter", "grid_matrix": "Grid matrix",
    "language_matrix": "Language matrix (MT-CL)", "task_matrix": "Task matrix (CT-ML)",
    "variance_decomposition": "Variance components", "consistency": "Consistency index per source",
    "consistency_summary": "Consistency summary", "ling_correlation": "Correlation with linguistic distance",
    "ling_pairs": "Language pairs", "pareto_family_summary": "On/off-task summary per model and source task",
    "task_on_off_summary": "On/off-task summary per source task", "pareto_appendix": "Appendix: Pareto rows",
    "language_family_roles": "Language roles by language family (MT-CL)",
    "language_roles_curated": "Language roles on curated targets (MT-CL)",
    "language_roles_translated": "Language roles on machine-translated targets (MT-CL)",
    "uplift_intervals": "Win and harm rates with 95 % Wilson intervals",
    "significance_summary": "Cells that changed significantly (Benjamini-Hochberg FDR)",
    "role_intervals": "Donor and recipient scores with 95 % bootstrap intervals",
    "grid_significance": "Significance of each grid cell",
    "composition_roles": "Donor scores of source sets vs their members", "composition_cells": "Set vs members per cell",
}

ExtraSection = tuple[str, Iterable, object]


# --- extra sections ----------------------------------------------------------------------------------
def _extra_figures(figures) -> list[tuple[Path, str]]:
    out = []
    for entry in figures or ():
        path, caption = (entry if isinstance(entry, tuple) else (entry, ""))
        path = Path(path)
        if path.suffix.lower() == ".png" and path.is_file():
            out.append((path, str(caption)))
    return out


def _extra_tables(tables) -> list[tuple[str, pd.DataFrame]]:
    if tables is None:
        return []
    items = tables.items() if isinstance(tables, Mapping) else tables
    return [(str(name), t) for name, t in items if isinstance(t, pd.DataFrame)]


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "section"


# --- the document ------------------------------------------------------------------------------------
def build_report(tables: Mapping[str, pd.DataFrame], figures: Iterable[Path], *, title: str, study=None,
                 extra_sections: Sequence[ExtraSection] = (), generated: _dt.datetime | None = None,
                 tolerance: float = 0.0) -> str:
    """The report's HTML text (no I/O besides reading the PNGs it inlines)."""
    from transfergrid.analysis.tables import definitions

    defined = definitions(tolerance)
    pngs = {Path(p).stem: Path(p) for p in figures if Path(p).suffix.lower() == ".png" and Path(p).is_file()}
    generated = generated or _dt.datetime.now().astimezone()
    counts = study_counts(study, tables)
    name = getattr(study, "name", None) or (study.get("name") if isinstance(study, Mapping) else None)
    meta = [f"study {name}"] if name else []
    meta += [f"{v} {k if v != 1 else k[:-1]}" for k, v in counts.items()]  # "1 model", "2 models"
    if getattr(getattr(study, "evaluation", None), "fewshot", 0):
        meta.append(f"{study.evaluation.fewshot}-shot evaluation")
    if getattr(getattr(study, "evaluation", None), "cot", False):
        meta.append("zero-shot and chain-of-thought evaluation")
    meta.append("generated " + generated.strftime("%Y-%m-%d %H:%M %Z").strip())

    body: list[str] = []
    nav: list[tuple[str, str]] = []
    if isinstance(tables.get("uplift_summary"), pd.DataFrame) and not tables["uplift_summary"].empty:
        body.append(f'<section class="headline">{headline_cards(tables.get("uplift_summary"), tables.get("uplift_intervals"))}'
                    f'{significance_note(tables)}{findings(tables)}</section>')
    config = configuration(study)
    if config:
        nav.append(("configuration", "Configuration"))
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in config)
        body.append(f'<h2 id="configuration">Configuration</h2><dl class="config">{items}</dl>')

    placed_tables: set[str] = set()
    placed_figures: set[str] = set()
    for anchor, heading, table_names, intro in SECTIONS:
        figs = [spec for spec in FIGURES if spec.section == anchor and spec.name in pngs]
        present = [n for n in table_names if isinstance(tables.get(n), pd.DataFrame) and not tables[n].empty]
        if not figs and not present:
            continue
        nav.append((anchor, heading))
        parts = [f'<h2 id="{anchor}">{escape(heading)}</h2><p class="note">{escape(intro)}</p>']
        for spec in figs:
            parts.append(render_figure(pngs[spec.name], spec.title, spec.caption))
            placed_figures.add(spec.name)
        for table_name in present:
            parts.append(f"<h3>{escape(TABLE_TITLES.get(table_name, table_name))}</h3>")
            if table_name in defined:
                parts.append(f'<p class="definition">Definition: {escape(defined[table_name])}</p>')
            parts.append(render_table(table_name, tables[table_name]))
            placed_tables.add(table_name)
        body.append("".join(parts))

    downloads = {n: t for n, t in tables.items() if isinstance(t, pd.DataFrame)}
    for k, (heading, figs, extra) in enumerate(extra_sections):
        anchor = f"extra-{k}-{_anchor(str(heading))}"
        nav.append((anchor, str(heading)))
        parts = [f'<h2 id="{escape(anchor)}">{escape(str(heading))}</h2>']
        for path, caption in _extra_figures(figs):
            parts.append(render_figure(path, path.stem.replace("_", " "), caption))
        for table_name, table in _extra_tables(extra):
            parts.append(f"<h3>{escape(table_name.replace('_', ' '))}</h3>")
            if table_name in defined:  # e.g. cot_comparison
                parts.append(f'<p class="definition">Definition: {escape(defined[table_name])}</p>')
            parts.append(render_table(table_name, table))
            downloads.setdefault(table_name, table)
        body.append("".join(parts))

    other_figs = [stem for stem in pngs if stem not in placed_figures and stem not in FIGURES_BY_NAME]
    other_tables = [n for n, t in tables.items() if n not in placed_tables and isinstance(t, pd.DataFrame)
                    and not t.empty and n not in {t for s in SECTIONS for t in s[2]}]
    if other_figs or other_tables:
        nav.append(("other", "Other"))
        parts = ['<h2 id="other">Other figures and tables</h2>']
        parts += [render_figure(pngs[s], s.replace("_", " "), "") for s in other_figs]
        for table_name in other_tables:
            parts.append(f"<h3>{escape(table_name)}</h3>{render_table(table_name, tables[table_name])}")
        body.append("".join(parts))

    if downloads:
        nav.append(("downloads", "Downloads"))
        links = "".join(
            f'<li><a download="{escape(n)}.csv" href="data:text/csv;charset=utf-8;base64,'
            f'{base64.b64encode(table_csv(t).encode("utf-8")).decode("ascii")}">{escape(n)}.csv</a> '
            f'<span class="note">({len(t):,} rows)</span></li>'
            for n, t in downloads.items())
        body.append('<h2 id="downloads">Downloads</h2><p class="note">Every table as CSV (also in the '
                    f'<code>tables/</code> folder next to this file; figures as PNG and SVG in <code>figures/</code>).'
                    f'</p><ul class="downloads">{links}</ul>')

    nav_html = "".join(f'<a href="#{escape(a)}">{escape(h)}</a>' for a, h in nav)
    meta_html = "".join(f"<span>{escape(m)}</span>" for m in meta)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{escape(title)}</title><style>{style.CSS}</style></head><body><main>'
        f'<header><h1>{escape(title)}</h1><p class="meta">{meta_html}</p></header>'
        f"<nav>{nav_html}</nav>{''.join(body)}"
        f"<footer>Made by transfergrid. Δ in percentage points against the base model.</footer>"
        "</main></body></html>\n"
    )


def write_report(out_dir: str | Path, tables: Mapping[str, pd.DataFrame], figures: Iterable[Path], *,
                 title: str, study=None, extra_sections: Sequence[ExtraSection] = (), tolerance: float = 0.0) -> Path:
    """Write out_dir/report.html (atomically: a temporary file renamed into place); returns its path.

    `figures`: PNG/SVG paths (the PNGs are inlined; names from `figures.FIGURES` get their captions).
    `study`: a Study, or a mapping of configuration entries (name, models, tasks, languages, ...).
    `extra_sections`: (title, figures, tables) triples, e.g. the relatedness study's; figures are
    paths or (path, caption) pairs, tables a mapping or pairs of name → DataFrame.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = build_report(tables, figures, title=title, study=study, extra_sections=extra_sections, tolerance=tolerance)
    path = out_dir / "report.html"
    tmp = out_dir / ".report.html.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_tables(tables_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every tables_dir/*.csv keyed by file stem; *_matrix tables get their row labels as index."""
    out = {}
    for path in sorted(Path(tables_dir).glob("*.csv")):
        index_col = 0 if path.stem.endswith("_matrix") else None
        try:
            out[path.stem] = pd.read_csv(path, index_col=index_col)
        except pd.errors.EmptyDataError:
            out[path.stem] = pd.DataFrame()
    return out
