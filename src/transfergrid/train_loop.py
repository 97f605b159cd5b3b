"""The pieces of the training loop: batch order, collation, the answer-token loss, the validation
pass and one optimiser step's micro-batched forward and backward.

Batch order: `length_grouped_batches` (ours: examples of similar length share a batch) or
`random_batches` (the HF Trainer's order, `spec.sampler = "random"`). Out of memory, the
validation pass halves its batch and restarts; `train.train_adapter` halves the micro-batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from transfergrid import devices
from transfergrid.errors import DivergenceError
from transfergrid.train_examples import IGNORE_INDEX, Example

log = logging.getLogger(__name__)

BUCKET_BATCHES = 16  # length-sorting happens inside buckets of this many batches


def length_grouped_batches(lengths: Sequence[int], batch_size: int, generator) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are similar (HF's `group_by_length` idea)."""
    import torch

    perm = torch.randperm(len(lengths), generator=generator).tolist()
    bucket = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(perm), bucket):
        chunk = sorted(perm[start:start + bucket], key=lambda i: -lengths[i])
        batches.extend(chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def random_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The HF Trainer's training order (accelerate's SeedableRandomSampler with data_seed = seed):
    epoch e (0-based) is `torch.randperm(n)` from a generator seeded with seed + e, cut into
    consecutive batches, the last one possibly short."""
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [perm[k:k + batch_size] for k in range(0, n, batch_size)]


def collate(examples: Sequence[Example], pad_id: int):
    """(input_ids, attention_mask, labels) right-padded to the longest example of the batch."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e)
        ids[b, :n] = torch.tensor(e.input_ids)
        mask[b, :n] = 1 if e.attention is None else torch.tensor(e.attention)
        labels[b, :n] = torch.tensor(e.labels)
    return ids, mask, labels


def answer_loss_sum(model, ids, mask, labels):
    """(summed cross-entropy over answer tokens, number of answer tokens); logits only where read."""
    import torch.nn.functional as F

    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    read = F.pad(keep, (0, 1), value=False)  # token t is predicted at position t-1
    out = model(input_ids=ids, attention_mask=mask, logits_to_keep=read, use_cache=False)
    logits = out.logits
    if logits.dim() == 3:  # a model that ignores a mask-shaped logits_to_keep
        logits = logits[read]
    return F.cross_entropy(logits.float(), targets[keep], reduction="sum"), int(keep.sum())


def _batches_in_order(examples, batches, pad_id, device):
    for idx in batches:
        ids, mask, labels = collate([examples[i] for i in idx], pad_id)
        yield ids.to(device), mask.to(device), labels.to(device), int(mask.sum())


def validation_loss(model, examples: Sequence[Example], batch_size: int, pad_id: int) -> float:
    """Mean cross-entropy per answer token over the validation examples (out of memory: the
    batch size halves and the pass restarts; the mean does not depend on it)."""
    import torch

    if not examples:
        return math.nan
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]))
    was_training = model.training
    model.eval()
    try:
        while True:
            batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
            total, n = 0.0, 0
            try:
                with torch.no_grad():
                    for ids, mask, labels, _ in _batches_in_order(examples, batches, pad_id, device):
                        loss, k = answer_loss_sum(model, ids, mask, labels)
                        total, n = total + float(loss), n + k
                return total / max(n, 1)
            except Exception as exc:
                if not devices.is_oom(exc) or batch_size == 1:
                    raise
            devices.release_memory()
            batch_size //= 2
            log.warning("validation: out of memory; batch size now %d", batch_size)
    finally:
        model.train(was_training)


def accumulate(net, examples, group, micro: int, n_answer: int, pad_id: int, device, autocast, where: str):
    """Forward and backward of one optimiser step's batches in micro-batches of at most `micro`
    examples: gradients of (summed answer loss / n_answer), the same for any `micro`.
    Returns (summed loss, tokens)."""
    chunks = [batch[k:k + micro] for batch in group for k in range(0, len(batch), micro)]
    loss_total, tokens = 0.0, 0
    for ids, mask, labels, n_tokens in _batches_in_order(examples, chunks, pad_id, device):
        with autocast:
            loss_sum, _ = answer_loss_sum(net, ids, mask, labels)
        value = loss_sum.item()
        if not math.isfinite(value):
            raise DivergenceError(f"{where}: training loss is {value}")
        (loss_sum / n_answer).backward()
        loss_total, tokens = loss_total + value, tokens + n_tokens
    return loss_total, tokens
