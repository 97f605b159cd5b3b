"""Chain-of-thought ablation without fine-tuning (study 2, arXiv 2606.19346), and the CoT variant
of a transfer grid (`evaluation.cot`: the same procedure for the base model and every adapter, with
`GRID_COT_INSTRUCTION`).

For each test item the base model first writes its reasoning, greedily, after the numbered prompt
with an English instruction to think step by step; then the answer is scored exactly as in the
`numbers` format — the log-probability of each option label " 1" .. " 4" after the answer cue
"\\nAnswer:" — with the reasoning placed between the prompt and the cue:

    generation context = <question, passage and numbered options> + "\\n\\n" + COT_INSTRUCTION
                         (+ "\\nReasoning:" without a chat template; with one, the instruction
                          ends the user turn and the model reasons in its assistant turn)
    scoring context    = generation context + reasoning + "\\nAnswer:"
    continuations      = " 1", " 2", ... (the label delimiter is kept with a chat template too:
                          the cue sits inside the assistant's turn, not at its start)

The reasoning is the generation cut before the model's own "Answer:" (if it writes one), so the
answer is always read at our cue. Predictions are the argmax of the labels' log-likelihoods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from transfergrid.errors import UserError
from transfergrid.prompts import Prompt, chat_text, render
from transfergrid.records import Item
from transfergrid.versions import COT_VERSION

COT_INSTRUCTION = ("Think step by step: reason briefly about the passage and the question, "
                   "then give the number of the correct answer.")
# A transfer grid's tasks have no passage (ARC, MMLU, HellaSwag, TruthfulQA): the same instruction
# without it. Part of those CoT job keys (plan.py), so editing it re-runs them.
GRID_COT_INSTRUCTION = ("Think step by step: reason briefly about the question, "
                        "then give the number of the correct answer.")
REASONING_CUE = "\nReasoning:"
ANSWER_CUE = "\nAnswer:"
# Bump COT_VERSION (versions.py) whenever the texts above or the procedure change.


@dataclass(frozen=True)
class CotItemScore:
    """One item's chain-of-thought result; `to_dict()` is JSON/Parquet-ready."""

    id: str
    task: str
    lang: str
    gold: int
    loglik: tuple[float, ...]
    pred: int
    correct: bool
    reasoning: str
    generation: str  # the raw greedy output, before cutting at the model's own answer cue

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loglik"] = list(self.loglik)
        return d


def _question_block(item: Item) -> tuple[str | None, str]:
    """(system, user text) of the numbered prompt without its final answer cue."""
    prompt = render(item, "numbers")
    system = prompt.system or ""
    user = prompt.context[len(system):]
    if not user.endswith(ANSWER_CUE):
        raise UserError(f"item {item.id}: the numbered prompt does not end with {ANSWER_CUE!r}; "
                        f"the CoT prompt (version {COT_VERSION}) must be updated for this prompt version")
    return prompt.system, user[: -len(ANSWER_CUE)]


def generation_context(item: Item, *, chat_template: bool = False, tokenizer=None,
                       instruction: str = COT_INSTRUCTION) -> str:
    """The text the model continues with its reasoning."""
    system, block = _question_block(item)
    user = f"{block}\n\n{instruction}"
    if chat_template:
        return chat_text(tokenizer, system, user, instead="run the CoT ablation without chat_template")
    return (system or "") + user + REASONING_CUE


def reasoning_of(generation: str) -> str:
    """The generation up to (not including) the model's own answer cue, trailing space removed."""
    cut = generation.find(ANSWER_CUE.strip())
    text = generation if cut < 0 else generation[:cut]
    return text.rstrip()


def scoring_prompt(item: Item, context: str, reasoning: str) -> Prompt:
    """The numbered format's continuations after `context + reasoning + ANSWER_CUE`."""
    numbered = render(item, "numbers")
    return Prompt(context + reasoning + ANSWER_CUE, numbered.continuations, numbered.gold, "numbers-cot",
                  delimiter=numbered.delimiter)


def cot_score_items(model, tokenizer, items: Sequence[Item], *, chat_template: bool = False,
                    max_new_tokens: int = 256, batch_size: int = 8, batch_tokens: int | None = None,
                    progress: Callable[[int], None] | None = None,
                    instruction: str = COT_INSTRUCTION) -> list[CotItemScore]:
    """Generate each item's reasoning, then score its answer labels (one CotItemScore per item)."""
    from transfergrid.encoding import encode_prompts
    from transfergrid.generation import generate
    from transfergrid.scoring import argmax, loglikelihoods

    if not items:
        return []
    contexts = [generation_context(it, chat_template=chat_template, tokenizer=tokenizer, instruction=instruction)
                for it in items]
    generations = generate(model, tokenizer, contexts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    if len(generations) != len(items):
        raise RuntimeError(f"generation returned {len(generations)} texts for {len(items)} prompts")
    reasonings = [reasoning_of(g) for g in generations]
    prompts = [scoring_prompt(it, ctx, r) for it, ctx, r in zip(items, contexts, reasonings)]
    lls = loglikelihoods(model, tokenizer, encode_prompts(tokenizer, prompts), batch_tokens=batch_tokens)
    out = []
    for it, p, per_choice, gen, r in zip(items, prompts, lls, generations, reasonings):
        loglik = tuple(float(ll) for ll, _ in per_choice)
        pred = argmax(loglik)  # ties: first label
        out.append(CotItemScore(it.id, it.task, it.lang, p.gold, loglik, pred, pred == p.gold, r, gen))
        if progress is not None:
            progress(1)
    return out
