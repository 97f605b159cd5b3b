"""Command: plan (and `run --dry-run`) — what a study will run and what it will cost, writing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from transfergrid.cli.app import app, console
from transfergrid.errors import UserError

Opt = typer.Option


def _jobs(study, data):
    """`plan.build_jobs` with callbacks that never fail offline: (jobs, unresolved notes)."""
    from transfergrid.models import model_fingerprint
    from transfergrid.plan import build_jobs

    unresolved: dict[str, str] = {}
    revisions = {m.source: m.revision for m in study.models}
    hashes: dict[str, str] = {}

    def manifest_hash(task: str) -> str:
        if task not in hashes:  # a failure too is asked once, not once per job
            try:
                hashes[task] = data.manifest_hash(task)
            except UserError as exc:
                unresolved[f"manifest of {task}"] = str(exc)
                hashes[task] = f"unchecked:{task}"
        return hashes[task]

    def fingerprint(source: str) -> str:
        try:
            if _is_hub(source):  # never ask the network while planning: the HF cache or nothing
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(source, "config.json", revision=revisions.get(source))
                if isinstance(cached, str):
                    return f"{source}@{Path(cached).parent.name}"
                unresolved[f"model {source}"] = "not in the local Hugging Face cache"
                return f"unresolved:{source}"
            return model_fingerprint(source, revision=revisions.get(source))
        except UserError as exc:
            unresolved[f"model {source}"] = str(exc)
            return f"unresolved:{source}"

    return build_jobs(study, manifest_hash, fingerprint), unresolved


def _go_offline_if_unreachable(study) -> bool:
    """Without a route to the Hugging Face hub, switch its clients to offline mode before they are
    imported: each failed request is otherwise retried with back-off for minutes. True if offline."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return True
    needs_hub = any(str(s).startswith("hf:") for s in study.data.sources.values()) or any(
        _is_hub(m.source) for m in study.models)
    if not needs_hub:
        return False
    try:
        socket.getaddrinfo("huggingface.co", 443)
        return False
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
        return True


def _is_hub(source: str) -> bool:
    from transfergrid import models

    try:
        return models.source_kind(source) == "hub"
    except UserError:
        return False


def _cost(train_tps, eval_tps, at_size_b, flops, gpus, measure, measure_model, study, costs=None):
    from transfergrid.costs import CostModel, measure_cost

    if costs is not None:
        return CostModel.from_costs_file(costs, gpus)
    if train_tps is not None or eval_tps is not None:
        if train_tps is None or eval_tps is None:
            raise UserError("--train-tokens-per-s and --eval-tokens-per-s go together")
        return CostModel.from_throughput(train_tps, eval_tps, at_size_b,
                                         f"given: {train_tps:g} training / {eval_tps:g} scoring tokens/s "
                                         f"per device at {at_size_b:g}B parameters, scaled by model size", gpus)
    if flops is not None:
        return CostModel.from_flops(flops, full=study.training.method == "full", gpus=gpus)
    if measure:
        return measure_cost(measure_model, gpus=gpus)
    return None


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:,.1f} h" if seconds >= 360 else f"{seconds:,.0f} s"


def _per_model_rows(est, study):
    from transfergrid.plan import TRAIN

    rows = []
    for m in study.models:
        tr = [j for j in est.jobs if j.model == m.id and j.kind == TRAIN]
        ev = [j for j in est.jobs if j.model == m.id and j.kind != TRAIN]
        secs = None if est.cost is None else sum(j.seconds for j in tr + ev)
        rows.append({
            "model": m.id, "size_b": m.size_b, "tokens_by": est.tokenizers[m.id],
            "trainings": len(tr), "train_items_per_job": _mean([j.items for j in tr]),
            "train_tokens_per_job": _mean([j.tokens for j in tr]),
            "eval_jobs": len(ev), "eval_items_per_job": _mean([j.items for j in ev]),
            "eval_tokens_per_job": _mean([j.tokens for j in ev]), "seconds": secs,
        })
    return rows


def _si(x: float) -> str:
    return f"{x / 1e6:,.1f}M" if x >= 1e7 else f"{x:,.0f}"


def _mean(values):
    return sum(values) / len(values) if values else 0


def show_plan(study_path: Path, out: Path | None = None, data_dir: Path | None = None, *,
              cost=None, sample: int = 50, as_json: bool = False) -> dict:
    """Print the plan of a study (and return it as a dict); writes nothing."""
    from transfergrid.data import StudyData, resolve_data_dir
    from transfergrid.estimate import estimate_study
    from transfergrid.store import DB_NAME, Store
    from transfergrid.study import load_study

    study = load_study(study_path)
    offline = _go_offline_if_unreachable(study)
    data = StudyData(study, resolve_data_dir(data_dir, study))
    jobs, unresolved = _jobs(study, data)
    est = estimate_study(study, data, jobs, cost=cost, sample=sample)
    root = Path(out) if out is not None else study.output_path()
    to_run = None
    if (root / DB_NAME).is_file() and not unresolved:
        to_run = len(Store(root).missing(jobs))
    rows = _per_model_rows(est, study)
    from transfergrid.profiles import profile_warnings

    warnings = profile_warnings(study, data.root)
    report = {
        "study": study.name, "profile": study.profile, "counts": est.counts, "to_run": to_run,
        "tokens": {"train": est.total("train"), "eval": est.total() - est.total("train")},
        "models": rows, "compute_s": est.seconds,
        "wall_s": None if est.seconds is None else est.seconds / est.cost.gpus,
        "cost_basis": None if est.cost is None else est.cost.basis,
        "unchecked": {**est.unchecked, **unresolved}, "warnings": warnings,
        "notes": (["the Hugging Face hub is unreachable: planned offline"] if offline else []) + est.notes,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return report
    _print(report, est, cost)
    return report


def _n(count: int, noun: str) -> str:
    """'1 model', '2 models', '1,188 trainings'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _print(report, est, cost) -> None:
    c = report["counts"]
    prof = f" (profile {report['profile']})" if report["profile"] else ""
    console.print(f"[bold]{escape(report['study'])}[/]{escape(prof)}: {_n(c['models'], 'model')} x "
                  f"{_n(c['source cells'], 'source cell')} x {_n(c['seeds'], 'seed')} = "
                  f"{_n(c['trainings'], 'training')}; {_n(c['evaluation jobs'], 'evaluation job')} over "
                  f"{_n(c['target cells'], 'target cell')} ({_n(c['cell evaluations'], 'cell evaluation')}); "
                  f"{_n(c['result cells'], 'result cell')}",
                  highlight=False, soft_wrap=True)
    if report["to_run"] is not None:
        console.print(f"{report['to_run']:,} of {len(est.jobs):,} jobs still to run (the rest are in the store)")
    # plain aligned lines, not a rich table: narrow terminals and logs keep every figure whole
    w = max(len(r["model"]) for r in report["models"])
    console.print(f"{'per job:':<{w}}  size  trainings  items     tokens |  evals   items      tokens |   compute",
                  highlight=False, soft_wrap=True)
    for r in report["models"]:
        size = f"{r['size_b']:g}B" if r["size_b"] else "?"
        console.print(f"{r['model']:<{w}} {size:>5} {r['trainings']:>10,} {r['train_items_per_job']:>6,.0f} "
                      f"{r['train_tokens_per_job']:>10,.0f} | {r['eval_jobs']:>6,} {r['eval_items_per_job']:>7,.0f} "
                      f"{_si(r['eval_tokens_per_job']):>11} | {_hours(r['seconds']):>9}", highlight=False, soft_wrap=True)
    t = report["tokens"]
    console.print(f"tokens: {t['train']:,.0f} training (all epochs, validation included), "
                  f"{t['eval']:,.0f} scored", highlight=False)
    if cost is None:
        console.print("compute: give --train-tokens-per-s and --eval-tokens-per-s (at --at-size-b), "
                      "--flops-per-s, or --measure for a time estimate")
    else:
        gpus = f"; {_hours(report['wall_s'])} wall on {cost.gpus} devices" if cost.gpus > 1 else ""
        console.print(f"estimated compute: {_hours(report['compute_s'])} device time{gpus}", highlight=False)
        console.print(f"  basis: {escape(cost.basis)}", highlight=False, soft_wrap=True)
    by_reason: dict[str, list[str]] = {}
    for what, why in report["unchecked"].items():
        by_reason.setdefault(why, []).append(what)
    for why, whats in by_reason.items():
        console.print(f"[yellow]not checked[/] {escape(', '.join(whats))}: {escape(why)}",
                      highlight=False, soft_wrap=True)
    for line in report["warnings"]:
        console.print(f"[yellow]warning[/] {escape(line)}", highlight=False, soft_wrap=True)
    for note in report["notes"]:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)


@app.command("plan")
def plan_command(
    study_path: Annotated[Path, typer.Argument(help="the study file (TOML)")],
    out: Annotated[Path | None, Opt("--out", "-o", help="output directory (default: the study's output_dir)")] = None,
    data_dir: Annotated[Path | None, Opt("--data-dir", help="benchmark data root")] = None,
    train_tps: Annotated[float | None, Opt("--train-tokens-per-s", help="training throughput per device")] = None,
    eval_tps: Annotated[float | None, Opt("--eval-tokens-per-s", help="scoring throughput per device")] = None,
    at_size_b: Annotated[float, Opt("--at-size-b", help="model size (B params) those throughputs are for")] = 1.0,
    flops: Annotated[float | None, Opt("--flops-per-s", help="sustained FLOP/s per device instead")] = None,
    gpus: Annotated[int, Opt("--gpus", min=1, help="devices working in parallel")] = 1,
    measure: Annotated[bool, Opt("--measure", help="measure throughput on this machine first")] = False,
    measure_model: Annotated[str, Opt("--measure-model", help="the local model --measure times")]
        = "bundled:smollm2-135m-instruct",
    sample: Annotated[int, Opt("--sample", min=1, help="items per cell whose tokens are counted")] = 50,
    as_json: Annotated[bool, Opt("--json", help="machine-readable output")] = False,
    costs: Annotated[Path | None, Opt("--costs", help="per-token costs from benchmarks/gpu.py --costs")] = None,
) -> None:
    """Jobs, cells, items and tokens per job, and the estimated compute of the study; writes nothing."""
    from transfergrid.study import load_study

    cost = _cost(train_tps, eval_tps, at_size_b, flops, gpus, measure, measure_model, load_study(study_path),
                 costs)
    show_plan(study_path, out, data_dir, cost=cost, sample=sample, as_json=as_json)
