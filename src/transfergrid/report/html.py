"""One self-contained HTML report: CSS inline, figures inlined as base64 PNG, tables rendered and
offered for download as data: URIs. No external URL, so the file can be mailed or archived alone.

`write_report(out_dir, tables, figures, *, title, study=None, extra_sections=())` writes
out_dir/report.html atomically. Every piece of text is escaped.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.analysis.regimes import scope_order
from transfergrid.report import style
from transfergrid.report.figures import FIGURES, FIGURES_BY_NAME

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
}

MAX_ROWS = 25  # longer tables show their head; the full table is in the downloads
MAX_COLUMNS = 16  # wider tables (the 44 x 44 grid) are shown as their heatmap only

ExtraSection = tuple[str, Iterable, object]


# --- formatting --------------------------------------------------------------------------------------
def _is_p_value(column: str) -> bool:
    c = column.lower()
    return c == "p" or c.endswith("_p") or c.startswith("p_") or c == "pvalue"


def format_value(value, column: str = "") -> str:
    """Numbers rounded for reading (p-values to 2 significant digits, the rest to 2 decimals);
    a missing value is an em dash, never 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) >= 10000 else str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if _is_p_value(column):
            return f"{v:.2g}"
        if column in ("n", "n_models", "n_recipients", "n_sources", "n_seeds") and v.is_integer():
            return str(int(v))
        if v != 0 and abs(v) < 0.01:
            return f"{v:.2g}"
        return f"{v:.2f}"
    return str(value)


def _with_index(table: pd.DataFrame) -> pd.DataFrame:
    """Matrices carry their row labels in the index; other tables use a plain range index."""
    if isinstance(table.index, pd.RangeIndex) and table.index.name is None:
        return table
    return table.reset_index()


def table_csv(table: pd.DataFrame) -> str:
    return _with_index(table).to_csv(index=False)


def render_table(name: str, table: pd.DataFrame) -> str:
    frame = _with_index(table)
    if frame.shape[1] > MAX_COLUMNS:
        return (f'<p class="note">{escape(name)}.csv: {frame.shape[0]} × {frame.shape[1] - 1} — too wide to show '
                "here; see the figure above and the download list.</p>")
    shown = frame.head(MAX_ROWS)
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    head = "".join(f'<th class="{"num" if numeric[c] else "text"}">{escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = "".join(f'<td class="{"num" if numeric[c] else "text"}">{escape(format_value(v, str(c)))}</td>'
                        for c, v in zip(frame.columns, record))
        rows.append(f"<tr>{cells}</tr>")
    note = (f'<p class="note">First {MAX_ROWS} of {len(frame):,} rows; the full table is in the downloads.</p>'
            if len(frame) > MAX_ROWS else "")
    return (f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{note}')


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return 0, 0
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def render_figure(png: Path, title: str, caption: str) -> str:
    # Shown at 100 CSS px per figure inch (the PNG has 150 dpi), so every figure has the same text size
    # and a square heatmap does not fill the whole screen.
    width, _ = _png_size(png)
    size = f' width="{round(width * 100 / style.DPI)}"' if width else ""
    return (f'<figure id="fig-{escape(Path(png).stem)}"><img alt="{escape(title)}"{size} '
            f'src="{_png_data_uri(png)}">'
            f"<figcaption><b>{escape(title)}.</b> {escape(caption)}</figcaption></figure>")


# --- header pieces -----------------------------------------------------------------------------------
def _counts(study, tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Models, tasks and languages: from the study when given, else read off the tables."""
    counts: dict[str, int] = {}
    if study is not None and hasattr(study, "models") and hasattr(study, "tasks"):
        return {"models": len(study.models), "tasks": len(study.tasks), "languages": len(study.languages)}
    if isinstance(study, Mapping):
        for key in ("models", "tasks", "languages"):
            value = study.get(key)
            if isinstance(value, (int, np.integer)):
                counts[key] = int(value)
            elif isinstance(value, (list, tuple)):
                counts[key] = len(value)
    for key, table, column in (("models", "on_off_task", "model"), ("tasks", "task_roles", "task"),
                               ("languages", "language_roles", "language")):
        t = tables.get(table)
        if key not in counts and isinstance(t, pd.DataFrame) and column in t:
            counts[key] = int(t[column].nunique())
    return counts


def _flat(value) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, (list, tuple)):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def _configuration(study) -> list[tuple[str, str]]:
    if study is None:
        return []
    if hasattr(study, "model_dump"):
        data = study.model_dump(mode="json")
        data["models"] = [f"{m.get('id')} ({m.get('source')})" if isinstance(m, Mapping) else m
                          for m in data.get("models", [])]
        if hasattr(study, "content_hash"):
            data["content hash"] = study.content_hash()
    else:
        data = dict(study)
    return [(str(k), _flat(v)) for k, v in data.items() if v not in (None, "", [], {})]


def _interval(intervals: pd.DataFrame | None, scope: str, rate: str) -> str:
    """' [low, high]' of a rate from the uplift_intervals table, or ''."""
    if intervals is None or intervals.empty or f"{rate}_ci_low" not in intervals:
        return ""
    row = intervals.loc[intervals["scope"].astype(str) == scope]
    if row.empty or pd.isna(row.iloc[0][f"{rate}_ci_low"]):
        return ""
    return f" [{float(row.iloc[0][f'{rate}_ci_low']):.1f}, {float(row.iloc[0][f'{rate}_ci_high']):.1f}]"


def _significance_note(tables: Mapping[str, pd.DataFrame]) -> str:
    """The line 'k of n transfer cells changed significantly (FDR 5 %), of which h harmful', or why
    there is none."""
    from transfergrid.analysis.intervals import ITEMS_UNAVAILABLE, significance_line

    line = significance_line(tables.get("significance_summary"))
    if line:
        return f'<p class="significance"><b>{escape(line)}.</b></p>'
    return f'<p class="note">{escape(ITEMS_UNAVAILABLE[0].upper() + ITEMS_UNAVAILABLE[1:])}.</p>'


def _headline(summary: pd.DataFrame | None, intervals: pd.DataFrame | None = None) -> str:
    if summary is None or summary.empty or "scope" not in summary:
        return ""
    table = summary.assign(scope=summary["scope"].astype(str)).set_index("scope")
    order = scope_order(table.index)
    cards = []
    for scope in order:
        row = table.loc[scope]
        mean = row.get("mean", np.nan)
        value = "—" if pd.isna(mean) else f"{float(mean):+.2f} pp"
        parts = []
        if "median" in row and pd.notna(row["median"]):
            parts.append(f"median {float(row['median']):+.2f}")
        if "n" in row and pd.notna(row["n"]):
            parts.append(f"{int(row['n']):,} cells")
        win = "" if pd.isna(row.get("win_rate", np.nan)) else (
            f'<span class="win">win {float(row["win_rate"]):.1f}%{_interval(intervals, scope, "win")}</span>')
        harm = "" if pd.isna(row.get("harm_rate", np.nan)) else (
            f'<span class="harm">harm {float(row["harm_rate"]):.1f}%{_interval(intervals, scope, "harm")}</span>')
        cards.append(f'<div class="card"><div class="scope">{escape(scope)}{" (all transfer cells)" if scope == "transfer" else ""}</div>'
                     f'<div class="value">{escape(value)}</div><div class="rates">{win} · {harm}</div>'
                     f'<div class="note">{escape(" · ".join(parts))}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _pick(tables, name: str, query: dict, column: str):
    t = tables.get(name)
    if not isinstance(t, pd.DataFrame) or t.empty or column not in t:
        return None
    mask = np.ones(len(t), dtype=bool)
    for k, v in query.items():
        if k not in t:
            return None
        mask &= (t[k] == v).to_numpy()
    values = t.loc[mask, column]
    return float(values.iloc[0]) if len(values) and pd.notna(values.iloc[0]) else None


def _findings(tables: Mapping[str, pd.DataFrame]) -> str:
    """The paper's headline findings as they come out of these tables (absent pieces are left out)."""
    items = []
    target = _pick(tables, "variance_decomposition", {"subset": "all", "scope": "MT-CL", "spec": "nested",
                                                      "component": "target"}, "share")
    resid = _pick(tables, "variance_decomposition", {"subset": "all", "scope": "MT-CL", "spec": "nested",
                                                     "component": "residual"}, "share")
    if target is not None and resid is not None:
        items.append(f"Target language explains {target:.1f} % of the variance in MT-CL (residual {resid:.1f} %; "
                     "the reference's nested model).")
    rho = _pick(tables, "ling_correlation", {"distance": "syntax_knn"}, "spearman_rho")
    p = _pick(tables, "ling_correlation", {"distance": "syntax_knn"}, "spearman_p")
    if rho is not None and p is not None:
        items.append(f"Syntactic distance vs MT-CL Δ: Spearman ρ = {rho:.3f} (p {'< 0.001' if p < 1e-3 else f'= {p:.3g}'}).")
    medians = tables.get("consistency_summary")
    if isinstance(medians, pd.DataFrame) and not medians.empty:
        m = medians[medians["variant"] == "model"]
        if not m.empty:
            items.append("Consistency Index medians (by model): " + ", ".join(
                f"{r.regime} {r.median:.2f}" for r in m.itertuples()) + ".")
    roles = tables.get("task_roles")
    if isinstance(roles, pd.DataFrame) and not roles.empty and roles["donor"].notna().any():
        items.append(f"Strongest task donor (CT-ML): {roles.loc[roles['donor'].idxmax(), 'task']}; largest "
                     f"recipient: {roles.loc[roles['recipient'].idxmax(), 'task']}.")
    return f'<ul class="findings">{"".join(f"<li>{escape(i)}</li>" for i in items)}</ul>' if items else ""


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
    counts = _counts(study, tables)
    name = getattr(study, "name", None) or (study.get("name") if isinstance(study, Mapping) else None)
    meta = [f"study {name}"] if name else []
    meta += [f"{v} {k if v != 1 else k[:-1]}" for k, v in counts.items()]  # "1 model", "2 models"
    if getattr(getattr(study, "evaluation", None), "fewshot", 0):
        meta.append(f"{study.evaluation.fewshot}-shot evaluation")
    meta.append("generated " + generated.strftime("%Y-%m-%d %H:%M %Z").strip())

    body: list[str] = []
    nav: list[tuple[str, str]] = []
    if isinstance(tables.get("uplift_summary"), pd.DataFrame) and not tables["uplift_summary"].empty:
        body.append(f'<section class="headline">{_headline(tables.get("uplift_summary"), tables.get("uplift_intervals"))}'
                    f'{_significance_note(tables)}{_findings(tables)}</section>')
    config = _configuration(study)
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
