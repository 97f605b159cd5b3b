"""Commands: train — fine-tune one adapter on one source cell (the function the runner calls)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401
from transfergrid.errors import UserError

Opt = typer.Option


@app.command("train")
def train_command(
    model: Annotated[str, Opt("--model", "-m", help="bundled:NAME, a Hugging Face id, a local dir or a GGUF file")],
    task: Annotated[str, Opt("--task", "-t", help="benchmark, e.g. arc_challenge")],
    lang: Annotated[str, Opt("--lang", "-l", help="language code, e.g. es")],
    out: Annotated[Path, Opt("--out", "-o", help="adapter directory to write")],
    seed: Annotated[int, Opt("--seed", help="training seed (the reference used 17, 42, 101)")] = 42,
    limit: Annotated[int | None, Opt("--limit", min=1, help="train on the first N items "
                                     "(and the first N/9 validation items)")] = None,
    fmt: Annotated[str, Opt("--format", "-f", help="prompt format: cloze | letters | numbers")] = "cloze",
    chat_template: Annotated[bool, Opt("--chat-template", help="wrap prompts in the model's chat template")] = False,
    epochs: Annotated[int | None, Opt("--epochs", min=1, help="default: 3 (the reference recipe)")] = None,
    learning_rate: Annotated[float | None, Opt("--lr", min=0.0, help="default: 5e-5")] = None,
    rank: Annotated[int | None, Opt("--rank", min=1, help="LoRA rank (default 32; alpha stays 2 x rank)")] = None,
    max_length: Annotated[int | None, Opt("--max-length", min=8, help="tokens per example (default 512)")] = None,
    full: Annotated[bool, Opt("--full", help="full fine-tuning instead of LoRA")] = False,
    data_dir: Annotated[Path | None, Opt("--data-dir", help="benchmark data root")] = None,
) -> None:
    """Train one adapter on TASK:LANG (train split; validation split for epoch selection)."""
    from transfergrid.prompts import FORMATS
    from transfergrid.train import train_adapter
    from transfergrid.training_config import TrainingSpec, spelled_loc

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    overrides = {"epochs": epochs, "learning_rate": learning_rate, "max_length": max_length,
                 "rank": rank, "alpha": 2 * rank if rank else None, "method": "full" if full else None}
    try:
        spec = TrainingSpec(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = spelled_loc({"training": overrides}, ("training", *first["loc"]))[1:]  # rank, not adapter.r
        raise UserError(f"training option {'.'.join(map(str, loc))}: {first['msg']}") from None

    from transfergrid.data import load_items, resolve_data_dir

    root = resolve_data_dir(data_dir)
    train_items = list(load_items(task, lang, "train", root))
    val_items = list(load_items(task, lang, "validation", root))
    if limit is not None:
        train_items, val_items = train_items[:limit], val_items[:max(1, math.ceil(limit / 9))]
    if not train_items:
        raise UserError(f"{task}:{lang} has no train items in {root}")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        result = train_adapter(model, train_items, val_items, spec, seed=seed, fmt=fmt, chat_template=chat_template,
                               out_dir=out, meta={"cells": [f"{task}:{lang}"]}, progress=bar)

    table = Table(title=f"{task}:{lang} ({fmt}{', chat' if chat_template else ''}; {model}; seed {seed})")
    for col in ("epoch", "train loss", "validation loss", ""):
        table.add_column(col, justify="right")
    for epoch, (tl, vl) in enumerate(zip(result.train_losses, result.val_losses), start=1):
        table.add_row(str(epoch), f"{tl:.4f}", "-" if vl is None else f"{vl:.4f}",
                      "kept" if epoch == result.best_epoch else "")
    console.print(table)
    console.print(f"{result.train_size} train / {result.val_size} validation items, {result.steps} steps, "
                  f"{result.wall_time_s:.1f} s, {result.tokens_per_second:.0f} tokens/s; wrote {out}")
