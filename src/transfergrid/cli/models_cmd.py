"""Commands: models — bundled models and their conversion cache; any model's architecture and size."""

from __future__ import annotations

from typing import Annotated

import typer
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
    from transfergrid.bundled import BUNDLED, bundled_status
    from transfergrid.cache import cache_dir

    table = Table(title=f"bundled models (cache: {cache_dir('models')})")
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
                  "tiny:[seed=N,layers=N,hidden=N], random:NAME[?small&layers=N...] (shape-only: "
                  "`transfergrid models show random:llama-3.1-8b`)", markup=False)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


@models_app.command("show")
def show_command(
    source: Annotated[str, typer.Argument(help="bundled:NAME, random:NAME, tiny:, a .gguf file, an HF directory "
                                               "or hub id")],
    revision: Annotated[str | None, typer.Option(help="hub revision")] = None,
) -> None:
    """Architecture, parameter count and memory at each dtype, from the config alone (no weights)."""
    from transfergrid.architectures import ARCHITECTURES, LORA_RANK, describe_config
    from transfergrid.models import model_config

    a = describe_config(model_config(source, revision=revision))
    table = Table(title=f"{source}: {a.model_class}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    rows = [
        ("layers", a.layers), ("hidden size", a.hidden), ("intermediate size", a.intermediate),
        ("attention heads", a.heads), ("kv heads", a.kv_heads), ("head dim", a.head_dim), ("vocabulary", a.vocab),
        ("tied embeddings", "yes" if a.tie_embeddings else "no"),
        ("rope theta", f"{a.rope_theta:g}" if a.rope_theta else "-"),
        ("max positions", a.max_positions or "-"), ("sliding window", a.sliding_window or "-"),
        ("parameters", f"{_count(a.params)} ({a.params:,})"),
        ("  embeddings", _count(a.embedding_params)), ("  decoder matmuls", _count(a.body_matmul_params)),
        ("weights fp32", _size(a.weight_bytes("fp32"))), ("weights bf16", _size(a.weight_bytes("bf16"))),
        ("weights fp16", _size(a.weight_bytes("fp16"))),
        (f"LoRA r={LORA_RANK} adapter", (f"{_count(a.lora_params)} params, {_size(a.lora_bytes('fp32'))} fp32, "
                                        f"{_size(a.lora_bytes('bf16'))} bf16")),
        ("KV cache bf16", f"{_size(a.kv_bytes_per_token('bf16') * 1000)} per 1,000 tokens"),
        ("forward FLOPs", (f"{a.forward_flops(1) / 1e9:.2f} GFLOP per token (+ {2 * a.hidden * a.vocab / 1e9:.2f} "
                          "per read position)")),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if source.startswith("random:") and source.split(":", 1)[1].split("?")[0] in ARCHITECTURES:
        console.print("shape-only: random weights at the real size; no download", markup=False)
