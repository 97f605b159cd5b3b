"""The chain-of-thought ablation on the tiny in-process model."""

from __future__ import annotations

import math

import pytest
import torch

from transfergrid import cot, generation
from transfergrid.records import Item

PASSAGE = "The quick brown fox jumps over the lazy dog. The sun is a star."


def _items(n: int = 4, lang: str = "en") -> list[Item]:
    questions = ["Which animal jumps?", "What is the sun?", "Who is lazy?", "What does the fox do?"]
    choices = [("The fox", "The dog", "The sun", "Water"), ("A star", "A dog", "Water", "A fox"),
               ("The fox", "The dog", "The star", "Nobody"), ("Sleeps", "Jumps", "Boils", "Shines")]
    return [Item(f"q{i}", "belebele", lang, questions[i % 4], choices[i % 4], (i * 3) % 4,
                 {"passage": PASSAGE * (1 + i % 2), "passage_id": f"p{i % 2}"}) for i in range(n)]


def _loglik(model, tokenizer, context: str, continuation: str) -> float:
    """Plain full-sequence log-probability of `continuation` after `context` (harness semantics)."""
    ctx = tokenizer(context)["input_ids"]
    whole = tokenizer(context + continuation)["input_ids"]
    cont = whole[len(ctx):]
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(whole) - len(cont)
    return math.fsum(float(logp[start - 1 + k, t]) for k, t in enumerate(cont))


def test_generation_prompt_is_numbered_prompt_plus_instruction():
    item = _items(1)[0]
    ctx = cot.generation_context(item)
    assert ctx.startswith(PASSAGE + "\nWhich animal jumps?\n1. The fox\n2. The dog\n3. The sun\n4. Water\n\n")
    assert ctx.endswith(cot.COT_INSTRUCTION + cot.REASONING_CUE)
    assert "Answer:" not in ctx


def test_reasoning_is_cut_at_the_models_own_answer():
    assert cot.reasoning_of(" The fox jumps.\nAnswer: 1\nmore") == " The fox jumps."
    assert cot.reasoning_of(" no answer here  \n") == " no answer here"


def test_cot_is_deterministic_and_scores_after_the_reasoning(tiny):
    model, tokenizer = tiny
    items = _items(4)
    first = cot.cot_score_items(model, tokenizer, items, max_new_tokens=6, batch_size=2)
    second = cot.cot_score_items(model, tokenizer, items, max_new_tokens=6, batch_size=3)
    assert [s.generation for s in first] == [s.generation for s in second]
    for a, b in zip(first, second):
        assert list(a.loglik) == pytest.approx(list(b.loglik), abs=1e-5)
    for item, score in zip(items, first):
        assert score.id == item.id and score.gold == item.gold
        assert score.generation  # the model did write something
        assert score.reasoning == cot.reasoning_of(score.generation)
        assert len(score.loglik) == 4
        assert score.pred == max(range(4), key=lambda j: score.loglik[j])
        assert score.correct == (score.pred == item.gold)
        # the answer is scored on a context that holds the reasoning, before the answer cue
        context = cot.generation_context(item) + score.reasoning + cot.ANSWER_CUE
        assert cot.scoring_prompt(item, cot.generation_context(item), score.reasoning).context == context
        for j in range(4):
            assert score.loglik[j] == pytest.approx(_loglik(model, tokenizer, context, f" {j + 1}"), abs=1e-4)


def test_reasoning_changes_the_answer_scores(tiny, monkeypatch):
    model, tokenizer = tiny
    item = _items(1)[0]
    monkeypatch.setattr(generation, "generate", lambda m, t, ctxs, **kw: [" fox dog sun star Answer: 3"] * len(ctxs))
    with_fixed = cot.cot_score_items(model, tokenizer, [item], max_new_tokens=4)[0]
    assert with_fixed.reasoning == " fox dog sun star"
    context = cot.generation_context(item) + " fox dog sun star" + cot.ANSWER_CUE
    expected = [_loglik(model, tokenizer, context, f" {j}") for j in (1, 2, 3, 4)]
    assert list(with_fixed.loglik) == pytest.approx(expected, abs=1e-4)
    monkeypatch.setattr(generation, "generate", lambda m, t, ctxs, **kw: [""] * len(ctxs))
    empty = cot.cot_score_items(model, tokenizer, [item], max_new_tokens=4)[0]
    assert max(abs(a - b) for a, b in zip(empty.loglik, with_fixed.loglik)) > 1e-3


def test_chat_template_puts_the_instruction_in_the_user_turn(tiny):
    model, tokenizer = tiny
    item = _items(1)[0]
    ctx = cot.generation_context(item, chat_template=True, tokenizer=tokenizer)
    assert ctx.startswith("<|user|>\n" + PASSAGE)
    assert ctx.endswith(cot.COT_INSTRUCTION + "<|end|>\n<|assistant|>\n")
    scores = cot.cot_score_items(model, tokenizer, [item], chat_template=True, max_new_tokens=4)
    assert len(scores) == 1 and len(scores[0].loglik) == 4
    assert scores[0].to_dict()["reasoning"] == scores[0].reasoning


def test_chat_template_without_one_is_a_user_error():
    from transfergrid.errors import UserError

    class NoChat:
        chat_template = None
        name_or_path = "plain-model"

    with pytest.raises(UserError, match="plain-model has no chat template"):
        cot.generation_context(_items(1)[0], chat_template=True, tokenizer=NoChat())
