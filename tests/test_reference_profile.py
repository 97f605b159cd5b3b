"""The donors-recipients profile: the reference pipeline's training texts on real items (expected
strings written by hand from dataset_processors/*.py), its token encoding, its Trainer's sampler,
the batch-size back-off, and how a profile merges into a study file and its job keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transfergrid import train as train_mod
from transfergrid import train_loop
from transfergrid.data import load_items
from transfergrid.errors import StudyError, UserError
from transfergrid.plan import TRAIN, build_jobs
from transfergrid.prompts import reference_training_text
from transfergrid.records import Item
from transfergrid.study import parse_study
from transfergrid.testing import tiny_tokenizer
from transfergrid.train_examples import IGNORE_INDEX, build_reference_examples
from transfergrid.train_loop import random_batches
from transfergrid.training_config import TrainingSpec

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "okapi").is_dir(), reason="../shared/data is not here")
REF = TrainingSpec(encoding="reference", max_lengths={"arc_challenge": 256, "global_mmlu_lite": 512,
                                                      "hellaswag": 512, "truthfulqa_mc1": 128})


def _item(task, lang, split, item_id):
    return next(i for i in load_items(task, lang, split, DATA) if i.id == item_id)


# --- the texts, on real items ----------------------------------------------------------------------


@needs_data
def test_arc_reference_text_on_the_manifests_first_test_item():
    es = reference_training_text(_item("arc_challenge", "es", "test", "ACTAAP_2009_5_8"))
    assert es.prompt == ("Question: ¿Qué parte de la célula se encuentra en las células vegetales pero no en las "
                         "células animales?\nA) núcleo\nB) pared celular\nC) citoplasma\nD) membrana celular\nAnswer:")
    assert es.target == " B"
    en = reference_training_text(_item("arc_challenge", "en", "test", "ACTAAP_2009_5_8"))
    assert en.prompt == ("Question: What cell part is found in plant cells but not in animal cells?\n"
                         "A) nucleus\nB) cell wall\nC) cytoplasm\nD) cell membrane\nAnswer:")
    assert en.target == " B"


@needs_data
def test_arc_reference_text_keeps_the_references_quirks_on_three_and_five_options():
    three = reference_training_text(_item("arc_challenge", "en", "train", "NYSEDREGENTS_2004_4_8"))
    assert three.prompt == ("Question: Base your answers on the information below. One hot, summer day it rained "
                            "very heavily. After the rain, a plastic pan on a picnic table had 2 cm of rainwater in "
                            "it. Four hours later, all the rainwater in the pan was gone. If the day were cool "
                            "instead of hot, the rainwater in the pan would have disappeared\nA) slower\nB) faster\n"
                            "C) in the same amount of time\nD) None\nAnswer:")
    assert three.target == " A"
    five = _item("arc_challenge", "en", "test", "TIMSS_1995_8_N4")
    text = reference_training_text(five)
    assert len(five.choices) == 5 and text.target == " B"
    assert text.prompt.endswith(f"\nD) {five.choices[3]}\nAnswer:") and five.choices[4] not in text.prompt


@needs_data
def test_global_mmlu_reference_text_on_a_real_item():
    text = reference_training_text(_item("global_mmlu_lite", "en", "test", "astronomy/test/58"))
    assert text.prompt == ("When traveling north from the United States into Canada you’ll see the North Star "
                           "(Polaris) getting _________.\nA. Brighter\nB. Higher in the sky\nC. Dimmer\n"
                           "D. Lower in the sky\nAnswer:")
    assert text.target == " B"


@needs_data
def test_truthfulqa_reference_text_is_question_and_correct_answer_without_letters():
    item = next(i for i in load_items("truthfulqa_mc1", "es", "validation", DATA) if "Cleopatra" in i.context)
    text = reference_training_text(item)
    assert text.prompt == ("Question: ¿Qué evento ocurrió más cerca del nacimiento de Cleopatra: la construcción de "
                           "las pirámides o el aterrizaje en la luna?\nAnswer: El aterrizaje en la luna.")
    assert text.target is None  # the loss is on every token


def test_hellaswag_reference_text_from_the_hf_layout():
    item = Item("hellaswag/validation/1", "hellaswag", "de", "", ("legt [title] es weg.", "springt", "läuft", "x"),
                2, {"activity_label": "Kochen", "ctx_a": "Ein Mann steht.", "ctx_b": "er NIMMT einen Topf"})
    text = reference_training_text(item)
    # preprocess(" [title]" -> ". ", drop [..], "  " -> " "); ctx_b.capitalize() lowers the rest
    assert text.prompt == ("Kochen: Ein Mann steht. Er nimmt einen topf\nA) legt. es weg.\nB) springt\n"
                           "C) läuft\nD) x\nAnswer:")
    assert text.target == " C"


def test_arc_item_with_answer_e_is_skipped_as_the_reference_does():
    item = Item("x", "arc_challenge", "es", "q", ("a", "b", "c", "d", "e"), 4)
    assert reference_training_text(item) is None
    assert build_reference_examples(tiny_tokenizer(), [item], REF) == []


# --- the encoding ------------------------------------------------------------------------------------


def test_lettered_encoding_no_bos_answer_only_loss_right_padded_to_the_task_length():
    tok = tiny_tokenizer()
    item = Item("x", "arc_challenge", "en", " What boils? ", ("water", "the sun", "a dog", "a fox"), 0)
    (ex,) = build_reference_examples(tok, [item], REF)
    prompt = tok("Question: What boils?\nA) water\nB) the sun\nC) a dog\nD) a fox\nAnswer:",
                 add_special_tokens=False)["input_ids"]
    target = tok(" A", add_special_tokens=False)["input_ids"]
    n = len(prompt) + len(target)
    assert len(ex) == 256
    assert list(ex.input_ids[:n]) == prompt + target
    assert set(ex.input_ids[n:]) == {tok.pad_token_id}
    assert list(ex.attention) == [1] * n + [0] * (256 - n)
    assert list(ex.labels) == [IGNORE_INDEX] * len(prompt) + target + [IGNORE_INDEX] * (256 - n)


def test_lettered_encoding_drops_the_first_tokens_past_the_max_length():
    tok = tiny_tokenizer()
    item = Item("x", "arc_challenge", "en", "the quick brown fox " * 10, ("a", "b", "c", "d"), 3)
    spec = TrainingSpec(encoding="reference", max_lengths={"arc_challenge": 12})
    (ex,) = build_reference_examples(tok, [item], spec)
    text = reference_training_text(item)
    full = tok(text.prompt, add_special_tokens=False)["input_ids"] + tok(" D", add_special_tokens=False)["input_ids"]
    assert list(ex.input_ids) == full[-12:] and all(a == 1 for a in ex.attention)
    assert [t for t in ex.labels if t != IGNORE_INDEX] == tok(" D", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("side", ["right", "left"])
def test_truthfulqa_encoding_loss_on_every_non_pad_token_tokenizer_padding(side):
    tok = tiny_tokenizer()
    tok.padding_side = side
    try:
        item = Item("0", "truthfulqa_mc1", "en", "Is the sun a star?", ("No.", "Yes, it is."), 1)
        (ex,) = build_reference_examples(tok, [item], REF)
        ids = tok("Question: Is the sun a star?\nAnswer: Yes, it is.")["input_ids"]  # special tokens as the tokenizer adds
        pad = 128 - len(ids)
        if side == "right":
            assert list(ex.input_ids) == ids + [tok.pad_token_id] * pad
            assert list(ex.labels) == ids + [IGNORE_INDEX] * pad
        else:
            assert list(ex.input_ids) == [tok.pad_token_id] * pad + ids
            assert list(ex.labels) == [IGNORE_INDEX] * pad + ids
        assert sum(ex.attention) == len(ids)
    finally:
        tok.padding_side = "right"


def test_random_batches_are_the_hf_trainers_order():
    from accelerate.data_loader import SeedableRandomSampler

    sampler = SeedableRandomSampler(list(range(27)), data_seed=17)
    for epoch in range(3):
        order = list(iter(sampler))
        assert random_batches(27, 8, 17, epoch) == [order[k:k + 8] for k in range(0, 27, 8)]
    assert random_batches(27, 8, 17, 0) != random_batches(27, 8, 42, 0)


# --- training with the reference encoding and the batch back-off -----------------------------------------


def _items(n):
    words = ["the", "sun", "is", "a", "star", "water", "boils"]
    return [Item(f"i{i}", "arc_challenge", "en", " ".join(words[(i + k) % 7] for k in range(5)) + "?",
                 tuple(words[(i + k) % 7] for k in range(4)), i % 4) for i in range(n)]


def test_reference_training_runs_and_backs_off_on_out_of_memory(tmp_path, monkeypatch):
    from transfergrid.models import load_model

    real = train_loop.answer_loss_sum
    seen = []

    def small_memory(model, ids, mask, labels):
        seen.append(ids.shape[0])
        if model.training and ids.shape[0] > 5:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, ids, mask, labels)

    monkeypatch.setattr(train_loop, "answer_loss_sum", small_memory)  # looked up there
    spec = TrainingSpec(encoding="reference", sampler="random", auto_batch_size=True, batch_size=8, rank=4,
                        alpha=8, epochs=1, learning_rate=1e-3, max_lengths={"arc_challenge": 48})
    result = train_mod.train_adapter(load_model("tiny:"), _items(10), _items(2), spec, seed=17, fmt="cloze",
                                     out_dir=tmp_path / "a")
    assert seen[:3] == [8, 7, 6] and result.metadata["config"]["batch_size"] == 5  # int(0.9 x b) each time
    assert result.train_size == 10 and result.steps == 2


def test_training_limit_takes_the_first_items(tmp_path):
    from transfergrid.models import load_model

    spec = TrainingSpec(limit=4, rank=4, alpha=8, epochs=1, batch_size=2, max_lengths={"arc_challenge": 32},
                        encoding="reference")
    train, val = _items(10), _items(12)[10:]
    result = train_mod.train_adapter(load_model("tiny:"), train, val, spec, seed=1, fmt="cloze",
                                     out_dir=tmp_path / "a")
    assert (result.train_size, result.val_size, result.steps) == (4, 1, 2)


# --- the profile in a study file -------------------------------------------------------------------------


def _study(**extra):
    return parse_study({"name": "s", "profile": "donors-recipients", **extra})


def test_profile_fills_the_reference_run_and_explicit_fields_win():
    s = _study()
    assert [m.source for m in s.models][5] == "Qwen/Qwen2.5-3B-Instruct" and len(s.models) == 9
    assert len(s.cells()) == 44 and s.seeds == [17, 42, 101]
    assert s.training.encoding == "reference" and s.training.sampler == "random" and s.training.auto_batch_size
    assert s.training.max_length_for("truthfulqa_mc1") == 128 and not s.train_chat_template()
    assert s.evaluation.chat_template and s.evaluation.format == "cloze"
    o = _study(models=[{"id": "m", "source": "tiny:"}], training={"epochs": 1, "max_lengths": {}},
               grid={"languages": ["en", "es"]})
    assert [m.id for m in o.models] == ["m"] and o.training.epochs == 1
    assert o.training.encoding == "reference" and o.training.max_lengths == {}  # a field is replaced whole
    assert o.grid.tasks == s.grid.tasks and o.grid.languages == ["en", "es"]


def test_unknown_profile_is_one_clear_error():
    with pytest.raises(StudyError, match="unknown profile 'donors-recipient'.*did you mean 'donors-recipients'"):
        _study(profile="donors-recipient")
    with pytest.raises(UserError):
        parse_study({"name": "s", "profile": 3})


def test_the_reference_encoding_is_in_the_training_keys():
    def keys(study):
        return {j.spec["source_cell"]: j.key for j in build_jobs(study, lambda t: "m", lambda s: "f")
                if j.kind == TRAIN and j.spec["seed"] == 17 and j.model == study.models[0].id}

    ref = _study()
    for change in ({"encoding": "default"}, {"sampler": "length_grouped"}, {"max_lengths": {}},
                   {"auto_batch_size": False}):
        other = _study(training=change)
        assert keys(ref).keys() == keys(other).keys()
        assert not set(keys(ref).values()) & set(keys(other).values()), change
