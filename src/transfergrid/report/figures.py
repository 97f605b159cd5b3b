"""Study-1 figures: the registry and the writer. The figures themselves are in `heatmaps`,
`role_figures` and `breakdown_figures`: each function takes analysis tables and returns a matplotlib
Figure (no I/O).

`write_figures(tables, figures_dir)` is the edge that saves every figure whose tables are present
and non-empty, as PNG (150 dpi) and SVG. `FIGURES` names each figure, the tables it needs, and a
caption that tells a reader how to read it (the HTML report shows these captions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from transfergrid.report import style
from transfergrid.report.breakdown_figures import (
    consistency_distributions,
    distance_scatter,
    regime_bars,
    variance_shares,
)
from transfergrid.report.heatmaps import (
    grid_heatmap_marked,
    language_heatmap,
    task_heatmap,
)
from transfergrid.report.role_figures import (
    family_roles_scatter,
    language_roles_scatter,
    on_off_task_scatter,
    pareto_family_panels,
    task_roles_scatter,
)

log = logging.getLogger(__name__)


# --- registry and writer -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    name: str
    needs: tuple[str, ...]
    build: Callable[..., object]
    title: str
    caption: str
    section: str
    optional: tuple[str, ...] = ()  # tables passed as keywords when present and non-empty


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("regime_bars", ("uplift_summary",), regime_bars, "Transfer by regime",
               "Left: mean Δ (bars; blue = gain, red = loss) and median Δ (diamonds) per regime, in percentage "
               "points against the base model. Right: the share of cells that gain (Δ > 0) and that are harmed "
               "(Δ ≤ −1 pp). 'transfer' pools every cell except the source cell itself (MT-ML).", "uplift"),
    FigureSpec("grid_heatmap", ("grid_matrix",), grid_heatmap_marked, "The full transfer grid",
               "Each row is a source cell (the task and language an adapter was trained on), each column a target "
               "cell; colour is the mean Δ over models and seeds (blue = gain, red = loss, grey = not measured). "
               "Black lines separate tasks, so diagonal blocks are same-task transfer. The colour scale is "
               "symmetric around zero and clipped at the 98th percentile of |Δ| (arrow ends on the colour bar). "
               "Where per-item results exist, a black dot in a cell's corner marks a change that is significant (exact sign "
               "test on the item differences averaged over seeds and models, Benjamini-Hochberg FDR 5 % across "
               "the grid).", "matrices", optional=("grid_significance",)),
    FigureSpec("language_heatmap", ("language_matrix",), language_heatmap, "Language → language (MT-CL)",
               "Mean Δ when training on one language (row) and evaluating the same task in another language "
               "(column), averaged over tasks and models. Read a row for a language's strength as a donor, a "
               "column for its strength as a recipient.", "matrices"),
    FigureSpec("task_heatmap", ("task_matrix",), task_heatmap, "Task → task (CT-ML)",
               "Mean Δ when training on one task (row) and evaluating another task (column) in the same language, "
               "averaged over languages and models.", "matrices"),
    FigureSpec("language_roles", ("language_roles",), language_roles_scatter, "Language donors and recipients",
               "Each point is a language: x = its donor score (mean MT-CL Δ it gives other languages), y = its "
               "recipient score (mean MT-CL Δ it receives). Bars are ± 1 standard error across models (absent "
               "with a single model). Points below the dotted diagonal give more than they receive.", "roles"),
    FigureSpec("task_roles", ("task_roles",), task_roles_scatter, "Task donors and recipients",
               "As for languages, from cross-task transfer within a language (CT-ML): x = mean Δ a task gives "
               "other tasks, y = mean Δ it receives.", "roles"),
    FigureSpec("family_roles", ("family_roles",), family_roles_scatter, "Donors and recipients per model family",
               "Language donor and recipient scores (MT-CL) computed within each model family, on shared axes; "
               "a language that moves between panels is a donor or recipient for some families only.", "roles"),
    FigureSpec("on_off_task", ("on_off_task",), on_off_task_scatter, "On-task vs off-task transfer",
               "Each point is one adapter (model × source cell): x = mean Δ on the same task in other languages "
               "(MT-CL), y = mean Δ on other tasks (CT-ML ∪ CT-CL). Points in the lower-right quadrant help the "
               "trained task but hurt the others.", "on_off"),
    FigureSpec("pareto_family_summary", ("pareto_family_summary", "on_off_task"), pareto_family_panels,
               "On-task vs off-task transfer per model family",
               "One panel per family. Large markers: per model and source task, the mean MT-CL Δ (x) against "
               "the mean off-task Δ (y), marker area growing with parameters; faint markers: the per-language "
               "adapters behind them (≥ 3 MT-CL and ≥ 5 off-task cells, as the reference).", "on_off"),
    FigureSpec("variance_shares", ("variance_decomposition",), variance_shares, "Where the variance of Δ comes from",
               "Share of the variance of Δ attributed to the model, the source cell, the target cell and the "
               "residual, by a linear mixed model with random intercepts. 'crossed' is Δ ~ 1 + (1|model) + "
               "(1|source) + (1|target); 'nested' (hatched) is the reference's statsmodels form, which nests "
               "source and target inside model.", "variance"),
    FigureSpec("consistency", ("consistency",), consistency_distributions, "Consistency across models",
               "For each source cell, the consistency index is the mean Kendall τ-b between every pair of models' "
               "rankings of its recipients: 1 = all models agree which targets gain most, 0 = no agreement. "
               "Boxes show quartiles over source cells; points are individual sources. Variants rank models "
               "individually, averaged within a family, or averaged within a size bucket.", "consistency"),
    FigureSpec("distance_scatter", ("ling_pairs", "ling_correlation"), distance_scatter,
               "Transfer vs linguistic distance",
               "Each point is an ordered language pair: the mean MT-CL Δ from source to target over models and "
               "tasks, against the distance between the two languages. Pairs share languages and are not "
               "independent, so the permutation p-value (Mantel/QAP test over language labels) is the one to "
               "trust.", "distance"),
)

FIGURES_BY_NAME = {spec.name: spec for spec in FIGURES}


def _usable(table) -> bool:
    """Has at least one number to draw (labels alone, e.g. an all-NaN matrix, do not count)."""
    if not isinstance(table, pd.DataFrame) or table.empty:
        return False
    return bool(table.select_dtypes("number").notna().to_numpy().any())


def save_figure(fig, figures_dir: str | Path, name: str) -> list[Path]:
    """PNG (150 dpi) and SVG of one figure; closes it."""
    folder = Path(figures_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with style.rc() as plt:
        for ext in ("png", "svg"):
            path = folder / f"{name}.{ext}"
            fig.savefig(path, dpi=style.DPI, bbox_inches="tight", facecolor="white")
            paths.append(path)
        plt.close(fig)
    return paths


def write_figures(tables: Mapping[str, pd.DataFrame], figures_dir: str | Path) -> list[Path]:
    """Save every figure whose tables are present and non-empty into figures_dir; returns the paths."""
    paths: list[Path] = []
    for spec in FIGURES:
        needed = [tables.get(key) for key in spec.needs]
        if not all(_usable(t) for t in needed):
            log.debug("figure %s skipped: table %s empty or missing", spec.name, ", ".join(spec.needs))
            continue
        extra = {key: tables[key] for key in spec.optional if _usable(tables.get(key))}
        paths += save_figure(spec.build(*needed, **extra), figures_dir, spec.name)
    return paths
