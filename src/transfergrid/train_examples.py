"""Training examples: items -> token ids and answer-only labels, by our encoding or the reference's.

Ours (`build_examples`): `prompt.context + prompt.continuations[gold]`, tokenised exactly as the
scoring engine tokenises that pair (`encoding.encode_prompts`); too long an example loses context
tokens from the left, never answer tokens; padded later, per batch. The reference pipeline's
(`build_reference_examples`, `training.encoding = "reference"`): fixed-length, padded examples with
attention masks, token for token as its dataset processors built them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from transfergrid.encoding import encode_prompts
from transfergrid.errors import ModelError, UserError
from transfergrid.prompts import reference_training_text, render
from transfergrid.records import Item
from transfergrid.training_config import TrainingSpec

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One training sequence: labels are -100 on the context, the token id on answer tokens."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    # 1 = real token, 0 = padding; None: every token is real (examples padded per batch). Only the
    # reference encoding sets it: its examples are padded to a fixed length, as the reference did.
    attention: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def build_examples(tokenizer, items: Sequence[Item], fmt: str, *, chat_template: bool = False,
                   max_length: int = 512) -> list[Example]:
    """Context + gold continuation of each item, tokenised as scoring does, answer-only labels."""
    prompts = []
    for it in items:
        p = render(it, fmt, chat_template=chat_template, tokenizer=tokenizer)
        if not p.continuations:
            raise UserError(f"item {it.id}: {it.task} is generative; only multiple-choice tasks can be trained on")
        prompts.append(dataclasses.replace(p, continuations=(p.continuations[p.gold],), gold=0))
    examples = []
    for enc in encode_prompts(tokenizer, prompts):
        context, answer = enc.context, enc.continuations[0]
        if len(answer) >= max_length:
            answer = answer[:max_length - 1]  # keep at least one context token to predict from
        context = context[-(max_length - len(answer)):]
        examples.append(Example(tuple(context + answer), (IGNORE_INDEX,) * len(context) + tuple(answer)))
    return examples


def encode_items(tokenizer, items: Sequence[Item], spec: TrainingSpec, *, fmt: str,
                 chat_template: bool = False) -> list[Example]:
    """The training examples of `items` under `spec.encoding`, each task at its own max length."""
    if spec.encoding == "reference":
        return build_reference_examples(tokenizer, items, spec)
    out: list[Example | None] = [None] * len(items)
    for task in dict.fromkeys(it.task for it in items):
        idx = [i for i, it in enumerate(items) if it.task == task]
        encoded = build_examples(tokenizer, [items[i] for i in idx], fmt, chat_template=chat_template,
                                 max_length=spec.max_length_for(task))
        for i, e in zip(idx, encoded):
            out[i] = e
    return out  # type: ignore[return-value]


# --- the reference pipeline's encoding (training.encoding = "reference") --------------------------


def _reference_pad_id(tokenizer) -> int:
    # Not encoding.pad_id: the reference's utils.load_tokenizer pads with pad, else eos, else unk
    # (and has no 0 fallback); its examples are fixed-length, so the pad id is part of every example.
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if tid is not None:
            return int(tid)
    raise ModelError("the reference encoding pads with the pad, eos or unk token; this tokenizer has none")


def build_reference_examples(tokenizer, items: Sequence[Item], spec: TrainingSpec) -> list[Example]:
    """dataset_processors/*.py, token for token: fixed-length examples padded to the task's max length.

    ARC, Global-MMLU, HellaSwag: prompt and target (" A") tokenised separately without special
    tokens (no BOS), concatenated, the *first* tokens dropped past max length, loss on the target's
    tokens, right-padded. TruthfulQA: one text tokenised with special tokens (BOS where the tokenizer
    adds one), truncated and padded by the tokenizer (its `truncation_side`, `padding_side`), loss on
    every non-pad token. Items the reference skips (an ARC answer outside A-D) are dropped.
    """
    pad_id = _reference_pad_id(tokenizer)
    examples = []
    for it in items:
        text = reference_training_text(it)
        if text is None:
            continue
        n = spec.max_length_for(it.task)
        if text.target is None:
            examples.append(_reference_full_text(tokenizer, text.prompt, n, pad_id))
            continue
        prompt = tokenizer(text.prompt, add_special_tokens=False)["input_ids"]
        target = tokenizer(text.target, add_special_tokens=False)["input_ids"]
        ids = (list(prompt) + list(target))[-n:]
        k = len(ids)
        start = max(0, k - len(target))
        labels = [IGNORE_INDEX] * start + ids[start:]
        pad = n - k
        examples.append(Example(tuple(ids + [pad_id] * pad), tuple(labels + [IGNORE_INDEX] * pad),
                                tuple([1] * k + [0] * pad)))
    return examples


def _reference_full_text(tokenizer, text: str, n: int, pad_id: int) -> Example:
    """TruthfulQA's `tokenizer(texts, padding="max_length", truncation=True, max_length=n)`."""
    ids = list(tokenizer(text, truncation=True, max_length=n)["input_ids"])  # special tokens kept
    pad = n - len(ids)
    if getattr(tokenizer, "padding_side", "right") == "left":
        return Example(tuple([pad_id] * pad + ids), tuple([IGNORE_INDEX] * pad + ids), tuple([0] * pad + [1] * len(ids)))
    return Example(tuple(ids + [pad_id] * pad), tuple(ids + [IGNORE_INDEX] * pad), tuple([1] * len(ids) + [0] * pad))
