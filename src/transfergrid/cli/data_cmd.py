"""Commands: `transfergrid data list | check | show | audit`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfergrid.cli.app import console, data_app
from transfergrid.errors import UserError

Opt, Arg = typer.Option, typer.Argument
DataDir = Annotated[Path | None, Opt("--data-dir", help="Benchmark data root (default: $TRANSFERGRID_DATA, "
                                                          "the study's data.dir, or ../shared/data).")]


@data_app.command("list")
def list_cmd(data_dir: DataDir = None) -> None:
    """Benchmarks and languages found in the data root, with items per split."""
    from transfergrid.data import (
        benchmark_names,
        get_benchmark,
        load_items,
        resolve_data_dir,
    )

    root = resolve_data_dir(data_dir)
    table = Table(title=f"benchmarks in {root}")
    for col in ("benchmark", "lang", "items per split", "construction", "metric"):
        table.add_column(col)
    for name in benchmark_names():
        bench = get_benchmark(name)
        metric = "generative" if bench.generative else ("acc_norm" if bench.has_norm else "acc")
        langs = bench.languages(root)
        if not langs:
            table.add_row(name, "-", "no local files (data.sources: hf: or a local copy)", bench.construction, metric)
        for lang in langs:
            counts = [f"{split} {len(load_items(name, lang, split, root))}" for split in bench.splits(lang, root)]
            table.add_row(name, lang, ", ".join(counts), bench.construction, metric)
    console.print(table)


@data_app.command("check")
def check_cmd(study_file: Annotated[Path, Arg(help="Study file (TOML).")], data_dir: DataDir = None) -> None:
    """Build every cell's parallel splits for STUDY and check them; exit 2 on any problem."""
    from transfergrid.data import StudyData, resolve_data_dir
    from transfergrid.study import load_study

    study = load_study(study_file)
    data = StudyData(study, resolve_data_dir(data_dir, study))
    rows = data.check()
    table = Table(title=f"{study.name}: parallel splits ({data.root})")
    for col in ("cell", "train", "validation", "test", "status"):
        table.add_column(col)
    for row in rows:
        status = "[red]problem[/]" if row.problem else "[green]ok[/]"
        table.add_row(str(row.cell), str(row.train), str(row.validation), str(row.test), status)
    console.print(table)
    problems = list(dict.fromkeys(row.problem for row in rows if row.problem))
    if problems:  # one line per distinct problem (a manifest's missing ids: one line per task)
        n = sum(1 for row in rows if row.problem)
        sep = " " if len(problems) == 1 else "\n  "
        raise UserError(f"{n} of {len(rows)} cells have problems:{sep}" + sep.join(problems))
    hashes = ", ".join(f"{task} {data.manifest_hash(task)}" for task in [*study.tasks, *study.target_only_tasks()])
    console.print(f"all {len(rows)} cells ok; manifests: {hashes}")


@data_app.command("show")
def show_cmd(
    task: Annotated[str, Arg(help="Benchmark, e.g. arc_challenge.")],
    lang: Annotated[str, Arg(help="Language code, e.g. es.")],
    split: Annotated[str | None, Opt("--split", help="Raw split (default: the benchmark's last).")] = None,
    item_id: Annotated[str | None, Opt("--id", help="Show the item with this id.")] = None,
    index: Annotated[int | None, Opt("--index", help="Show the item at this position.")] = None,
    limit: Annotated[int, Opt("--limit", min=1, help="Items to show without --id / --index.")] = 3,
    prompt: Annotated[bool, Opt("--prompt", help="Show the rendered prompt instead.")] = False,
    fmt: Annotated[str, Opt("--format", help="Prompt format: cloze, letters or numbers.")] = "cloze",
    chat_template: Annotated[bool, Opt("--chat-template", help="Wrap in the chat template of --model.")] = False,
    model: Annotated[str | None, Opt("--model", help="Model whose tokenizer renders the chat template.")] = None,
    pretty: Annotated[bool | None, Opt("--pretty/--lines", help="Indented JSON, or one object per line "
                                                                 "(default: indented on a terminal only).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Items of one benchmark cell as JSON Lines (indented on a terminal), or with --prompt the exact prompt text."""
    from transfergrid.data import get_benchmark, load_items, resolve_data_dir

    root = resolve_data_dir(data_dir)
    bench = get_benchmark(task)
    split = split or bench.splits(lang, root)[-1]
    items = load_items(task, lang, split, root)
    if item_id is not None:
        chosen = [i for i in items if i.id == item_id]
        if not chosen:
            raise UserError(f"{task}:{lang} {split}: no item with id {item_id!r} "
                            f"(ids look like {', '.join(i.id for i in items[:3])})")
    elif index is not None:
        if not 0 <= index < len(items):
            raise UserError(f"{task}:{lang} {split}: --index {index} outside 0..{len(items) - 1}")
        chosen = [items[index]]
    else:
        chosen = items[:limit]
    if not prompt:
        if pretty is None:  # indented for a person, one object per line for a pipe (`jq`, `head`)
            pretty = sys.stdout.isatty()
        for item in chosen:
            record = {"id": item.id, "task": item.task, "lang": item.lang, "context": item.context,
                      "choices": list(item.choices), "gold": item.gold, "meta": dict(item.meta)}
            line = json.dumps(record, ensure_ascii=False)
            if pretty:
                console.print_json(line)
            else:
                sys.stdout.write(line + "\n")
        return
    from transfergrid.prompts import preview, render

    tokenizer = None
    if chat_template:
        if model is None:
            raise UserError("--chat-template needs --model, whose tokenizer holds the template")
        from transfergrid.models import load_model

        tokenizer = load_model(model).tokenizer
    for item in chosen:
        console.rule(f"{item.task}:{item.lang} {item.id}")
        console.print(preview(render(item, fmt, chat_template=chat_template, tokenizer=tokenizer)),
                      markup=False, highlight=False)


@data_app.command("audit")
def audit_cmd(
    target: Annotated[Path, Arg(help="A study file (.toml) or a split,id manifest file (.csv).")],
    task: Annotated[str | None, Opt("--task", help="The benchmark of a manifest file, e.g. truthfulqa_mc1.")] = None,
    languages: Annotated[str | None, Opt("--languages", help="Comma-separated languages of a manifest file "
                                                             "(default: every language of the benchmark).")] = None,
    source: Annotated[str | None, Opt("--source", help="A data.sources value for a manifest file's benchmark "
                                                       "(hf:... or a local copy in that layout).")] = None,
    pivot: Annotated[str | None, Opt("--pivot", help="Compare every language with this one "
                                                     "(default: en where present, else the first).")] = None,
    strict: Annotated[bool, Opt("--strict", help="Exit 2 when any item differs from the pivot's.")] = False,
    data_dir: DataDir = None,
) -> None:
    """For every id, whether the items of the different languages are the same question
    (number of choices, gold position, structure; TruthfulQA: mc1 / mc2 shapes)."""
    from transfergrid.data import resolve_data_dir
    from transfergrid.data.audit import audit_manifest, audit_study, summarize

    if target.suffix == ".toml":
        from transfergrid.study import load_study

        study = load_study(target)
        rows = audit_study(study, resolve_data_dir(data_dir, study), pivot=pivot)
    else:
        if task is None:
            raise UserError(f"{target}: a manifest file needs --task, the benchmark its ids belong to")
        langs = [x.strip() for x in languages.split(",") if x.strip()] if languages else None
        rows = audit_manifest(target, task, resolve_data_dir(data_dir), langs, source, pivot)
    table = Table(title=f"parallel ids: {target.name}")
    for col in ("task", "lang", "vs", "ids", "missing", "differ", "differ %", "e.g."):
        table.add_column(col)
    for r in rows:
        share = f"{100 * r.differ / r.compared:.1f}" if r.compared else "-"
        table.add_row(r.task, r.lang, r.pivot, str(r.ids), str(r.missing),
                      f"[red]{r.differ}[/]" if r.differ else "0", share, ", ".join(r.examples))
    console.print(table)
    lines = summarize(rows)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if not lines:
        console.print("every id has the same structure in every language")
    if strict and lines:
        raise UserError(f"{len(lines)} task(s) with items that differ across languages (--strict)")
