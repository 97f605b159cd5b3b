"""The scoring engine against the harness's own HF backend (naive per-choice full-sequence scoring)
on tiny in-process models: every format, chat template or not, many batch sizes."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch

from transfergrid.encoding import encode_prompts
from transfergrid.generation import extract_number, numeric_match
from transfergrid.prompts import render
from transfergrid.records import Item, ItemScore
from transfergrid.scoring import (
    SCORING_VERSION,
    cell_metrics,
    choice_score,
    score_items,
    score_variants,
)

ITEMS = [
    Item("q0", "arc_challenge", "es", "¿Cuál es el planeta más grande del sistema solar?",
         ("Júpiter", "La Tierra es redonda", "Marte", "El Sol brilla mucho hoy"), 0),
    Item("q1", "arc_challenge", "es", "¿Qué gas absorben las plantas? " * 3,
         ("Oxígeno", "Dióxido de carbono", "Nitrógeno", "Helio", "Neón"), 1),
    Item("q2", "arc_challenge", "es", "¿Dónde?", ("Aquí", "Allí mismo, al lado del río grande"), 1),
    Item("x1", "xcopa", "it", "L'uomo si è rotto il dito del piede.",
         ("Ha lasciato cadere un martello sul piede.", "Un buco è apparso nel calzino."), 0, {"question": "cause"}),
    Item("c1", "xcopa", "en", "The man broke his toe.", ("He dropped a hammer.", "He sang."), 0, {"question": "cause"}),
    Item("t1", "truthfulqa_mc1", "es", "¿Qué pasa si comes semillas de sandía?",
         ("Nada", "Crecen sandías", "Te enfermas", "Mueres", "Sueñas", "Vuelas"), 0),
]


def harness_logliks(model, tokenizer, prompts):
    """lm-evaluation-harness HFLM.loglikelihood, one request per (context, continuation)."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu", logits_cache=False)
    reqs = [SimpleNamespace(args=(p.context, c)) for p in prompts for c in p.continuations]
    flat = lm.loglikelihood(reqs, disable_tqdm=True)
    out, k = [], 0
    for p in prompts:
        out.append(flat[k:k + len(p.continuations)])
        k += len(p.continuations)
    return out


def assert_matches_harness(model, tok, items, fmt, chat, batch_tokens):
    scores = score_items(model, tok, items, fmt, chat_template=chat, batch_tokens=batch_tokens)
    prompts = [render(it, fmt, chat_template=chat, tokenizer=tok) for it in items]
    ref = harness_logliks(model, tok, prompts)
    for s, r in zip(scores, ref, strict=True):
        assert len(s.loglik) == len(r)
        for ours, (theirs, greedy_theirs) in zip(s.loglik, r, strict=True):
            assert ours == pytest.approx(theirs, abs=1e-4)
        assert s.is_greedy == tuple(g for _, g in r)
    return scores


@pytest.mark.parametrize("fmt", ["cloze", "letters", "numbers"])
@pytest.mark.parametrize("chat", [False, True])
def test_matches_harness_loglikelihood(tiny, fmt, chat):
    model, tok = tiny
    for batch_tokens in (48, 100_000):  # one row per batch (and splits), everything in one padded batch
        assert_matches_harness(model, tok, ITEMS, fmt, chat, batch_tokens)


def _bos_tokenizer(tok):
    """The tiny tokenizer, but adding BOS like Llama/Gemma tokenizers, with a BOS-led chat template."""
    from tokenizers import processors

    t = copy.deepcopy(tok)
    t._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", t.bos_token_id)])
    t.chat_template = "<|bos|>" + t.chat_template
    return t


@pytest.mark.parametrize("chat", [False, True])
def test_bos_handling_matches_harness(tiny, chat):
    model, tok = tiny
    bos_tok = _bos_tokenizer(tok)
    assert bos_tok("a")["input_ids"][0] == bos_tok.bos_token_id
    enc = encode_prompts(bos_tok, [render(ITEMS[0], "cloze", chat_template=chat, tokenizer=bos_tok)])[0]
    assert enc.context[0] == bos_tok.bos_token_id and enc.context[1] != bos_tok.bos_token_id  # exactly one BOS
    assert_matches_harness(model, bos_tok, ITEMS[:3], "cloze", chat, 256)


def test_sliding_window_model_matches_harness(tiny):
    """Gemma-3 style: some layers attend within a sliding window; the packed mask must honour it."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    _, tok = tiny
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=6,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=512,
                              pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.2)
    assert_matches_harness(model, tok, ITEMS[:4], "cloze", False, 200)
    assert_matches_harness(model, tok, TQA, "cloze", False, 200)  # shared prefix longer than the window


TQA = [Item(f"t{i}", "truthfulqa_mc1", "es", q, ch, 0) for i, (q, ch) in enumerate([
    ("¿Qué pasa si comes semillas de sandía?", ("Nada", "Crecen sandías", "Te enfermas")),
    ("¿De qué color es el cielo?", ("Azul", "Verde")),
    ("¿Quién escribió el Quijote en el siglo diecisiete?", ("Cervantes", "Lope de Vega", "Nadie", "Un robot")),
])]


@pytest.mark.parametrize("chat", [False, True])
def test_shared_prefix_is_run_once_and_stays_exact(tiny, chat):
    """TruthfulQA's 6-shot primer is common to every item: its keys/values are computed once."""
    from transfergrid.scoring import _pack, _shared_prefix

    model, tok = tiny
    enc = encode_prompts(tok, [render(it, "cloze", chat_template=chat, tokenizer=tok) for it in TQA])
    assert _shared_prefix([_pack(i, e, None) for i, e in enumerate(enc)]) > 100
    for batch_tokens in (64, 100_000):
        assert_matches_harness(model, tok, TQA, "cloze", chat, batch_tokens)


def test_acc_norm_divides_by_choice_characters_without_delimiter():
    p = render(Item("n", "arc_challenge", "en", "Q", ("ab", "abcdef"), 1), "cloze")
    assert p.continuations == (" ab", " abcdef") and p.choice_texts == ("ab", "abcdef")
    # harness: len(doc_to_choice string): -2.2/2 = -1.1 < -6.4/6 = -1.067 -> choice 1.
    # Counting the delimiter space would give -2.2/3 = -0.733 > -6.4/7 = -0.914 -> choice 0.
    s = choice_score("n", "arc_challenge", "en", p, [-2.2, -6.4])
    assert (s.pred, s.pred_norm) == (0, 1)
    assert s.correct_norm and not s.correct


def test_acc_bytes_uses_utf8_length():
    p = render(Item("b", "arc_challenge", "en", "Q", ("ü", "ab"), 0), "cloze")
    s = choice_score("b", "arc_challenge", "en", p, [-3.0, -2.5])
    # chars: -3/1 < -2.5/2 -> 1 ; bytes: -3/2 = -1.5 < -1.25 -> 1 ; both pick 1
    assert (s.pred, s.pred_norm, s.pred_bytes) == (1, 1, 1)
    s = choice_score("b", "arc_challenge", "en", p, [-2.2, -2.5])
    # chars: -2.2 < -1.25 -> 1 ; bytes: -1.1 > -1.25 -> 0
    assert (s.pred, s.pred_norm, s.pred_bytes) == (0, 1, 0)


def test_ties_go_to_first_choice_like_numpy_argmax():
    p = render(Item("t", "arc_challenge", "en", "Q", ("a", "b", "c"), 2), "cloze")
    s = choice_score("t", "arc_challenge", "en", p, [-1.0, -0.5, -0.5])
    assert s.pred == 1


def test_cell_metrics_and_serialisable(tiny):
    model, tok = tiny
    scores = score_items(model, tok, ITEMS, "cloze")
    m = cell_metrics(scores)
    assert m["n"] == len(ITEMS)
    assert m["acc"] == sum(s.pred == s.gold for s in scores) / len(ITEMS)
    assert m["acc_norm"] == sum(s.pred_norm == s.gold for s in scores) / len(ITEMS)
    row = json.loads(json.dumps(scores[0].to_dict()))
    assert row["id"] == "q0" and len(row["loglik"]) == 4 and row["gold"] == 0
    assert cell_metrics([])["n"] == 0 and SCORING_VERSION


def test_score_variants_switches_peft_adapters_in_place(tiny):
    from peft import LoraConfig, get_peft_model

    base, tok = tiny
    base = copy.deepcopy(base)
    base_scores = score_items(base, tok, ITEMS[:3], "letters")
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(copy.deepcopy(base), cfg, adapter_name="first")
    torch.manual_seed(2)
    peft_model.add_adapter("second", cfg)
    peft_model.eval()
    merged_a = copy.deepcopy(peft_model)
    merged_a.set_adapter("first")
    merged_a = merged_a.merge_and_unload()

    out = score_variants(peft_model, tok, [None, "first", "second"], ITEMS[:3], "letters")
    for x, y in zip(out[None], base_scores, strict=True):
        assert x.loglik == pytest.approx(y.loglik, abs=1e-5)
    ref_a = score_items(merged_a, tok, ITEMS[:3], "letters")
    for x, y in zip(out["first"], ref_a, strict=True):
        assert x.loglik == pytest.approx(y.loglik, abs=1e-4)
    assert any(abs(x - y) > 1e-3 for s, t in zip(out["first"], out["second"], strict=True)
               for x, y in zip(s.loglik, t.loglik, strict=True))


def _harness_mgsm(generation: str, answer: str) -> tuple[bool, bool]:
    """(flexible-extract, remove_whitespace) exact match by lm-evaluation-harness's own filter and
    metric functions, configured as its mgsm_direct task (tasks/mgsm/direct/direct_yaml)."""
    extraction = pytest.importorskip("lm_eval.filters.extraction")
    from lm_eval.api.metrics import exact_match_hf_evaluate

    flexible = extraction.RegexFilter(regex_pattern=r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    strict = extraction.WhitespaceFilter()

    def match(filtered):
        return bool(exact_match_hf_evaluate(filtered[0], [answer], ignore_case=True, ignore_punctuation=True)
                    ["exact_match"])

    return match(flexible.apply([[generation]], None)), match(strict.apply([[generation]], None))


# (raw greedy output, gold answer) -> (text kept, extracted answer, flexible-extract, strict), by hand:
# the output is cut at mgsm_direct_es's `until` ("Pregunta:", "</s>", "<|im_end|>"); flexible-extract
# takes the last match of (-?[$0-9.,]{2,})|(-?[0-9]+); both compare case- and punctuation-blind.
MGSM_CASES = [
    (" Tiene 3 patos.\n\nPregunta: ¿y 5?", "3", (" Tiene 3 patos.\n\n", "3", True, False)),
    (" 3\n", "3", (" 3\n", "3", True, True)),
    ("$1,000.", "1000", ("$1,000.", "$1,000.", True, True)),
    (" 12 o 13", "12", (" 12 o 13", "13", False, False)),
    (" no sé", "3", (" no sé", None, False, False)),
    (" 7 </s> 3", "7", (" 7 ", "7", True, True)),
]


def test_generative_mgsm_scores_like_the_harness_filters(tiny, monkeypatch):
    from transfergrid import generation

    model, tok = tiny
    items = [Item(str(i), "mgsm", "es", "Janet tiene 3 patos. ¿Cuántos?", (), -1, {"answer": answer})
             for i, (_, answer, _) in enumerate(MGSM_CASES)]
    outputs = [raw for raw, _, _ in MGSM_CASES]
    monkeypatch.setattr(generation, "generate", lambda m, t, ctxs, **kw: outputs[:len(ctxs)])
    scores = score_items(model, tok, items, "cloze", max_new_tokens=4)
    assert len(scores) == len(MGSM_CASES)
    for s, (raw, answer, expected) in zip(scores, MGSM_CASES, strict=True):
        assert (s.generation, s.answer, s.correct, s.correct_strict) == expected, raw
        assert s.correct == s.correct_norm == s.correct_bytes and s.gold == -1
        assert (s.correct, s.correct_strict) == _harness_mgsm(s.generation, answer), raw


def test_generative_mgsm_runs_on_a_model(tiny):
    model, tok = tiny
    items = [Item("0", "mgsm", "es", "Janet tiene 3 patos. ¿Cuántos?", (), -1, {"answer": "3"})]
    (s,) = score_items(model, tok, items, "cloze", max_new_tokens=8)
    assert isinstance(s, ItemScore) and isinstance(s.generation, str) and "\n" not in s.generation
    assert (s.correct, s.correct_strict) == _harness_mgsm(s.generation, "3")


def test_number_extraction_like_harness_flexible_extract():
    assert extract_number("La respuesta es 18.") == "18."
    assert extract_number("cost $1,000 then 7") == "7"
    assert extract_number("no number") is None
    assert numeric_match("18.", "18") and numeric_match("$1,000", "1000") and not numeric_match("17", "18")
    assert not numeric_match(None, "3")


def test_unpacked_rows_for_kernels_without_custom_masks(tiny, monkeypatch):
    """With flash attention (no custom 4-D masks) every choice gets its own causal row; same scores."""
    from transfergrid import scoring

    model, tok = tiny
    packed = score_items(model, tok, ITEMS + TQA, "cloze", batch_tokens=256)
    monkeypatch.setattr(scoring, "_accepts_custom_masks", lambda model: False)
    seen = []
    original = model.forward

    def forward(*args, **kwargs):
        seen.append(kwargs["attention_mask"].dim())
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    unpacked = score_items(model, tok, ITEMS + TQA, "cloze", batch_tokens=256)
    assert seen and set(seen) == {2}  # plain padding masks only
    for a, b in zip(packed, unpacked, strict=True):
        assert a.loglik == pytest.approx(b.loglik, abs=1e-4)
        assert a.is_greedy == b.is_greedy
