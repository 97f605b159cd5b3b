"""Prompts -> token ids, as lm-evaluation-harness tokenises them (HF backend, `_encode_pair`).

- trailing whitespace of the context moves into the continuation;
- `context + continuation` and `context` are encoded with the tokenizer's own special tokens (a BOS
  where the tokenizer adds one), except a text that already starts with the BOS string (as after a
  chat template), which gets none; the continuation's tokens are `whole[len(context_tokens):]`.

Scoring, training (our encoding) and generation all encode through here, so the three can never
disagree on where a BOS goes or how a context ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transfergrid.prompts import Prompt


@dataclass
class Encoded:
    """One question: shared context tokens and each choice's continuation tokens."""

    context: list[int]
    continuations: list[list[int]]


def bos_text(tokenizer) -> str | None:
    """The prefix token's text (harness `HFLM.prefix_token_id`: BOS, else EOS), or None."""
    tid = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return None if tid is None else tokenizer.decode([tid])


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text: special tokens added, unless the text starts with the BOS string."""
    bos = bos_text(tokenizer)
    starts_with_bos = [bool(bos) and t.startswith(bos) for t in texts]
    out: list[list[int]] = [[] for _ in texts]
    for flag in (False, True):
        idx = [i for i, f in enumerate(starts_with_bos) if f == flag]
        if idx:
            kwargs = {"add_special_tokens": False} if flag else {}
            for i, row in zip(idx, tokenizer([texts[i] for i in idx], **kwargs)["input_ids"]):
                out[i] = list(row)
    return out


def encode_prompts(tokenizer, prompts: Sequence[Prompt]) -> list[Encoded]:
    """Harness tokenisation of every (context, continuation) pair, in one batched tokenizer call."""
    texts: list[str] = []
    for p in prompts:
        ctx = p.context
        n_spaces = len(ctx) - len(ctx.rstrip())
        head, moved = (ctx[:-n_spaces], ctx[-n_spaces:]) if n_spaces else (ctx, "")
        if not head:
            raise ValueError("empty context: every prompt needs a context")
        texts.append(head)
        texts.extend(head + moved + c for c in p.continuations)
    ids = encode_texts(tokenizer, texts)
    encoded, k = [], 0
    for p in prompts:
        ctx_ids = ids[k]
        conts = [ids[k + 1 + j][len(ctx_ids):] for j in range(len(p.continuations))]
        k += 1 + len(p.continuations)
        if any(len(c) == 0 for c in conts):
            raise ValueError(f"a continuation of {p.continuations!r} encodes to no tokens")
        encoded.append(Encoded(ctx_ids, conts))
    return encoded


def pad_id(tokenizer) -> int:
    """The id that fills padded positions (never attended to, never read): pad, else EOS, else 0."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0
