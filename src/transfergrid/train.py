"""Fine-tuning one (possibly pooled) source: a LoRA adapter by the reference recipe, or full fine-tuning.

The recipe (MISSION.md, `training_config.TrainingSpec` defaults): LoRA r=32, alpha=64, dropout 0 on the
q,k,v,o,gate,up,down projections; AdamW, lr 5e-5, linear decay after 10% warmup, 3 epochs, batch 8;
validation loss after every epoch and the best epoch's weights kept; loss on the answer tokens only.
Gradients are clipped to norm 1.0, the default of the HF Trainer the reference ran.

An example is `prompt.context + prompt.continuations[gold]`, tokenised exactly as the scoring engine
tokenises that pair (`encoding.encode_prompts`), so training and evaluation see the same tokens; the
labels are -100 on the context and the token ids on the answer. Too long an example loses context
tokens from the left, never answer tokens (`train_examples`: ours and the reference's encodings).

Speed: batches are padded only to their own longest example, and examples of similar length share a
batch (shuffled, then sorted by length inside buckets of 16 batches, then the batches shuffled;
all with a generator seeded by `seed`); the vocabulary projection runs only on the answer positions.
For a fixed seed, training on CPU is deterministic. Batch order, loss and validation: `train_loop`.

Output (`out_dir`, written atomically): the PEFT adapter (`PeftModel.from_pretrained` loads it; for
full fine-tuning a complete HF model directory) plus `transfergrid.json` with the study hash, source
cells, seed, config, data manifest hash, sizes, per-epoch losses, the chosen epoch, wall time and
tokens per second.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfergrid import devices
from transfergrid.encoding import pad_id
from transfergrid.errors import DivergenceError, ModelError, UserError
from transfergrid.prompts import PROMPT_VERSION
from transfergrid.records import Item
from transfergrid.train_examples import IGNORE_INDEX, encode_items
from transfergrid.train_loop import (
    accumulate,
    length_grouped_batches,
    random_batches,
    validation_loss,
)
from transfergrid.training_config import ALL_LINEAR, TrainingSpec
from transfergrid.versions import library_versions as _versions

log = logging.getLogger(__name__)

MAX_GRAD_NORM = 1.0  # HF Trainer's default, as in the reference pipeline
METADATA_FILE = "transfergrid.json"

# Short names of the reference's target projections -> module names used by model families.
MODULE_ALIASES = {
    "q": ("q_proj", "query"), "k": ("k_proj", "key"), "v": ("v_proj", "value"),
    "o": ("o_proj", "out_proj", "dense"), "gate": ("gate_proj", "w1"), "up": ("up_proj", "w3"),
    "down": ("down_proj", "w2"),
}


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    cells: list[str]
    seed: int
    train_size: int
    val_size: int
    train_losses: list[float]
    val_losses: list[float | None]
    best_epoch: int  # 1-based
    steps: int
    train_tokens: int
    wall_time_s: float
    tokens_per_second: float
    metadata: dict[str, Any]


# --- model preparation -------------------------------------------------------------------------


def resolve_target_modules(model, requested: Sequence[str] | str) -> list[str] | str:
    """Module names to adapt: each requested name if the model has it, a short name (q, k, v, o,
    gate, up, down) mapped to the model's own name; names the model lacks are dropped. PEFT's own
    "all-linear" (every linear layer but the output layer) goes to PEFT as it is."""
    import torch

    if requested == ALL_LINEAR:
        return ALL_LINEAR
    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    found, missing = [], []
    for name in requested:
        candidates = (name,) + MODULE_ALIASES.get(name, ())
        hit = next((c for c in candidates if c in present), None)
        (found if hit else missing).append(hit or name)
    if missing:
        log.info("LoRA: the model has no %s modules; adapting %s", ", ".join(missing), ", ".join(found))
    if not found:
        raise ModelError(f"LoRA target modules {list(requested)}: none of them is a linear layer of this model "
                         f"(it has {', '.join(sorted(present))})")
    return list(dict.fromkeys(found))


def _resolve_model(model, tokenizer):
    """(module, tokenizer, fingerprint, source, owned) of whatever the caller passed; `owned`: we
    loaded it, so full fine-tuning may train it in place."""
    from transfergrid.models import LoadedModel, load_model

    owned = isinstance(model, str)
    if owned:
        model = load_model(model)
    if isinstance(model, LoadedModel):
        return model.model, tokenizer or model.tokenizer, model.fingerprint, model.source, owned
    if tokenizer is None:
        raise TypeError("train_adapter: pass a model source, a LoadedModel, or a model with tokenizer=")
    return model, tokenizer, None, None, False


def _checkpointing(model, on: bool) -> None:
    """Activation (gradient) checkpointing on or off, by transformers 5's name or the older one."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


# --- training ----------------------------------------------------------------------------------


def _progress_sink(progress, total_steps: int, label: str) -> Callable[[dict], None]:
    """A callback from a rich Progress (a bar) or a plain callable (gets each event dict)."""
    if progress is None:
        return lambda event: None
    if hasattr(progress, "add_task"):
        task = progress.add_task(label, total=total_steps)

        def advance(event: dict) -> None:
            if event["kind"] == "step":
                progress.update(task, advance=1, description=f"{label} loss {event['loss']:.3f}")
        return advance
    return progress


def _save(model, tokenizer, full: bool, path: Path) -> None:
    model.save_pretrained(path)
    if full:
        tokenizer.save_pretrained(path)


def _check_out_dir(out_dir: Path) -> None:
    """out_dir may be absent, empty, or an earlier result (replaced); never anything else."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir())
                                                      and not (out_dir / METADATA_FILE).is_file())):
        raise UserError(f"output directory {out_dir} exists and is not an earlier training result; choose a new one")


def _publish(staged: Path, out_dir: Path, scratch: Path) -> None:
    """Move the finished result into out_dir: readers see the old result, none, or the new one."""
    _check_out_dir(out_dir)
    if out_dir.exists():
        os.replace(out_dir, scratch / "previous")
    os.replace(staged, out_dir)


def train_adapter(model, train_items: Sequence[Item], val_items: Sequence[Item], spec: TrainingSpec, *,
                  seed: int, fmt: str, chat_template: bool = False, out_dir: str | Path,
                  meta: dict[str, Any] | None = None, progress=None, tokenizer=None,
                  micro_backoff: bool = True) -> TrainResult:
    """Train one adapter (or full fine-tune) on `train_items` and write it to `out_dir`.

    Out of memory, the micro-batch halves and gradients accumulate (the result does not change);
    `micro_backoff=False` lets the error through instead, for the reference's whole-run restart
    (`spec.auto_batch_size`, `train_with_batch_backoff`).

    `model` is a source string, a `models.LoadedModel` or a plain model with `tokenizer=`. A LoRA
    run leaves the given model as it was; full fine-tuning trains a copy. `meta` carries the job's
    identity into the metadata (study_hash, cells, data_manifest_hash, ...).
    """
    if spec.limit is not None:  # a CPU-sized run: the first items, in the order the split gives
        train_items, val_items = list(train_items)[:spec.limit], list(val_items)[:math.ceil(spec.limit / 9)]
    if spec.auto_batch_size:
        return train_with_batch_backoff(model, train_items, val_items, spec, seed=seed, fmt=fmt,
                                        chat_template=chat_template, out_dir=out_dir, meta=meta,
                                        progress=progress, tokenizer=tokenizer)
    import torch
    from transformers import get_scheduler

    started = time.perf_counter()
    out_dir = Path(out_dir)
    meta = dict(meta or {})
    cells = [str(c) for c in meta.get("cells") or sorted({str(it.cell) for it in train_items})]
    where = "+".join(cells)
    if not train_items:
        raise UserError(f"{where or 'training'}: no training items")
    _check_out_dir(out_dir)
    base, tokenizer, fingerprint, source, owned = _resolve_model(model, tokenizer)
    full = spec.method == "full"
    train_ex = encode_items(tokenizer, train_items, spec, fmt=fmt, chat_template=chat_template)
    val_ex = encode_items(tokenizer, val_items, spec, fmt=fmt, chat_template=chat_template)
    pad = pad_id(tokenizer)
    device = next(base.parameters()).device
    weights_dtype = next(base.parameters()).dtype  # before full fine-tuning upcasts a copy

    torch.manual_seed(seed)  # LoRA initialisation and dropout
    generator = torch.Generator().manual_seed(seed)  # batch composition and order
    requires_grad = {n: p.requires_grad for n, p in base.named_parameters()}
    was_training = base.training
    if full:
        net = base if owned else copy.deepcopy(base)
        if next(net.parameters()).dtype != torch.float32:
            net = net.float()  # AdamW updates of 5e-5 vanish in 16-bit weights; autocast computes in bf16
        targets: list[str] = []
    else:
        from peft import LoraConfig, get_peft_model

        targets = resolve_target_modules(base, spec.target_modules)
        config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                            target_modules=targets, bias="none", task_type="CAUSAL_LM")
        net = get_peft_model(base, config)
    # Checkpointing trades compute for memory only (recomputation is exact, RNG state preserved).
    checkpointed = net if full else base
    if spec.gradient_checkpointing:
        _checkpointing(checkpointed, True)
    # 16-bit weights on CUDA: bf16 autocast (full fine-tuning trains float32 master weights)
    autocast = devices.autocast(device, weights_dtype)
    train_attention = devices.training_attention(str(device), weights_dtype)
    micro = spec.batch_size  # the micro-batch, halved on out-of-memory (gradients are accumulated)

    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    n_batches = math.ceil(len(train_ex) / spec.batch_size)
    steps_per_epoch = math.ceil(n_batches / spec.grad_accum)
    total_steps = steps_per_epoch * spec.epochs
    scheduler = get_scheduler("constant_with_warmup" if spec.scheduler == "constant" else spec.scheduler,
                              optimizer, num_warmup_steps=math.ceil(spec.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    report = _progress_sink(progress, total_steps, where)
    select = spec.select_best_epoch and bool(val_ex)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=_mkdirs(out_dir.parent)))
    lengths = [len(e) for e in train_ex]
    train_losses: list[float] = []
    val_losses: list[float | None] = []
    best_epoch, best_val, step, tokens, train_seconds = 0, math.inf, 0, 0, 0.0
    try:
        for epoch in range(1, spec.epochs + 1):
            net.train()
            tick = time.perf_counter()
            batches = (random_batches(len(train_ex), spec.batch_size, seed, epoch - 1) if spec.sampler == "random"
                       else length_grouped_batches(lengths, spec.batch_size, generator))
            epoch_loss, epoch_n = 0.0, 0
            for first in range(0, len(batches), spec.grad_accum):
                group = batches[first:first + spec.grad_accum]
                n_answer = sum(sum(1 for t in train_ex[i].labels[1:] if t != IGNORE_INDEX) for b in group for i in b)
                while True:  # out of memory: halve the micro-batch, redo this step; the batch stays
                    try:
                        with devices.attention(checkpointed, train_attention):
                            value, n_tokens = accumulate(net, train_ex, group, micro, n_answer, pad, device,
                                                          autocast, where)
                        break
                    except DivergenceError as exc:
                        raise DivergenceError(f"{exc} at step {step + 1} (epoch {epoch}, seed {seed}); "
                                              "lower the learning rate") from None
                    except Exception as exc:
                        if not micro_backoff or not devices.is_oom(exc) or micro == 1:
                            raise
                    optimizer.zero_grad(set_to_none=True)
                    devices.release_memory()
                    micro //= 2
                    log.warning("%s: out of memory; micro-batch now %d (gradients accumulated, batch %d)",
                                where, micro, spec.batch_size)
                epoch_loss, tokens = epoch_loss + value, tokens + n_tokens
                epoch_n += n_answer
                if MAX_GRAD_NORM:
                    torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                report({"kind": "step", "epoch": epoch, "step": step, "total_steps": total_steps,
                        "loss": epoch_loss / max(epoch_n, 1)})
            train_seconds += time.perf_counter() - tick
            train_losses.append(epoch_loss / max(epoch_n, 1))
            with autocast:
                val = validation_loss(net, val_ex, spec.batch_size, pad) if val_ex else None
            if val is not None and not math.isfinite(val):
                raise DivergenceError(f"{where}: validation loss is {val} after epoch {epoch} (seed {seed})")
            val_losses.append(val)
            report({"kind": "epoch", "epoch": epoch, "train_loss": train_losses[-1], "val_loss": val})
            improved = select and val < best_val
            if improved or (not select and epoch == spec.epochs):
                # keep only the best epoch's weights, on disk
                if best_epoch:
                    shutil.rmtree(scratch / f"epoch-{best_epoch}", ignore_errors=True)
                best_epoch, best_val = epoch, (val if improved else best_val)
                _save(net, tokenizer, full, scratch / f"epoch-{epoch}")

        wall = time.perf_counter() - started
        metadata = {
            "kind": "full" if full else "lora",
            "model": {"source": source, "fingerprint": fingerprint},
            "study_hash": meta.get("study_hash"),
            "cells": cells,
            "seed": seed,
            "format": fmt,
            "chat_template": chat_template,
            "prompt_version": PROMPT_VERSION,
            "config": spec.model_dump(mode="json"),
            "target_modules": targets,
            "data_manifest_hash": meta.get("data_manifest_hash"),
            "train_size": len(train_ex),
            "val_size": len(val_ex),
            "train_losses": train_losses,
            "val_losses": val_losses,
            "best_epoch": best_epoch,
            "steps": step,
            "train_tokens": tokens,
            "wall_time_s": wall,
            "tokens_per_second": tokens / train_seconds if train_seconds else 0.0,
            "device": str(device),
            "versions": _versions(),
            "meta": meta,
        }
        staged = scratch / f"epoch-{best_epoch}"
        (staged / METADATA_FILE).write_text(json.dumps(metadata, indent=1, default=str), encoding="utf-8")
        _publish(staged, out_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if spec.gradient_checkpointing:
            _checkpointing(checkpointed, False)
        if not full:
            net.unload()  # removes the LoRA layers: the caller's base model is as it was
        for n, p in base.named_parameters():
            p.requires_grad_(requires_grad.get(n, p.requires_grad))
        base.train(was_training)

    log.info("%s: best epoch %d of %d, validation loss %s", where, best_epoch, spec.epochs,
             _fmt(val_losses[best_epoch - 1]))
    return TrainResult(out_dir, cells, seed, len(train_ex), len(val_ex), train_losses, val_losses, best_epoch,
                       step, tokens, metadata["wall_time_s"], metadata["tokens_per_second"], metadata)


# accelerate's find_executable_batch_size (behind the HF Trainer's auto_find_batch_size): after an
# out-of-memory error the whole training restarts at int(0.9 x batch size) (accelerate 1.15 here;
# releases before its PR #3650 halved). The job key holds the starting size; the metadata the used one.
AUTO_BATCH_FACTOR = 0.9


def train_with_batch_backoff(model, train_items, val_items, spec: TrainingSpec, **kwargs) -> TrainResult:
    """`train_adapter` from `spec.batch_size` down, restarting with a smaller batch on out-of-memory."""
    size = spec.batch_size
    while True:
        attempt = spec.model_copy(update={"batch_size": size, "auto_batch_size": False})
        try:
            return train_adapter(model, train_items, val_items, attempt, micro_backoff=False, **kwargs)
        except Exception as exc:
            if not devices.is_oom(exc):
                raise
            smaller = int(size * AUTO_BATCH_FACTOR)
            if smaller < 1:
                raise ModelError(f"out of memory at batch size {size}: the model does not fit") from None
            log.warning("out of memory at batch size %d; restarting the training at %d", size, smaller)
            devices.release_memory()
            size = smaller


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
