"""Jobs of a study and their content keys; the plan is the jobs the store does not hold yet.

Two kinds of job (DESIGN.md, "Keys, store and resume"):

- ``train``: one adapter for (model, source cell, seed);
- ``eval``: one variant of a model over all target cells. The variant is the base model
  (``adapter_key`` None) or one trained adapter (``adapter_key`` = its train job's key).

A relatedness study (study 2) has the same two kinds: per model and seed one adapter trained on
its source languages pooled (``source_cell`` "belebele:id+ms"), and its evaluation on the target
languages; the base model's evaluation; and, when ``relatedness.cot.enabled``, the base model's
chain-of-thought evaluation (``variant`` "cot", keyed also by the CoT procedure and its settings).
Every evaluation's spec names its ``variant``: "base", "ft" or "cot".

A transfer study with ``evaluation.cot`` adds, per model, the base model's CoT evaluation
(``variant`` "cot") and per adapter its CoT evaluation (``variant`` "ft-cot"), each keyed as its
zero-shot twin plus the CoT settings; the zero-shot keys are those of the same study without CoT.

A key is the sha256 of everything that determines the job's output: model fingerprint, data
manifest hash(es), prompt format, chat template, training config (``TrainingSpec.flat()``: the same
in the flat and the table spelling), seed, and the versions of ``versions.py`` (evaluation:
``PROMPT_VERSION``, ``SCORING_VERSION``; training: ``PROMPT_VERSION``, and ``ENCODING_VERSION`` once
bumped past its first value). Evaluation is deterministic, so the base model is evaluated once per model
(its key has no seed) and export copies it to every seed. A changed study file gives new keys;
rows under the old keys are simply not used (``status`` counts them as orphans).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from transfergrid.composition import source_label
from transfergrid.records import Cell
from transfergrid.study import Study
from transfergrid.versions import COT_VERSION, eval_key_versions, train_key_versions

TRAIN, EVAL = "train", "eval"
COT_VARIANTS = ("cot", "ft-cot")  # chain-of-thought evaluations: of the base model, of an adapter


def is_cot(job: Job) -> bool:
    """A chain-of-thought evaluation (study 2's ablation or a transfer grid's CoT variant)."""
    return job.kind == EVAL and job.spec.get("variant") in COT_VARIANTS


@dataclass(frozen=True)
class Job:
    """One unit of work. `spec` is plain JSON (stored in the jobs table, sent to Ray workers)."""

    kind: str
    key: str
    spec: Mapping[str, Any] = field(compare=False, hash=False)

    @property
    def model(self) -> str:
        return self.spec["model"]

    @property
    def source(self) -> str:
        """The base model's source (what `load_model` takes)."""
        return self.spec["model_source"]

    @property
    def adapter_key(self) -> str | None:
        """An adapter evaluation's dependency: the train job whose adapter it evaluates."""
        return self.spec.get("adapter_key")

    @property
    def targets(self) -> list[Cell]:
        return [Cell.parse(c) for c in self.spec.get("targets", [])]

    @property
    def label(self) -> str:
        s = self.spec
        if self.kind == TRAIN:
            return f"train {s['model']} on {s['source_cell']} (seed {s['seed']})"
        if s.get("variant") == "cot":
            return f"eval {s['model']} chain-of-thought"
        if self.adapter_key is None:
            return f"eval {s['model']} base"
        cot = " chain-of-thought" if s.get("variant") == "ft-cot" else ""
        return f"eval {s['model']} + {s['source_cell']} (seed {s['seed']}){cot}"


def content_key(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def build_jobs(study: Study, manifest_hash: Callable[[str], str],
               fingerprint: Callable[[str], str], fewshot: Mapping[str, Any] | None = None) -> list[Job]:
    """Every job of the study, in a runnable order: per model, its trainings, then its evaluations.

    `manifest_hash(task)` and `fingerprint(source)` come from the data and models layers
    (`StudyData.manifest_hash`, `models.model_fingerprint`); they are parameters so that planning
    stays a pure function of its inputs. `fewshot` (`fewshot.key_fields`): the few-shot setting
    and its drawn example ids, part of every evaluation key of a few-shot study.
    """
    if study.evaluation.fewshot and not fewshot:
        raise ValueError("a few-shot study's jobs need its examples' ids (fewshot.key_fields)")
    ev = study.evaluation
    targets = [str(c) for c in study.target_cells()]
    target_data = {t: manifest_hash(t) for t in dict.fromkeys(c.task for c in study.target_cells())}
    eval_common = {
        "kind": EVAL, "targets": targets, "data": target_data, "format": ev.format,
        "chat_template": ev.chat_template, "limit": ev.limit, **eval_key_versions(),
    }
    from transfergrid.data.registry import get_benchmark

    if any(get_benchmark(c.task).generative for c in study.target_cells()):  # mgsm targets generate
        eval_common["max_new_tokens"] = ev.max_new_tokens
    if fewshot:  # zero-shot keys stay as they were
        eval_common["fewshot"] = dict(fewshot)
    split = {"validation_fraction": study.splits.validation_fraction,
             "validation_seed": study.splits.validation_seed}
    train_common = {
        "kind": TRAIN, "format": study.train_format(), "chat_template": study.train_chat_template(),
        "split": split,
        # the effective format and chat template above; the spec's None ("as evaluation") is not.
        # Gradient checkpointing changes memory and time, not the adapter: not part of the key.
        "training": study.training.flat(exclude={"format", "chat_template", "gradient_checkpointing"}),
        **train_key_versions(),
    }
    cot = _cot_settings(study)
    jobs: list[Job] = []
    for m in study.models:
        fp = fingerprint(m.source)
        if m.dtype != "auto":  # the same weights in another dtype score (and train) differently
            fp = f"{fp}:{m.dtype}"
        base = {"model": m.id, "model_source": m.source, "seed": None, "source_cell": None,
                "adapter_key": None, "targets": targets, "variant": "base"}
        jobs.append(Job(EVAL, content_key({**eval_common, "fingerprint": fp, "adapter": None}), base))
        if cot is not None:
            ckey = content_key({**eval_common, "fingerprint": fp, "adapter": None, "cot": cot})
            jobs.append(Job(EVAL, ckey, {**base, "variant": "cot"}))
        trains, evals, cots = [], [], []
        for cells in _sources(study):
            label = source_label(cells)
            for seed in study.seeds:
                tkey = content_key({**train_common, "fingerprint": fp, **_source_fields(cells, manifest_hash),
                                    "seed": seed})
                spec = {"model": m.id, "model_source": m.source, "seed": seed, "source_cell": label}
                if len(cells) > 1:
                    spec["source_cells"] = [str(c) for c in cells]
                trains.append(Job(TRAIN, tkey, spec))
                ekey = content_key({**eval_common, "fingerprint": fp, "adapter": tkey})
                evals.append(Job(EVAL, ekey, {**spec, "adapter_key": tkey, "targets": targets, "variant": "ft"}))
                if cot is not None and study.kind == "transfer":
                    ckey = content_key({**eval_common, "fingerprint": fp, "adapter": tkey, "cot": cot})
                    cots.append(Job(EVAL, ckey, {**spec, "adapter_key": tkey, "targets": targets,
                                                 "variant": "ft-cot"}))
        jobs += trains + evals + cots
    return jobs


def _sources(study: Study) -> list[tuple[Cell, ...]]:
    """What adapters are trained on: each source (a cell or a set of cells, composition.py), or
    (study 2) the source languages pooled."""
    if study.kind == "relatedness":
        r = study.relatedness
        return [(Cell(r.benchmark, "+".join(r.source_languages)),)]
    return study.sources()


def _source_fields(cells: tuple[Cell, ...], manifest_hash: Callable[[str], str]) -> dict[str, Any]:
    """The source's part of a train key: a single cell's fields as before composition existed; a
    set's sorted member cells and the manifests of their tasks."""
    if len(cells) == 1:
        return {"source_cell": str(cells[0]), "data": manifest_hash(cells[0].task)}
    return {"source_cell": source_label(cells), "source_cells": [str(c) for c in sorted(cells)],
            "data": {t: manifest_hash(t) for t in sorted({c.task for c in cells})}}


def _cot_settings(study: Study) -> dict[str, Any] | None:
    """What determines a chain-of-thought evaluation beyond its zero-shot twin; None = no CoT job."""
    spec = study.cot_spec()
    if spec is None:
        return None
    from transfergrid.cot import GRID_COT_INSTRUCTION

    # batch_size too: left-padded batches can change greedy generations in the last bits
    settings = {"version": COT_VERSION, **spec.model_dump(mode="json", exclude={"enabled"})}
    if study.kind == "transfer":  # study 2's keys stay as they were (its instruction is COT_VERSION's)
        settings["instruction"] = GRID_COT_INSTRUCTION
    return settings


def study_jobs(study: Study, data) -> list[Job]:
    """`build_jobs` with the real data manifests (`data` is a `StudyData`) and model fingerprints."""
    from transfergrid.models import model_fingerprint

    cache: dict[str, str] = {}
    revisions = {m.source: m.revision for m in study.models}

    def fingerprint(source: str) -> str:
        if source not in cache:
            cache[source] = model_fingerprint(source, revision=revisions.get(source))
        return cache[source]

    from transfergrid.fewshot import key_fields

    return build_jobs(study, data.manifest_hash, fingerprint, key_fields(study, data, study.target_cells()))


def plan(study: Study, store, data=None, *, jobs: list[Job] | None = None) -> list[Job]:
    """The jobs still missing from `store`, in runnable order."""
    if jobs is None:
        if data is None:
            from transfergrid.data import StudyData, resolve_data_dir

            data = StudyData(study, resolve_data_dir(None, study))
        jobs = study_jobs(study, data)
    return store.missing(jobs)
