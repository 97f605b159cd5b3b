"""Few-shot evaluation (`[evaluation] fewshot = k`): k solved examples before every test item.

Drawing (lm-evaluation-harness 0.4.13, `lm_eval/api/samplers.py` `ContextSampler.sample`): the
examples come from the target cell's own train split (never its test split, never its validation
items), in manifest order, drawn with `random.Random(seed).sample(pool, k)`. The seed is
`evaluation.fewshot_seed`, default 1234: the harness's `fewshot_random_seed` default
(`lm_eval.defaults.DEFAULT_OTHER_SEED`).

- `fewshot_sampling = "cell"` (default): one draw per target cell, the same k examples before
  every test item of the cell; the draw equals the harness's draw for its first test document.
  Manifests are parallel, so every language of a task gets the same example ids (the same solved
  questions in translation), and the shared prefix is scored once (`scoring._shared_prefix`).
- `fewshot_sampling = "item"`: the harness's exact stream: one `Random(seed)` per cell, one
  `sample(pool, k)` per test item in test order (the harness's sampler is seeded once per task and
  draws per document; its fewshot split is the train split, so no eval document is removed).

Rendering (`ConfigurableTask.fewshot_context` / `build_qa_turn`): each example is the task's
`doc_to_text` + target delimiter + the gold choice text (`prompts.render` of the example, its gold
continuation), examples joined and followed by the fewshot delimiter "\\n\\n", then the test item's
text; a task description (English MMLU's) comes once, first, from the test item. With
`chat_template = true` the harness's default is `fewshot_as_multiturn = True` (its
`EvaluatorConfig`): a system turn for the description, then one user turn (the example's text) and
one assistant turn (the gold choice text, no delimiter) per example, then the test item's user turn
and the generation prompt. `fewshot_as_multiturn = false` collapses everything but the system turn
into one user turn (the plain-text rendering), as the harness's `multiturn_to_singleturn`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence

from transfergrid.errors import ModelError, UserError
from transfergrid.prompts import GENERATIVE_TASKS, Prompt, render
from transfergrid.records import Cell, Item
from transfergrid.versions import FEWSHOT_VERSION

# Bump FEWSHOT_VERSION (versions.py) whenever drawing or rendering changes.
HARNESS_SEED = 1234
FEWSHOT_DELIMITER = "\n\n"


# --- drawing ---------------------------------------------------------------------------------
def draw(pool: Sequence[Item], k: int, seed: int, n_items: int, sampling: str = "cell",
         cell: str = "") -> list[list[Item]]:
    """The examples of each of `n_items` test items (the harness's sampler over `pool`)."""
    if k > len(pool):
        raise UserError(f"{cell}: evaluation.fewshot = {k} needs {k} train items, the cell has {len(pool)}")
    rnd = random.Random(seed)
    if sampling == "cell":
        return [rnd.sample(list(pool), k)] * n_items
    if sampling == "item":
        return [rnd.sample(list(pool), k) for _ in range(n_items)]
    raise UserError(f"evaluation.fewshot_sampling: expected 'cell' or 'item', got {sampling!r}")


def cell_examples(study, data, cell: Cell, n_items: int) -> list[list[Item]]:
    """Per test item of `cell`, its few-shot examples (empty lists for a zero-shot study)."""
    ev = study.evaluation
    if not ev.fewshot:
        return [[] for _ in range(n_items)]
    if cell.task in GENERATIVE_TASKS:
        raise UserError(f"{cell}: evaluation.fewshot is for multiple-choice targets; {cell.task} has no "
                        f"train split to draw solved examples from")
    return draw(data.items(cell, "train"), ev.fewshot, ev.fewshot_seed, n_items, ev.fewshot_sampling, str(cell))


def n_test_items(study, data, cell: Cell) -> int:
    """How many test items of `cell` are scored (`evaluation.limit` applied, as `Worker.target_items`)."""
    n = len(data.items(cell, "test"))
    return min(n, study.evaluation.limit) if study.evaluation.limit else n


def key_fields(study, data, cells: Sequence[Cell]) -> dict | None:
    """What a few-shot evaluation's key adds: the setting and the drawn example ids per cell
    (None when zero-shot, so zero-shot keys are unchanged)."""
    ev = study.evaluation
    if not ev.fewshot:
        return None
    examples = {}
    for cell in cells:
        ids = [[x.id for x in ex] for ex in cell_examples(study, data, cell, _n(study, data, cell))]
        # per cell: the k ids themselves; per item: a digest of the whole stream
        examples[str(cell)] = ids[0] if ev.fewshot_sampling == "cell" and ids else _digest(ids)
    return {"k": ev.fewshot, "seed": ev.fewshot_seed, "sampling": ev.fewshot_sampling,
            "multiturn": multiturn(study), "version": FEWSHOT_VERSION, "examples": examples}


def _n(study, data, cell: Cell) -> int:
    return 1 if study.evaluation.fewshot_sampling == "cell" else n_test_items(study, data, cell)


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":")).encode()).hexdigest()


def multiturn(study) -> bool:
    """The effective `fewshot_as_multiturn`: as set, else on with a chat template (the harness)."""
    ev = study.evaluation
    return ev.chat_template if ev.fewshot_as_multiturn is None else ev.fewshot_as_multiturn


# --- rendering -------------------------------------------------------------------------------
def _turn(item: Item, fmt: str) -> tuple[str | None, str, str, str]:
    """(description, doc_to_text, target delimiter, gold choice text) of `item`, no chat template."""
    p = render(item, fmt)
    system = p.system or ""
    gold = p.choice_texts[p.gold] if p.continuations else ""
    return p.system, p.context[len(system):], p.delimiter, gold


def render_fewshot(item: Item, examples: Sequence[Item], fmt: str, *, chat_template: bool = False,
                   tokenizer=None, multiturn: bool | None = None) -> Prompt:
    """The prompt of `item` after its `examples`, as the harness's `fewshot_context` builds it."""
    base = render(item, fmt, chat_template=chat_template, tokenizer=tokenizer)
    if not examples:
        return base
    system, user, _, _ = _turn(item, fmt)
    shots = [_turn(x, fmt) for x in examples]
    if not chat_template:
        text = "".join(q + delim + a + FEWSHOT_DELIMITER for _, q, delim, a in shots)
        context = (system or "") + text + user
    elif multiturn is None or multiturn:
        messages = [{"role": "system", "content": system}] if system else []
        for _, q, _, a in shots:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": user})
        context = chat_messages(tokenizer, messages)
    else:
        from transfergrid.prompts import chat_text

        text = "".join(q + delim + a + FEWSHOT_DELIMITER for _, q, delim, a in shots)
        context = chat_text(tokenizer, system, text + user)
    return Prompt(context, base.continuations, base.gold, base.fmt, delimiter=base.delimiter,
                  stop=base.stop, system=base.system)


def chat_messages(tokenizer, messages: list[dict]) -> str:
    """`messages` through the model's chat template, ready for the assistant's reply."""
    if tokenizer is None:
        raise ModelError("chat_template=True needs the model's tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ModelError(f"the tokenizer of {name} has no chat template; evaluate without --chat-template")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def cell_prompts(study, data, cell: Cell, items: Sequence[Item], tokenizer) -> list[Prompt] | None:
    """The few-shot prompts of a target cell's test items (None when zero-shot: render as usual)."""
    ev = study.evaluation
    if not ev.fewshot:
        return None
    shots = cell_examples(study, data, cell, len(items))
    return [render_fewshot(it, ex, ev.format, chat_template=ev.chat_template, tokenizer=tokenizer,
                           multiturn=multiturn(study)) for it, ex in zip(items, shots)]
