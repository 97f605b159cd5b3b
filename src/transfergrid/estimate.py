"""What a study costs before it runs: jobs, cells, items and tokens per job, and compute time.

Counts come from `plan.build_jobs` (the jobs `run` would execute). Items come from the study's data
(`StudyData`); where a source cannot be read (a hub dataset offline), from the local copy of the
same benchmark under the data root if there is one, else from the split sizes alone, and the plan
says so. Tokens are counted with each model's own tokenizer where it is available locally (a tiny
or bundled model, a local directory, a hub model in the HF cache), else estimated as UTF-8 bytes / 4
(`BYTES_PER_TOKEN`), and per cell from a sample of items (`sample`), scaled to the cell's size.

Token counts follow our engines: a training example is the context plus the gold continuation
(the reference encoding: its fixed padded length, as the reference computed on the padding too);
an evaluation item is the context plus every continuation (scored in one packed pass). A training
job processes its training tokens once per epoch (forward and backward) and its validation tokens
once per epoch (forward only).

Time = tokens x seconds per token, with the per-token costs of `costs.CostModel`.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfergrid.costs import CostModel
from transfergrid.errors import UserError
from transfergrid.records import Cell, Item

log = logging.getLogger(__name__)

BYTES_PER_TOKEN = 4.0  # fallback when no tokenizer is at hand: UTF-8 bytes per token
ASSUMED_ITEM_BYTES = 600  # fallback when no text of a task is readable at all: bytes per item


# --- tokens ----------------------------------------------------------------------------------------


def local_tokenizer(source: str):
    """The model's tokenizer if it can be had without a download, else None."""

    from transfergrid import models
    from transfergrid.bundled import gguf_cache_dir

    try:
        kind = models.source_kind(source)
    except UserError:
        return None
    try:
        from transformers import AutoTokenizer

        if kind == "tiny":
            from transfergrid.testing import tiny_tokenizer

            return tiny_tokenizer()
        if kind in ("bundled", "gguf"):
            target = gguf_cache_dir(models.model_fingerprint(source))
            return AutoTokenizer.from_pretrained(target) if (target / "config.json").is_file() else None
        if kind == "dir":
            return AutoTokenizer.from_pretrained(Path(source).expanduser())
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a tokenizer we cannot load is just not available
        log.debug("no local tokenizer for %s: %s", source, exc)
        return None


def _bytes_tokens(text: str) -> float:
    return len(text.encode("utf-8")) / BYTES_PER_TOKEN


def train_tokens(items: Sequence[Item], study, tokenizer) -> list[float]:
    """Tokens of each training example (context + gold continuation, or the reference's padded length)."""
    from transfergrid.prompts import reference_training_text, render

    spec = study.training
    if spec.encoding == "reference":
        return [float(spec.max_length_for(it.task)) for it in items if reference_training_text(it) is not None]
    out = []
    fmt, chat = study.train_format(), study.train_chat_template()
    for it in items:
        p = render(it, fmt, chat_template=chat and tokenizer is not None, tokenizer=tokenizer)
        text = p.context + p.continuations[p.gold]
        n = len(tokenizer(text)["input_ids"]) if tokenizer is not None else _bytes_tokens(text)
        out.append(float(min(n, spec.max_length_for(it.task))))
    return out


def eval_tokens(items: Sequence[Item], study, tokenizer) -> list[float]:
    """Tokens our scoring engine feeds per item: the context plus every continuation."""
    from transfergrid.prompts import render

    ev = study.evaluation
    out = []
    for it in items:
        p = render(it, ev.format, chat_template=ev.chat_template and tokenizer is not None, tokenizer=tokenizer)
        texts = [p.context, *p.continuations]
        if tokenizer is not None:
            out.append(float(sum(len(r) for r in tokenizer(texts, add_special_tokens=False)["input_ids"])))
        else:
            out.append(sum(_bytes_tokens(t) for t in texts))
    return out


# --- items per cell --------------------------------------------------------------------------------


@dataclass
class CellItems:
    """The items of one (cell, split): `n` of them, `sample` readable ones (may be empty)."""

    n: int
    sample: list[Item]
    note: str | None = None


class ItemSource:
    """Items of the study's cells; unreadable data degrades to counts, and every fallback is noted."""

    def __init__(self, study, data, sample: int):
        self.study, self.data, self.sample = study, data, sample
        self.unchecked: dict[str, str] = {}  # what could not be read -> why
        self._failed: set[str] = set()
        self.stand_ins: dict[str, str] = {}  # cell -> the language whose local texts stood in  # tasks whose data failed once (offline: do not retry each cell)
        self._cache: dict[tuple[Cell, str], CellItems] = {}

    def get(self, cell: Cell, split: str) -> CellItems:
        key = (cell, split)
        if key not in self._cache:
            self._cache[key] = self._read(cell, split)
        return self._cache[key]

    def _read(self, cell: Cell, split: str) -> CellItems:
        if cell.task not in self._failed:
            try:
                items = self.data.items(cell, split)
                return CellItems(len(items), _every(items, self.sample))
            except UserError as exc:
                self._failed.add(cell.task)
                self.unchecked.setdefault(f"{cell.task} ({self._source(cell.task)})", str(exc))
        n = self._count(cell.task, split)
        local = self._local(cell)
        return CellItems(n, _every(local, self.sample), "local copy" if local else "no text")

    def _source(self, task: str) -> str:
        return self.study.data.sources.get(task) or "data root"

    def _count(self, task: str, split: str) -> int:
        """The split's size from the manifest file (no data needed), else from the split sizes."""
        from transfergrid.data import manifests as files

        sp = self.study.splits
        if self.data.manifest_files is not None:
            try:
                m = files.read_manifest_csv(files.manifest_path(self.data.manifest_files, task))
            except UserError as exc:
                self.unchecked.setdefault(f"manifest of {task}", str(exc))
            else:
                if split == "test":
                    return len(m.test)
                train, val = files.reference_validation_split(list(m.train), sp.validation_fraction,
                                                              sp.validation_seed)
                return len(val) if split == "validation" else len(train)
        n_train, n_test = sp.sizes(task)
        if split == "test":
            return n_test
        n_val = round(n_train * sp.validation_fraction)
        return n_val if split == "validation" else n_train - n_val

    def _local(self, cell: Cell) -> list[Item]:
        """The same benchmark's items from the data root's own files, as a stand-in for the texts."""
        from transfergrid.data import load_items
        from transfergrid.data.registry import get_benchmark

        if self.study.data.sources.get(cell.task) is None:
            return []
        try:
            bench = get_benchmark(cell.task)
            langs = bench.languages(self.data.root)
        except UserError:
            return []
        # the cell's own language, else the first language the data root has (a stand-in for length)
        for lang in ([cell.lang] if cell.lang in langs else []) + [x for x in langs if x != cell.lang]:
            try:
                out: list[Item] = []
                for split in bench.splits(lang, self.data.root):
                    out += load_items(cell.task, lang, split, self.data.root)
                if lang != cell.lang:
                    self.stand_ins[str(cell)] = lang
                return out
            except UserError:
                continue
        return []


def _every(items: Sequence[Item], k: int) -> list[Item]:
    if len(items) <= k:
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


# --- the estimate ----------------------------------------------------------------------------------


@dataclass
class JobEstimate:
    kind: str
    model: str
    label: str
    items: int
    tokens: float
    seconds: float | None = None


@dataclass
class StudyEstimate:
    jobs: list[JobEstimate]
    counts: dict[str, int]
    tokenizers: dict[str, str]  # model id -> "tokenizer" | "bytes/4"
    notes: list[str] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)
    cost: CostModel | None = None

    def total(self, kind: str | None = None, what: str = "tokens") -> float:
        values = [getattr(j, what) for j in self.jobs if kind is None or j.kind == kind]
        return float(sum(v for v in values if v is not None))

    @property
    def seconds(self) -> float | None:
        return None if self.cost is None else self.total(what="seconds")


def grid_counts(study, jobs) -> dict[str, int]:
    from transfergrid.plan import TRAIN

    trains = [j for j in jobs if j.kind == TRAIN]
    evals = [j for j in jobs if j.kind != TRAIN]
    adapters_evals = [j for j in evals if j.adapter_key is not None]
    counts = {
        "models": len(study.models), "seeds": len(study.seeds),
        "source cells": len({j.spec["source_cell"] for j in trains}),
        "target cells": len(study.target_cells()),
        "trainings": len(trains), "evaluation jobs": len(evals),
        "cell evaluations": sum(len(j.spec.get("targets", [])) for j in evals),
    }
    if study.kind == "transfer":
        # the released CSV's rows: one per (model, source cell, target cell), seeds averaged
        counts["result cells"] = len(study.models) * counts["source cells"] * counts["target cells"]
    else:
        counts["result cells"] = len({(j.model, j.spec.get("source_cell")) for j in adapters_evals}) * \
            counts["target cells"]
    return counts


def estimate_study(study, data, jobs, *, cost: CostModel | None = None, sample: int = 50,
                   tokenizer_for: Callable[[str], Any] = local_tokenizer) -> StudyEstimate:
    """Items, tokens and (with `cost`) seconds of every job in `jobs`."""
    from transfergrid.plan import TRAIN

    items = ItemSource(study, data, sample)
    sizes = {m.id: m.size_b for m in study.models}
    tokenizers: dict[str, Any] = {}
    for m in study.models:
        tokenizers[m.id] = tokenizer_for(m.source)
    per_cell: dict[tuple[str, Cell, str], tuple[int, float]] = {}

    def cell_tokens(model: str, cell: Cell, split: str) -> tuple[int, float]:
        key = (model, cell, split)
        if key not in per_cell:
            got = items.get(cell, split)
            count = train_tokens if split != "test" else eval_tokens
            if study.kind == "transfer" and split != "test" and study.training.encoding == "reference":
                # padded to the task's max length: exact without any text
                per_cell[key] = (got.n, float(got.n * study.training.max_length_for(cell.task)))
                return per_cell[key]
            values = count(got.sample, study, tokenizers[model]) if got.sample else []
            mean = statistics.fmean(values) if values else ASSUMED_ITEM_BYTES / BYTES_PER_TOKEN
            per_cell[key] = (got.n, mean * got.n)
        return per_cell[key]

    epochs = study.training.epochs
    out: list[JobEstimate] = []
    for job in jobs:
        size = sizes.get(job.model) or 1.0
        if job.kind == TRAIN:
            cells = _train_cells(study, job)
            n_tr, t_tr = _limited([cell_tokens(job.model, c, "train") for c in cells], study.training.limit)
            n_va, t_va = _limited([cell_tokens(job.model, c, "validation") for c in cells],
                                  None if study.training.limit is None else math.ceil(study.training.limit / 9))
            tokens = epochs * (t_tr + t_va)
            seconds = None if cost is None else epochs * (cost.train_seconds(t_tr, size)
                                                          + cost.eval_seconds(t_va, size))
            out.append(JobEstimate(TRAIN, job.model, job.label, n_tr + n_va, tokens, seconds))
        else:
            limit = study.evaluation.limit
            n, tokens = 0, 0.0
            for cell in job.targets:
                k, t = cell_tokens(job.model, cell, "test")
                if limit and k > limit:
                    t, k = t * limit / k, limit
                n, tokens = n + k, tokens + t
            if job.spec.get("variant") in ("cot", "ft-cot"):  # generation: up to max_new_tokens per item
                tokens += n * study.cot_spec().max_new_tokens
            seconds = None if cost is None else cost.eval_seconds(tokens, size)
            out.append(JobEstimate(job.kind, job.model, job.label, n, tokens, seconds))

    notes = []
    if any(v is None for v in tokenizers.values()):
        missing = [m for m, t in tokenizers.items() if t is None]
        chat = " (chat-template tokens not counted)" if study.evaluation.chat_template else ""
        notes.append(f"tokens estimated from UTF-8 bytes / {BYTES_PER_TOKEN:g}{chat} for {len(missing)} model(s) "
                     f"without a local tokenizer: {', '.join(missing)}")
    noted = {f"{c}:{s}": v.note for (c, s), v in items._cache.items() if v.note}
    if any(v == "local copy" for v in noted.values()):
        notes.append("texts of unreadable sources taken from the local copy of the same benchmark "
                     "under the data root (the same questions where the ids agree)")
    if items.stand_ins:
        by_task: dict[str, set[str]] = {}
        for cell, lang in items.stand_ins.items():
            by_task.setdefault(cell.split(":")[0], set()).add(lang)
        notes.append("languages without a local copy took their token counts from another language's: "
                     + "; ".join(f"{t} from {', '.join(sorted(ls))}" for t, ls in sorted(by_task.items())))
    if any(v == "no text" for v in noted.values()):
        cells = sorted({k.split(":")[0] for k, v in noted.items() if v == "no text"})
        notes.append(f"no text at all for {', '.join(cells)}: {ASSUMED_ITEM_BYTES} bytes per item assumed")
    if any(c.n > sample for c in items._cache.values()):
        notes.append(f"tokens per cell from a sample of {sample} items, scaled to the cell's size")
    if cost is not None and cost.gpus > 1:
        notes.append(f"wall time over {cost.gpus} devices assumes perfect scaling (jobs are independent)")
    return StudyEstimate(out, grid_counts(study, jobs),
                         {m: ("tokenizer" if t is not None else f"bytes/{BYTES_PER_TOKEN:g}")
                          for m, t in tokenizers.items()},
                         notes, items.unchecked, cost)


def _limited(parts: list[tuple[int, float]], limit: int | None) -> tuple[int, float]:
    """(items, tokens) over cells, cut to the first `limit` items (at the cells' mean tokens per item)."""
    n, tokens = sum(k for k, _ in parts), sum(t for _, t in parts)
    if limit is not None and n > limit:
        return limit, tokens * limit / n
    return n, tokens


def _train_cells(study, job) -> list[Cell]:
    if study.kind == "relatedness":
        r = study.relatedness
        return [Cell(r.benchmark, lang) for lang in r.source_languages]
    from transfergrid.composition import members_of

    return list(members_of(job.spec["source_cell"]))  # a source set: its cells
