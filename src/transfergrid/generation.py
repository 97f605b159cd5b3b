"""Greedy generation and the generative tasks' answers (mgsm), as lm-evaluation-harness scores them.

`generate` continues contexts greedily in batches (left padding), tokenised as `encoding` tokenises
every prompt. A generative item (`prompts.GENERATIVE_TASKS`) is scored by the harness's two
`mgsm_direct` filters on the generation cut at its prompt's stop strings:

- flexible-extract (the headline `correct`): the last number-like match of the generation,
  regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, group 0 first;
- strict (`correct_strict`, the harness's remove_whitespace filter): the whole stripped generation;

each compared with the gold answer by `exact_match` with ignore_case and ignore_punctuation.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from transfergrid.encoding import encode_texts, pad_id
from transfergrid.prompts import Prompt
from transfergrid.records import Item, ItemScore


def generate(model, tokenizer, contexts: Sequence[str], *, max_new_tokens: int = 256, batch_size: int = 8,
             stop: Sequence[str] | None = None) -> list[str]:
    """Greedy continuations of `contexts`, batched with left padding; each ends at EOS, after
    `max_new_tokens`, or once it contains one of `stop` (the text keeps the stop string: callers
    cut). Contexts are tokenised as scoring tokenises them (BOS rules included)."""
    import torch

    if not contexts:
        return []
    encoded = encode_texts(tokenizer, list(contexts))
    pad = pad_id(tokenizer)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    out: list[str] = [""] * len(encoded)
    kwargs: dict[str, Any] = {}
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                row = encoded[i]
                ids[b, width - len(row):] = torch.tensor(row)
                mask[b, width - len(row):] = 1
            new = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id, **kwargs)[:, width:]
            for b, i in enumerate(idx):
                out[i] = tokenizer.decode(new[b].tolist(), skip_special_tokens=True)
    return out


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """`text` up to the first occurrence of each stop string in turn (the harness's `until`)."""
    for s in stop:
        if s and s in text:
            text = text[: text.index(s)]
    return text


def generate_greedy(model, tokenizer, prompts: Sequence[Prompt], *, max_new_tokens: int = 256,
                    progress: Callable[[int], None] | None = None) -> list[str]:
    """Greedy continuation of each prompt (batched, `generate`), cut at its stop strings."""
    stops = [p.stop for p in prompts]
    texts = generate(model, tokenizer, [p.context for p in prompts], max_new_tokens=max_new_tokens,
                     stop=list({s for st in stops for s in st}))
    if progress is not None:
        progress(len(prompts))
    return [cut_at_stop(t, st) for t, st in zip(texts, stops)]


# --- mgsm answers ------------------------------------------------------------------------------

# mgsm "flexible-extract" filter: the last number-like match of the generation.
_NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_PUNCT = str.maketrans("", "", string.punctuation)


def extract_number(text: str) -> str | None:
    """The flexible-extract filter's answer: the last number-like match, or None."""
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    a, b = matches[-1]
    return a or b


def numeric_match(prediction: str | None, answer: str) -> bool:
    """harness exact_match with ignore_case and ignore_punctuation ("$1,000." == "1000")."""
    if prediction is None:
        return False
    return prediction.strip().lower().translate(_PUNCT) == str(answer).strip().lower().translate(_PUNCT)


def generative_score(item: Item, generation: str) -> ItemScore:
    """A generative item's ItemScore: flexible-extract (`correct`) and strict (`correct_strict`)."""
    answer = str((item.meta or {}).get("answer", ""))
    extracted = extract_number(generation)
    ok = numeric_match(extracted, answer)
    return ItemScore(item.id, item.task, item.lang, -1, (), -1, -1, -1, ok, ok, ok,
                     generation=generation, answer=extracted, correct_strict=numeric_match(generation, answer))
