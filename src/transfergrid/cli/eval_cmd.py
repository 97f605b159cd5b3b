"""Commands: eval — score one cell (task x language) with a model and optionally a LoRA adapter."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from transfergrid.cli.app import app, console, data_app, models_app  # noqa: F401
from transfergrid.errors import ModelError, UserError

log = logging.getLogger(__name__)


def _load_adapter(loaded, adapter: Path):
    """The model to score with `adapter` active, switched in place on the loaded base model."""
    if not adapter.is_dir():
        raise ModelError(f"adapter {adapter}: no such directory")
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"adapter {adapter}: no adapter_config.json (expected a PEFT LoRA adapter directory)")
    from transfergrid.adapters import AdapterSet

    adapters = AdapterSet(loaded)  # a base mismatch is a ModelError naming the adapter
    adapters.add("adapter", adapter)
    adapters.activate("adapter")
    return adapters


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """Atomic: a crash never leaves a half-written result file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


Opt = typer.Option


@app.command("eval")
def eval_command(
    model: Annotated[str, Opt("--model", "-m", help="bundled:NAME, a Hugging Face id, a local dir or a GGUF file")],
    task: Annotated[str, Opt("--task", "-t", help="benchmark, e.g. arc_challenge")],
    lang: Annotated[str, Opt("--lang", "-l", help="language code, e.g. es")],
    out: Annotated[Path, Opt("--out", "-o", help="per-item results, one JSON line per item")],
    adapter: Annotated[Path | None, Opt("--adapter", help="a LoRA adapter directory trained on this model")] = None,
    fmt: Annotated[str, Opt("--format", "-f", help="cloze | letters | numbers")] = "cloze",
    chat_template: Annotated[bool, Opt("--chat-template", help="wrap the prompt in the model's chat template")] = False,
    split: Annotated[str, Opt("--split", help="train | validation | test")] = "test",
    limit: Annotated[int | None, Opt("--limit", min=1, help="score only the first N items")] = None,
    data_dir: Annotated[Path | None, Opt("--data-dir", help="benchmark data root")] = None,
    batch_tokens: Annotated[int | None, Opt("--batch-tokens", min=1, help="tokens per forward pass")] = None,
    max_new_tokens: Annotated[int, Opt("--max-new-tokens", min=1, help="generation budget (mgsm)")] = 256,
) -> None:
    """Score one cell; print acc / acc_norm / acc_bytes and write per-item results to --out."""
    from transfergrid import scoring
    from transfergrid.data import load_items, resolve_data_dir
    from transfergrid.models import load_model
    from transfergrid.prompts import FORMATS

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if out.suffix != ".jsonl":
        raise UserError(f"--out {out}: expected a .jsonl file")
    if adapter is not None and not adapter.exists():
        raise ModelError(f"adapter {adapter}: no such directory")

    root = resolve_data_dir(data_dir)
    items = list(load_items(task, lang, split, root))
    if limit is not None:
        items = items[:limit]
    if not items:
        raise UserError(f"{task}:{lang} has no {split} items in {root}")

    loaded = load_model(model)
    scorer = _load_adapter(loaded, adapter) if adapter is not None else loaded.model
    with Progress(TextColumn(f"{task}:{lang} {fmt}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        job = bar.add_task("score", total=len(items))
        scores = scoring.score_variants(
            scorer, loaded.tokenizer, ["adapter" if adapter is not None else None], items, fmt,
            chat_template=chat_template, batch_tokens=batch_tokens, max_new_tokens=max_new_tokens,
            progress=lambda n: bar.advance(job, n),
        )
    (cell_scores,) = scores.values()
    _write_jsonl(out, [s.to_dict() for s in cell_scores])

    m = scoring.cell_metrics(cell_scores)
    table = Table(title=f"{task}:{lang} ({fmt}{', chat' if chat_template else ''}; {model}"
                        f"{' + ' + str(adapter) if adapter else ''})")
    for col in ("n", "acc", "acc_norm", "acc_bytes"):
        table.add_column(col, justify="right")
    table.add_row(str(m["n"]), f"{m['acc']:.4f}", f"{m['acc_norm']:.4f}", f"{m['acc_bytes']:.4f}")
    console.print(table)
    console.print(f"wrote {len(cell_scores)} items to {out}")
