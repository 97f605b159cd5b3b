"""The job functions: train one adapter, evaluate one variant on one target cell.

A `Worker` holds one base model at a time (with its `AdapterSet`) and reuses it across jobs, so
the local executor and each Ray actor load a base model once and switch adapters in place. The
worker never touches the store: it returns results, and the caller (the local executor, or the Ray
driver) commits them. Adapters are the exception: `train_adapter` writes them, atomically, into
the directory the caller names.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfergrid.plan import Job
from transfergrid.records import Cell
from transfergrid.study import Study

log = logging.getLogger(__name__)


@dataclass
class CellResult:
    """The scores of one variant on one target cell, ready for `Store.commit_cell`."""

    cell: Cell
    metrics: dict[str, float]
    items: list[dict[str, Any]]
    seconds: float


class Worker:
    """Runs jobs of one study; caches the base model of the last job."""

    def __init__(self, study: Study, data_dir: str | Path | None = None, device: str | None = None, data=None):
        if data is None:
            from transfergrid.data import StudyData

            data = StudyData(study, Path(data_dir))
        self.study = study
        self.data = data
        self.device = device
        self._source: str | None = None
        self.loaded = None
        self.adapters = None

    def _model_spec(self, model_id: str):
        return next(m for m in self.study.models if m.id == model_id)

    def base(self, job: Job):
        """The loaded base model of `job` (loaded once, kept until a job needs another model)."""
        from transfergrid.adapters import AdapterSet
        from transfergrid.models import load_model

        if self._source != job.source:
            self.loaded = self.adapters = self._source = None
            spec = self._model_spec(job.model)
            self.loaded = load_model(job.source, device=self.device, revision=spec.revision,
                                     dtype=None if spec.dtype == "auto" else spec.dtype)
            self.adapters = AdapterSet(self.loaded)
            self._source = job.source
        return self.loaded

    # --- train --------------------------------------------------------------------------------
    def train(self, job: Job, out_dir: Path) -> dict[str, Any]:
        """Train the adapter of `job` into `out_dir` (written atomically by train_adapter)."""
        from transfergrid.train import train_adapter

        if self.adapters is not None and self.adapters.model is not self.loaded.model:
            self._source = None  # adapters were injected into this base: train on a clean load
        loaded = self.base(job)
        cell = Cell.parse(job.spec["source_cell"])
        s = self.study
        meta = {"key": job.key, "study": s.name, "study_hash": s.content_hash(), "model_id": job.model,
                "source_cell": str(cell), "seed": job.spec["seed"]}
        if s.kind == "relatedness":  # study 2: one training set, the source languages pooled
            train_items, val_items = self.data.relatedness_train(), self.data.relatedness_validation()
            meta["data_manifest_hash"] = self.data.manifest_hash(cell.task)
        elif job.spec.get("source_cells"):  # a source set (composition.py): its cells pooled
            from transfergrid.composition import pooled_items

            members = [Cell.parse(c) for c in job.spec["source_cells"]]
            train_items = pooled_items(self.data, members, "train", job.spec["seed"])
            val_items = pooled_items(self.data, members, "validation", job.spec["seed"])
            meta["cells"] = [str(c) for c in members]
            meta["data_manifest_hash"] = {t: self.data.manifest_hash(t) for t in sorted({c.task for c in members})}
        else:
            train_items, val_items = self.data.items(cell, "train"), self.data.items(cell, "validation")
            meta["data_manifest_hash"] = self.data.manifest_hash(cell.task)
        start = time.perf_counter()
        result = train_adapter(
            loaded, train_items, val_items, s.training,
            seed=job.spec["seed"], fmt=s.train_format(), chat_template=s.train_chat_template(),
            out_dir=Path(out_dir), meta=meta,
        )
        self._restore_eval_mode()
        summary = _plain(result)
        summary["seconds"] = time.perf_counter() - start
        return summary

    def _restore_eval_mode(self) -> None:
        # Training may leave the shared base in train mode (dropout on): scores must not change.
        if self.loaded is not None:
            self.loaded.model.eval()

    # --- evaluate -----------------------------------------------------------------------------
    def target_items(self, cell: Cell):
        items = self.data.items(cell, "test")
        limit = self.study.evaluation.limit
        return list(items)[:limit] if limit else list(items)

    def evaluate(self, job: Job, cell: Cell, adapter_dir: Path | None = None) -> CellResult:
        """Score `job`'s variant on one target cell. The adapter stays loaded across cells of the
        same job; call `unload(job)` when the job is over."""
        from transfergrid.scoring import cell_metrics, score_variants

        if job.spec.get("variant") in ("cot", "ft-cot"):
            return self.chain_of_thought(job, cell, adapter_dir)
        loaded = self.base(job)
        name = self._ensure_adapter(job, adapter_dir)
        ev = self.study.evaluation
        start = time.perf_counter()
        items = self.target_items(cell)
        from transfergrid.fewshot import cell_prompts
        from transfergrid.prompts import GENERATIVE_TASKS

        prompts = cell_prompts(self.study, self.data, cell, items, loaded.tokenizer)  # None: zero-shot
        fmt = "cloze" if cell.task in GENERATIVE_TASKS else ev.format  # mgsm has its one prompt
        scores = score_variants(self.adapters, loaded.tokenizer, [name], items, fmt,
                                chat_template=ev.chat_template, batch_tokens=ev.batch_tokens, prompts=prompts,
                                max_new_tokens=ev.max_new_tokens)[name]
        return CellResult(cell, cell_metrics(scores), [s.to_dict() for s in scores], time.perf_counter() - start)

    def chain_of_thought(self, job: Job, cell: Cell, adapter_dir: Path | None = None) -> CellResult:
        """A CoT evaluation on one target cell: the base model (study 2's ablation, every adapter
        off) or one adapter (a transfer grid's "ft-cot") reasons, then its answer labels are
        scored; the records keep the reasoning."""
        from transfergrid.cot import (
            COT_INSTRUCTION,
            GRID_COT_INSTRUCTION,
            cot_score_items,
        )

        loaded = self.base(job)
        self.adapters.activate(self._ensure_adapter(job, adapter_dir))
        ev, cot = self.study.evaluation, self.study.cot_spec()
        instruction = GRID_COT_INSTRUCTION if self.study.kind == "transfer" else COT_INSTRUCTION
        start = time.perf_counter()
        scores = cot_score_items(self.adapters.model, loaded.tokenizer, self.target_items(cell),
                                 chat_template=ev.chat_template, max_new_tokens=cot.max_new_tokens,
                                 batch_size=cot.batch_size, batch_tokens=ev.batch_tokens, instruction=instruction)
        acc = sum(s.correct for s in scores) / len(scores) if scores else float("nan")
        # the labels " 1" .. " 4" are equally long: length normalisation changes nothing
        metrics = {"n": len(scores), "acc": acc, "acc_norm": acc, "acc_bytes": None}
        return CellResult(cell, metrics, [s.to_dict() for s in scores], time.perf_counter() - start)

    def _ensure_adapter(self, job: Job, adapter_dir: Path | None) -> str | None:
        key = job.adapter_key
        if key is None:
            return None
        if key not in self.adapters.names:
            if adapter_dir is None:
                raise ValueError(f"{job.label}: no adapter directory given")
            self.adapters.add(key, adapter_dir)
        return key

    def unload(self, job: Job) -> None:
        """Free the adapter of a finished (or failed) evaluation job."""
        key = job.adapter_key
        if key is not None and self.adapters is not None and key in self.adapters.names:
            self.adapters.remove(key)


def _plain(result) -> dict[str, Any]:
    """A JSON-friendly summary of a TrainResult (whatever its exact fields)."""
    import dataclasses

    if dataclasses.is_dataclass(result):
        data = dataclasses.asdict(result)
    elif isinstance(result, dict):
        data = dict(result)
    else:
        data = {k: v for k, v in vars(result).items() if not k.startswith("_")} if hasattr(result, "__dict__") else {}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()
            if isinstance(v, (str, int, float, bool, type(None), list, dict, Path))}
