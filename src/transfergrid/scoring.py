"""The log-likelihood engine: per-item scores with lm-evaluation-harness semantics, fast.

Semantics (lm-evaluation-harness 0.4.13, HF backend, `lm_eval/models/huggingface.py` and
`lm_eval/api/task.py`):

- a choice's score is the summed log-probability of its continuation tokens given the context;
- tokenisation as the harness's `_encode_pair` (`encoding.encode_prompts`: BOS rules, the context's
  trailing whitespace moved into the continuation);
- `acc` = argmax of the log-likelihoods; `acc_norm` = argmax of log-likelihood / len(choice text
  in characters), where the choice text is `doc_to_choice`'s string WITHOUT the target delimiter
  (`Prompt.choice_texts`); `acc_bytes` the same per UTF-8 byte. Ties go to the first choice
  (numpy argmax).

Speed: every question's context is run once and all its choices are scored on it. The context and
all choices (each minus its last token, whose log-probability is read one position earlier) are
packed into one row; a 4-D attention mask lets each choice see the context and itself only, and
position ids restart after the context for every choice. A lettered or numbered prompt whose labels
are single tokens therefore costs one forward pass over the context alone. A token prefix shared by
every item of a call (TruthfulQA's 6-shot primer, a chat template's system prompt) is run once and
its keys/values reused. Rows are length-sorted and batched by a token budget; the vocabulary
projection runs only on the positions read. Exactness against the harness's per-choice
full-sequence scoring is tested to 1e-4 (tests/test_scoring.py, tests/test_parity.py).

Generative items (mgsm) are generated and scored by `generation`; `score_items` takes both kinds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transfergrid import devices
from transfergrid.adapters import forward_model, switch_variant
from transfergrid.encoding import Encoded, encode_prompts, pad_id
from transfergrid.generation import generate_greedy, generative_score
from transfergrid.prompts import GENERATIVE_TASKS, Prompt, render
from transfergrid.records import Item, ItemScore
from transfergrid.versions import SCORING_VERSION  # noqa: F401 - bump it when scores could change

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def cell_metrics(scores: Sequence[ItemScore]) -> dict[str, float]:
    """{n, acc, acc_norm, acc_bytes} of one cell, as proportions."""
    n = len(scores)
    if n == 0:
        return {"n": 0, "acc": math.nan, "acc_norm": math.nan, "acc_bytes": math.nan}
    return {
        "n": n,
        "acc": sum(s.correct for s in scores) / n,
        "acc_norm": sum(s.correct_norm for s in scores) / n,
        "acc_bytes": sum(s.correct_bytes for s in scores) / n,
    }


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value; ties go to the first (numpy argmax, the harness's choice)."""
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


def choice_score(item_id: str, task: str, lang: str, prompt: Prompt, loglik: Sequence[float],
                 is_greedy: Sequence[bool] = (), n_tokens: Sequence[int] = ()) -> ItemScore:
    """acc / acc_norm / acc_bytes decisions of one item from its choices' log-likelihoods."""
    texts = prompt.choice_texts
    pred = argmax(loglik)
    pred_norm = argmax([ll / len(t) for ll, t in zip(loglik, texts)])
    pred_bytes = argmax([ll / len(t.encode("utf-8")) for ll, t in zip(loglik, texts)])
    gold = prompt.gold
    return ItemScore(item_id, task, lang, gold, tuple(float(x) for x in loglik), pred, pred_norm, pred_bytes,
                     pred == gold, pred_norm == gold, pred_bytes == gold,
                     tuple(bool(g) for g in is_greedy), tuple(int(n) for n in n_tokens))


# --- packing and batched forward passes ------------------------------------------------------


@dataclass
class _Row:
    """One question packed into one sequence: context, then each choice minus its last token."""

    index: int
    input_ids: list[int]
    positions: list[int]
    segments: list[int]  # 0 = context, j+1 = choice j
    # per choice: the (row position, target token) pairs whose log-probs sum to its score
    reads: list[list[tuple[int, int]]] = field(default_factory=list)
    choices: tuple[int, ...] = ()  # which of the question's choices `reads` holds (default: all)

    def choice_ids(self) -> tuple[int, ...]:
        return self.choices or tuple(range(len(self.reads)))


def _unpack(row: _Row) -> list[_Row]:
    """One plain causal row per choice (context + that choice), as the harness does: for attention
    kernels that take no custom mask (flash attention)."""
    n_ctx = row.segments.count(0)
    ctx = row.input_ids[:n_ctx]
    rows = []
    for j, reads in enumerate(row.reads):
        own = [k for k, sg in enumerate(row.segments) if sg == j + 1]
        ids = ctx + [row.input_ids[k] for k in own]
        where = {k: n_ctx + i for i, k in enumerate(own)}
        where[n_ctx - 1] = n_ctx - 1
        rows.append(_Row(row.index, ids, list(range(len(ids))), [0] * len(ids),
                         [[(where[p], t) for p, t in reads]], (j,)))
    return rows


def _pack(index: int, enc: Encoded, max_len: int | None) -> _Row:
    ctx = enc.context
    if max_len is not None and len(ctx) + max(len(c) for c in enc.continuations) > max_len + 1:
        # as the harness: drop context tokens from the left so the longest choice fits
        keep = max_len + 1 - max(len(c) for c in enc.continuations)
        log.warning("item %d: context of %d tokens truncated to %d from the left", index, len(ctx), keep)
        ctx = ctx[-keep:]
    n_ctx = len(ctx)
    ids, pos, seg = list(ctx), list(range(n_ctx)), [0] * n_ctx
    reads = []
    for j, cont in enumerate(enc.continuations):
        start = len(ids)
        ids.extend(cont[:-1])
        pos.extend(range(n_ctx, n_ctx + len(cont) - 1))
        seg.extend([j + 1] * (len(cont) - 1))
        # token 0 is predicted at the last context position, token k at the choice's token k-1
        read_at = [n_ctx - 1] + [start + k for k in range(len(cont) - 1)]
        reads.append(list(zip(read_at, cont)))
    return _Row(index, ids, pos, seg, reads)


def _iter_batches(rows: list[_Row], budget: Callable[[], int]):
    """Longest first; a batch holds as many rows as fit `budget()` tokens once padded (read per
    batch, so a budget lowered after an out-of-memory applies to the batches still to come)."""
    rows = sorted(rows, key=lambda r: -len(r.input_ids))
    current: list[_Row] = []
    for row in rows:
        width = len(current[0].input_ids) if current else len(row.input_ids)
        if current and (len(current) + 1) * width > budget():
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def _batches(rows: list[_Row], batch_tokens: int) -> list[list[_Row]]:
    return list(_iter_batches(rows, lambda: batch_tokens))


def _model_device(model):
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def _model_dtype(model):
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32  # pragma: no cover


def _sliding_window(model) -> int | None:
    config = getattr(model, "config", None)
    layer_types = getattr(config, "layer_types", None) or []
    if "sliding_attention" in layer_types and getattr(config, "sliding_window", None):
        return int(config.sliding_window)
    return None


def _shared_prefix(rows: list[_Row], minimum: int = 8) -> int:
    """Length of the token prefix every row's context shares (a few-shot primer, a chat system
    prompt); it is run once and its keys/values reused. Each row keeps >= 1 context token, since
    its first choice token is read at its last context position."""
    if len(rows) < 2:
        return 0
    first = rows[0].input_ids
    n = min(r.segments.count(0) for r in rows) - 1
    for r in rows[1:]:
        ids = r.input_ids
        k = 0
        while k < n and ids[k] == first[k]:
            k += 1
        n = k
        if n < minimum:
            return 0
    return n


def _strip(row: _Row, n: int) -> _Row:
    """The row without its first n (shared prefix) tokens; read positions shift accordingly."""
    if n == 0:
        return row
    reads = [[(p - n, t) for p, t in choice] for choice in row.reads]
    return _Row(row.index, row.input_ids[n:], row.positions[n:], row.segments[n:], reads)


def _prefix_cache(model, prefix_ids: list[int]):
    """Per layer (keys, values) of the shared prefix, batch size 1."""
    import torch
    from transformers import DynamicCache

    ids = torch.tensor([prefix_ids], device=_model_device(model))
    # a config-less cache keeps every key, also for sliding-window layers (our masks apply the window)
    cache = DynamicCache()
    model(input_ids=ids, use_cache=True, past_key_values=cache, logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in cache.layers]


def _run_batch(model, batch: list[_Row], pad_id: int, prefix_kv=None, prefix_len: int = 0):
    """Forward one batch; returns per row per choice (loglik, is_greedy)."""
    import torch

    device, dtype = _model_device(model), _model_dtype(model)
    width = len(batch[0].input_ids)
    n = len(batch)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)
    keep = torch.zeros((n, width), dtype=torch.bool)
    for b, row in enumerate(batch):
        L = len(row.input_ids)
        ids[b, :L] = torch.tensor(row.input_ids)
        pos[b, :L] = torch.tensor(row.positions)
        seg[b, :L] = torch.tensor(row.segments)
        for reads in row.reads:
            for p, _ in reads:
                keep[b, p] = True

    P = prefix_len
    seg, pos = seg.to(device), pos.to(device)  # the masks below are built where the model runs
    kwargs: dict[str, Any] = {}
    if prefix_kv is not None:
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (k, v) in enumerate(prefix_kv):
            cache.update(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1), i)
        kwargs["past_key_values"] = cache
    if bool((seg > 0).any()) or P > 0:
        # keys = shared prefix (segment 0, positions 0..P-1) followed by this batch's tokens
        kseg = torch.cat([torch.zeros((n, P), dtype=torch.long, device=device), seg], dim=1)
        kpos = torch.cat([torch.arange(P, device=device).expand(n, P), pos], dim=1)
        qi = torch.arange(width, device=device)[:, None] + P
        ki = torch.arange(P + width, device=device)[None, :]
        sq, sk = seg[:, :, None], kseg[:, None, :]
        allowed = (ki <= qi)[None] & (sk >= 0) & ((sk == 0) | (sk == sq))
        allowed |= (ki == qi)[None]  # padding rows attend to themselves: no NaN
        masks = {"full_attention": allowed}
        window = _sliding_window(model)
        if window is not None:
            masks["sliding_attention"] = allowed & ((pos[:, :, None] - kpos[:, None, :] < window) | (ki == qi)[None])
        neg = torch.finfo(dtype).min

        def additive(m):
            return torch.zeros(m.shape, dtype=dtype, device=device).masked_fill_(~m, neg)[:, None]

        mask = {k: additive(m) for k, m in masks.items()}
        kwargs["attention_mask"] = mask if window is not None else mask["full_attention"]
        kwargs["position_ids"] = pos
    else:
        kwargs["attention_mask"] = (seg >= 0).long()

    out = model(input_ids=ids.to(device), use_cache=prefix_kv is not None, logits_to_keep=keep.to(device), **kwargs)
    logits = out.logits
    if logits.dim() == 3:  # models that ignore a mask-shaped logits_to_keep
        logits = logits[keep.to(logits.device)] if logits.shape[1] == width else logits.reshape(-1, logits.shape[-1])
    logprobs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # one float32 copy, not two
    greedy = logprobs.argmax(dim=-1).cpu()
    # map (row, position) -> index into the flattened kept positions
    flat = torch.full((n, width), -1, dtype=torch.long)
    flat[keep] = torch.arange(int(keep.sum()))

    results = []
    gather_rows, gather_tok = [], []
    for b, row in enumerate(batch):
        for reads in row.reads:
            for p, t in reads:
                gather_rows.append(int(flat[b, p]))
                gather_tok.append(t)
    idx = torch.tensor(gather_rows, device=logprobs.device)
    tok = torch.tensor(gather_tok, device=logprobs.device)
    values = logprobs[idx, tok].double().cpu().tolist()
    hits = (greedy[idx.cpu()] == tok.cpu()).tolist()
    k = 0
    for row in batch:
        per_choice = []
        for reads in row.reads:
            m = len(reads)
            per_choice.append((math.fsum(values[k:k + m]), all(hits[k:k + m])))
            k += m
        results.append(per_choice)
    return results


def _accepts_custom_masks(model) -> bool:
    """Flash-attention kernels take no 4-D mask; the eager and SDPA kernels do."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None) or ""
    return "flash" not in str(impl)


def _max_length(model) -> int | None:
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def loglikelihoods(model, tokenizer, encoded: Sequence[Encoded], *, batch_tokens: int | None = None,
                   progress: Progress | None = None) -> list[list[tuple[float, bool]]]:
    """(log-likelihood, is_greedy) of every choice of every encoded question.

    `batch_tokens` bounds rows x padded width per forward pass (default: `devices.eval_token_budget`,
    512 on CPU, from the free memory on CUDA). Out of memory, a batch is retried in halves and the
    budget halved (scores do not depend on how rows are batched).
    """
    import torch

    if batch_tokens is None:
        batch_tokens = devices.eval_token_budget(model)
    budget = [batch_tokens]

    def lower_budget(failed: Sequence[_Row]) -> None:
        # split_on_oom retries the failing batch in halves; later batches get half its size
        budget[0] = max(1, min(budget[0], len(failed) * len(failed[0].input_ids)) // 2)
        log.warning("out of memory on a batch of %d rows: retrying it in halves; batch budget now %d tokens",
                    len(failed), budget[0])

    max_len = _max_length(model)
    rows = [_pack(i, e, max_len) for i, e in enumerate(encoded)]
    out: list[list[tuple[float, bool]]] = [[(math.nan, False)] * len(e.continuations) for e in encoded]
    pad = pad_id(tokenizer)
    custom_masks = _accepts_custom_masks(model)
    with torch.inference_mode():
        n_prefix = _shared_prefix(rows) if custom_masks else 0
        prefix_kv = _prefix_cache(model, rows[0].input_ids[:n_prefix]) if n_prefix else None
        rows = [_strip(r, n_prefix) for r in rows]
        if not custom_masks:
            rows = [u for r in rows for u in _unpack(r)]
        for batch in _iter_batches(rows, lambda: budget[0]):
            results = devices.split_on_oom(lambda b: _run_batch(model, b, pad, prefix_kv, n_prefix), batch,
                                           on_oom=lower_budget)
            for row, res in zip(batch, results):
                for j, value in zip(row.choice_ids(), res):
                    out[row.index][j] = value
            if progress is not None:
                progress(sum(1 for r in batch if r.choice_ids()[0] == 0))
    return out


# --- public entry points --------------------------------------------------------------------


def _split(items: Sequence[Item]) -> tuple[list[int], list[int]]:
    gen = [i for i, it in enumerate(items) if it.task in GENERATIVE_TASKS]
    mc = [i for i, it in enumerate(items) if it.task not in GENERATIVE_TASKS]
    return mc, gen


def score_items(model, tokenizer, items: Sequence[Item], fmt: str, *, chat_template: bool = False,
                batch_tokens: int | None = None, progress: Progress | None = None,
                max_new_tokens: int = 256) -> list[ItemScore]:
    """Score `items` (one ItemScore each, in order): log-likelihood choice scoring, or greedy
    generation with numeric exact match for generative tasks (mgsm)."""
    return score_variants(model, tokenizer, [None], items, fmt, chat_template=chat_template,
                          batch_tokens=batch_tokens, progress=progress, max_new_tokens=max_new_tokens)[None]


def score_variants(adapters, tokenizer, variants: Sequence[str | None], items: Sequence[Item], fmt: str, *,
                   chat_template: bool = False, batch_tokens: int | None = None, progress: Progress | None = None,
                   max_new_tokens: int = 256, prompts: Sequence[Prompt] | None = None
                   ) -> dict[str | None, list[ItemScore]]:
    """Score the same items under several adapters switched in place (None = the base model).

    Items are rendered and tokenised once; each variant costs only its forward passes.
    `adapters` is an `adapters.AdapterSet` (with `.activate(name)`) or a plain model for [None].
    `prompts`: the items' prompts when already rendered (few-shot contexts, `fewshot.cell_prompts`).
    """
    if prompts is None:
        prompts = [render(it, fmt, chat_template=chat_template, tokenizer=tokenizer) for it in items]
    mc, gen = _split(items)
    encoded = encode_prompts(tokenizer, [prompts[i] for i in mc]) if mc else []
    results: dict[str | None, list[ItemScore]] = {}
    for variant in variants:
        model = forward_model(adapters)
        scores: list[ItemScore | None] = [None] * len(items)
        with switch_variant(adapters, variant):
            lls = loglikelihoods(model, tokenizer, encoded, batch_tokens=batch_tokens,
                                 progress=progress) if mc else []
            texts = generate_greedy(model, tokenizer, [prompts[i] for i in gen], max_new_tokens=max_new_tokens,
                                    progress=progress) if gen else []
        if mc:
            for i, per_choice, enc in zip(mc, lls, encoded):
                it = items[i]
                scores[i] = choice_score(it.id, it.task, it.lang, prompts[i], [ll for ll, _ in per_choice],
                                         [g for _, g in per_choice], [len(c) for c in enc.continuations])
        if gen:
            for i, text in zip(gen, texts):
                scores[i] = generative_score(items[i], text)
        results[variant] = scores  # type: ignore[assignment]
    return results
