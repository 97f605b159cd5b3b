"""Shared look of the study-1 figures and the HTML report: palettes, matplotlib settings, CSS.

Colours are colour-blind safe: Okabe-Ito for categories, ColorBrewer RdBu (diverging, centred on
zero) for Δ; red means harm and blue means gain in every figure.
"""

from __future__ import annotations

import contextlib

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]

DIVERGING_CMAP = "RdBu"  # negative Δ red, positive Δ blue
WIN_COLOUR = "#0072B2"
HARM_COLOUR = "#D55E00"
NEUTRAL_COLOUR = "#7f7f7f"

VARIANCE_COMPONENTS = ["model", "source", "target", "residual"]
COMPONENT_COLOURS = {"model": "#0072B2", "source": "#E69F00", "target": "#009E73", "residual": "#BBBBBB"}

DELTA_LABEL = "Δ (pp)"
DPI = 150

RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",  # text stays text in the SVG: searchable, small
    "figure.dpi": 100,
}


def category_colours(names) -> dict[str, str]:
    """A stable colour per category, in order of first appearance (cycles after eight)."""
    ordered = list(dict.fromkeys(str(n) for n in names))
    return {name: OKABE_ITO[k % len(OKABE_ITO)] for k, name in enumerate(ordered)}


CSS = """
:root { --ink: #1d232a; --muted: #5b6570; --line: #dde2e7; --bg: #f7f8fa; --accent: #0072B2;
        --win: #0072B2; --harm: #D55E00; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 32px 64px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 22px; }
h1 { font-size: 28px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 38px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
.meta { color: var(--muted); margin: 0; }
.meta span + span::before { content: " · "; }
nav { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; margin: 14px 0;
      display: flex; flex-wrap: wrap; gap: 4px 18px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
.headline { margin: 8px 0 18px; }
.findings { margin: 6px 0 0 18px; padding: 0; line-height: 1.5; }
.definition { font-size: 0.85em; color: #5a6570; margin: 2px 0 6px; font-style: italic; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; margin: 12px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .scope { font-weight: 600; color: var(--muted); font-size: 13px; text-transform: none; }
.card .value { font-size: 26px; font-weight: 700; }
.card .rates { font-size: 13px; }
.win { color: var(--win); } .harm { color: var(--harm); }
figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 16px 0; padding: 12px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 8px; }
figcaption b { color: var(--ink); }
.table-wrap { overflow-x: auto; background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #eef1f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 12px; }
dl.config { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; background: #fff;
            border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
dl.config dt { font-weight: 600; } dl.config dd { margin: 0; overflow-wrap: anywhere; }
ul.downloads { columns: 3 220px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def rc():
    """pyplot with the report's settings (`RC`) in force."""
    plt = pyplot()
    with plt.rc_context(RC):
        yield plt
