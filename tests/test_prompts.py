"""prompts.render against the harness's own task code: for every benchmark the cloze context and
choices must equal what lm-evaluation-harness 0.4.13 builds from the same raw document."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transfergrid.errors import DataError, ModelError, UserError
from transfergrid.prompts import (
    FORMATS,
    PROMPT_VERSION,
    Prompt,
    okapi_preprocess,
    render,
)
from transfergrid.records import Item
from transfergrid.versions import HARNESS_MIN_VERSION

lm_eval = pytest.importorskip("lm_eval", minversion=HARNESS_MIN_VERSION)
TASKS = Path(lm_eval.__file__).parent / "tasks"


class _Loader(yaml.SafeLoader):
    """Reads harness YAML, ignoring `!function` tags (we only need the template strings)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def harness_yaml(rel: str) -> dict:
    return yaml.load((TASKS / rel).read_text(encoding="utf-8"), Loader=_Loader)


def jinja(template: str, doc: dict) -> str:
    from lm_eval.utils import apply_template

    return apply_template(template, doc)


def test_version_and_formats():
    assert PROMPT_VERSION and FORMATS == ("cloze", "letters", "numbers")


def test_okapi_arc_matches_harness_process_docs():
    import datasets
    from lm_eval.tasks.okapi.arc_multilingual.utils import process_docs

    raw = {"id": "ARC-Challenge/test/X", "instruction": "  ¿Qué [title] pasa  con el hielo? ",
           "option_a": "El calor [x] se mueve.", "option_b": "El frío", "option_c": "Nada",
           "option_d": "Todo", "option_e": "Otra", "answer": "E"}
    doc = process_docs(datasets.Dataset.from_list([raw]))[0]
    item = Item(raw["id"], "arc_challenge", "es", raw["instruction"],
                tuple(raw[f"option_{x}"] for x in "abcde"), 4)
    p = render(item, "cloze")
    assert p.context == doc["query"]
    assert p.choice_texts == tuple(doc["choices"])
    assert p.continuations == tuple(" " + c for c in doc["choices"])
    assert p.gold == doc["gold"] == 4


def test_english_arc_matches_harness_yaml():
    cfg = harness_yaml("arc/arc_easy.yaml")
    q, choices = "Which  gas do plants absorb?", ("oxygen", "carbon dioxide", "nitrogen", "helium")
    p = render(Item("Mercury_1", "arc_challenge", "en", q, choices, 1), "cloze")
    assert p.context == jinja(cfg["doc_to_text"], {"question": q})  # raw text, no okapi preprocessing
    assert p.choice_texts == choices


def test_okapi_mmlu_and_global_mmlu_match_harness_yaml():
    q, opts = "  ¿Cuál es 2+2? ", ("3", "4", "5", "6")
    doc = {"instruction": q, "question": q, **{f"option_{x}": o for x, o in zip("abcd", opts)}}
    m_mmlu = harness_yaml("okapi/mmlu_multilingual/_default_yaml")
    p = render(Item("math/val/1", "mmlu", "es", q, opts, 1), "cloze")
    assert p.context == jinja(m_mmlu["doc_to_text"], doc)
    assert p.continuations == tuple(" " + c for c in m_mmlu["doc_to_choice"])
    gm = harness_yaml("global_mmlu/default/id/_id_template_yaml")
    p = render(Item("astronomy/test/58", "global_mmlu_lite", "id", q, opts, 1), "cloze")
    assert p.context == jinja(gm["doc_to_text"], doc)
    assert p.choice_texts == tuple(gm["doc_to_choice"])


def test_english_mmlu_has_subject_description():
    p = render(Item("high_school_physics/val/0", "mmlu", "en", "Q?", ("a", "b", "c", "d"), 0,
                    {"subject": "high_school_physics"}), "cloze")
    assert p.context.startswith("The following are multiple choice questions (with answers) about high school physics.\n\nQ?\nA. a\n")
    assert p.system is not None


def test_okapi_truthfulqa_matches_harness():
    import datasets
    from lm_eval.tasks.okapi.truthfulqa_multilingual.utils import process_docs

    raw = {"question": "¿Qué pasa si  comes semillas?", "mc1_targets_choices": ["Nada", "Crecen"],
           "mc1_targets_labels": [1, 0], "mc2_targets_choices": ["Nada"], "mc2_targets_labels": [1]}
    doc = process_docs(datasets.Dataset.from_list([raw]))[0]
    p = render(Item("tqa-1", "truthfulqa_mc1", "es", raw["question"], ("Nada", "Crecen"), 0), "cloze")
    assert p.context == doc["query"]
    assert p.choice_texts == tuple(doc["mc1_choices"])


def test_hellaswag_matches_harness():
    import datasets
    from lm_eval.tasks.okapi.hellaswag_multilingual.utils import process_docs

    raw = {"activity_label": "Cocinar", "ctx_a": "Un hombre corta [header] cebollas.", "ctx_b": "luego",
           "endings": ["las fríe.", "[title] canta."], "label": "0"}
    doc = process_docs(datasets.Dataset.from_list([raw]))[0]
    item = Item("hs-1", "hellaswag", "es", "", tuple(raw["endings"]), 0,
                {k: raw[k] for k in ("activity_label", "ctx_a", "ctx_b")})
    p = render(item, "cloze")
    assert p.context == doc["query"]
    assert p.choice_texts == tuple(doc["choices"])


def test_belebele_matches_harness_yaml():
    cfg = harness_yaml("belebele/_default_template_yaml")
    doc = {"flores_passage": "Un pasaje.", "question": " ¿Qué dice? ", "mc_answer1": "a", "mc_answer2": "b",
           "mc_answer3": "c", "mc_answer4": "d"}
    item = Item("7", "belebele", "id", doc["question"], ("a", "b", "c", "d"), 2, {"passage": doc["flores_passage"]})
    p = render(item, "cloze")
    assert p.context == jinja(cfg["doc_to_text"], doc)
    assert p.choice_texts == tuple(cfg["doc_to_choice"])


@pytest.mark.parametrize("lang", ["it", "zh", "sw", "vi"])
@pytest.mark.parametrize("question", ["cause", "effect"])
def test_xcopa_matches_harness_utils(lang, question):
    import importlib

    utils = importlib.import_module("lm_eval.tasks.xcopa.utils")
    doc = {"premise": "L'uomo si è rotto il dito del piede.", "choice1": "Ha lasciato cadere un martello.",
           "choice2": "Un buco è apparso.", "question": question, "label": 0}
    item = Item("1", "xcopa", lang, doc["premise"], (doc["choice1"], doc["choice2"]), 0, {"question": question})
    p = render(item, "cloze")
    assert p.context == getattr(utils, f"doc_to_text_{lang}")(doc)
    assert p.choice_texts == tuple(utils.doc_to_choice(doc))


def test_english_copa_keeps_the_harness_double_space():
    from lm_eval.tasks.super_glue.copa import utils

    doc = {"premise": "The man broke his toe.", "choice1": "He dropped a hammer.", "choice2": "He sang.",
           "question": "cause", "label": 0}
    p = render(Item("1", "xcopa", "en", doc["premise"], (doc["choice1"], doc["choice2"]), 0,
                    {"question": "cause"}), "cloze")
    assert p.context == utils.doc_to_text(doc)
    assert p.choice_texts == tuple(utils.doc_to_choice(doc))
    assert p.continuations[0] == "  he dropped a hammer."


def test_xstorycloze_matches_harness_yaml():
    cfg = harness_yaml("xstorycloze/default_ar.yaml")  # default_es.yaml includes it
    s = ["Me volví fan.", "Me recuperaba.", "Volví a casa.", "Me costó."]
    doc = {f"input_sentence_{i + 1}": x for i, x in enumerate(s)}
    p = render(Item("fec3", "xstorycloze", "es", " ".join(s), ("Mal final.", "Al final, los vi."), 1), "cloze")
    assert p.context == jinja(cfg["doc_to_text"], doc)
    assert p.continuations == (" Mal final.", " Al final, los vi.")


@pytest.mark.parametrize("lang", ["es", "fr", "zh", "de", "en"])
def test_mgsm_matches_harness_yaml(lang):
    cfg = harness_yaml(f"mgsm/direct/mgsm_direct_{lang}.yaml")
    q = "Janet tiene 3 patos. ¿Cuántos?"
    p = render(Item("0", "mgsm", lang, q, (), -1, {"answer": "3"}), "cloze")
    assert p.context == jinja(cfg["doc_to_text"], {"question": q, "answer": None})
    assert p.continuations == ()
    assert set(p.stop) == set(cfg["generation_kwargs"]["until"])
    with pytest.raises(UserError):
        render(Item("0", "mgsm", lang, q, (), -1), "letters")


ARC = Item("a1", "arc_challenge", "es", "¿Cuál es el planeta más grande?", ("Júpiter", "Marte", "Sol", "Luna"), 0)


def test_letters_and_numbers():
    p = render(ARC, "letters")
    assert p.context == "¿Cuál es el planeta más grande?\nA. Júpiter\nB. Marte\nC. Sol\nD. Luna\nAnswer:"
    assert p.continuations == (" A", " B", " C", " D") and p.gold == 0
    n = render(ARC, "numbers")
    assert n.context == "¿Cuál es el planeta más grande?\n1. Júpiter\n2. Marte\n3. Sol\n4. Luna\nAnswer:"
    assert n.continuations == (" 1", " 2", " 3", " 4")
    bel = render(Item("7", "belebele", "id", "Q?", ("a", "b", "c", "d"), 1, {"passage": "P."}), "numbers")
    assert bel.context == "P.\nQ?\n1. a\n2. b\n3. c\n4. d\nAnswer:"


def test_chat_template_wraps_user_turn_and_drops_delimiter(tiny):
    _, tok = tiny
    p = render(ARC, "letters", chat_template=True, tokenizer=tok)
    plain = render(ARC, "letters")
    assert p.context == f"<|user|>\n{plain.context}<|end|>\n<|assistant|>\n"
    assert p.continuations == ("A", "B", "C", "D") and p.delimiter == ""
    c = render(ARC, "cloze", chat_template=True, tokenizer=tok)
    assert c.continuations == ARC.choices and c.choice_texts == ARC.choices


def test_chat_template_errors(tiny):
    import copy

    _, tok = tiny
    with pytest.raises(ModelError, match="needs the model's tokenizer"):
        render(ARC, "cloze", chat_template=True, tokenizer=None)
    no_template = copy.deepcopy(tok)
    no_template.chat_template = None
    with pytest.raises(ModelError, match="has no chat template"):
        render(ARC, "cloze", chat_template=True, tokenizer=no_template)


def test_user_errors():
    with pytest.raises(UserError, match="unknown prompt format"):
        render(ARC, "essay")
    with pytest.raises(DataError, match="gold"):
        render(Item("x", "arc_challenge", "es", "Q", ("a", "b"), 5), "cloze")
    with pytest.raises(DataError, match="passage"):
        render(Item("x", "belebele", "id", "Q", ("a", "b", "c", "d"), 0), "cloze")
    with pytest.raises(DataError, match="connector"):
        render(Item("x", "xcopa", "xx", "P.", ("a", "b"), 0, {"question": "cause"}), "cloze")
    with pytest.raises(UserError, match="no prompt template"):
        render(Item("x", "nope", "es", "Q", ("a", "b"), 0), "cloze")


def test_okapi_preprocess():
    assert okapi_preprocess(" a [title]b [step] c ") == "a. b c"


def test_prompt_is_frozen():
    p = render(ARC, "cloze")
    assert isinstance(p, Prompt)
    with pytest.raises(AttributeError):
        p.context = "x"  # type: ignore[misc]


def test_preview_marks_gold_and_shows_spaces():
    from transfergrid.prompts import preview

    text = preview(render(ARC, "letters"))
    assert text.startswith(render(ARC, "letters").context)
    assert "* 0: ' A'" in text and "  1: ' B'" in text
    gen = preview(render(Item("0", "mgsm", "en", "Q", (), -1, {"answer": "1"}), "cloze"))
    assert "generate until" in gen
