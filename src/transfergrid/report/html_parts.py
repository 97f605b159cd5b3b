"""The HTML report's pieces: a value formatted for reading, a table (its head, with a download
of the whole as CSV), a figure inlined as a base64 PNG with its caption. Every text is escaped."""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from transfergrid.report import style

MAX_ROWS = 25  # longer tables show their head; the full table is in the downloads
MAX_COLUMNS = 16  # wider tables (the 44 x 44 grid) are shown as their heatmap only


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
