"""train.py on tiny in-process models: labels, batching, epoch selection, determinism, pooling,
the NaN guard, atomic output, and adapters that the evaluation engine loads."""

from __future__ import annotations

import json
import random

import pytest
import torch

from transfergrid import train as train_mod
from transfergrid import train_loop
from transfergrid.adapters import AdapterSet
from transfergrid.encoding import encode_prompts
from transfergrid.errors import DivergenceError, ModelError, UserError
from transfergrid.models import load_model
from transfergrid.prompts import render
from transfergrid.records import Item
from transfergrid.scoring import score_items, score_variants
from transfergrid.train import train_adapter
from transfergrid.train_examples import IGNORE_INDEX, build_examples
from transfergrid.train_loop import length_grouped_batches
from transfergrid.training_config import TrainingSpec

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "sun", "star", "water", "boils"]
SPEC = TrainingSpec(rank=4, alpha=8, epochs=2, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0)


def make_items(n: int, lang: str = "en", seed: int = 0, task: str = "arc_challenge") -> list[Item]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "?"
        choices = tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(4))
        items.append(Item(f"{lang}-{seed}-{i}", task, lang, question, choices, rng.randrange(4)))
    return items


def lora_state(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@pytest.fixture()
def tiny_loaded():
    return load_model("tiny:")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One adapter trained on a tiny model (shared by the read-only tests)."""
    loaded = load_model("tiny:")
    out = tmp_path_factory.mktemp("adapters") / "a"
    result = train_adapter(loaded, make_items(16), make_items(4, seed=1), SPEC, seed=1, fmt="letters",
                           out_dir=out, meta={"study_hash": "s123", "data_manifest_hash": "m456"})
    return loaded, result


# --- examples and batches ----------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "chat"), [("cloze", False), ("letters", False), ("letters", True)])
def test_labels_cover_exactly_the_gold_answer_tokens_as_scoring_encodes_them(tiny, fmt, chat):
    _, tok = tiny
    items = make_items(6)
    examples = build_examples(tok, items, fmt, chat_template=chat)
    for item, ex in zip(items, examples):
        prompt = render(item, fmt, chat_template=chat, tokenizer=tok)
        (enc,) = encode_prompts(tok, [prompt])
        answer = enc.continuations[prompt.gold]
        assert list(ex.input_ids) == enc.context + answer
        assert list(ex.labels) == [IGNORE_INDEX] * len(enc.context) + answer


def test_truncation_drops_context_from_the_left_and_keeps_the_answer(tiny):
    _, tok = tiny
    item = Item("long", "arc_challenge", "en", " ".join(WORDS * 6) + "?", ("sun", "star water boils", "dog", "fox"), 1)
    full = build_examples(tok, [item], "cloze", max_length=4096)[0]
    short = build_examples(tok, [item], "cloze", max_length=16)[0]
    n_answer = sum(1 for t in full.labels if t != IGNORE_INDEX)
    assert len(full) > 16 and len(short) == 16
    assert short.input_ids == full.input_ids[-16:]  # the left of the context went
    assert short.labels[-n_answer:] == full.labels[-n_answer:]


def test_length_grouped_batches_cover_every_example_once_and_follow_the_seed():
    lengths = [(i * 37) % 251 + 5 for i in range(100)]
    a = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(1))
    b = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(1))
    c = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(2))
    assert sorted(i for batch in a for i in batch) == list(range(100))
    assert a == b and a != c
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in a)
    shuffled = [list(range(100))[k:k + 8] for k in range(0, 100, 8)]
    assert padded < 0.8 * sum(len(bt) * max(lengths[i] for i in bt) for bt in shuffled)


def test_answer_loss_equals_cross_entropy_of_the_answer_tokens_from_full_logits(tiny):
    model, tok = tiny
    examples = build_examples(tok, make_items(3), "cloze")
    ids, mask, labels = train_loop.collate(examples, tok.pad_token_id)
    with torch.no_grad():
        total, n = train_loop.answer_loss_sum(model, ids, mask, labels)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
    expected, count = 0.0, 0
    for b, ex in enumerate(examples):
        for t in range(1, len(ex)):
            if ex.labels[t] != IGNORE_INDEX:
                expected -= float(logp[b, t - 1, ex.labels[t]])
                count += 1
    assert n == count == sum(1 for ex in examples for t in ex.labels if t != IGNORE_INDEX)
    assert float(total) == pytest.approx(expected, rel=1e-5)


def test_target_modules_map_short_names_and_drop_absent_ones(tiny):
    model, _ = tiny
    assert train_mod.resolve_target_modules(model, ["q", "v_proj", "gate", "c_attn"]) == ["q_proj", "v_proj",
                                                                                       "gate_proj"]
    with pytest.raises(ModelError, match="none of them"):
        train_mod.resolve_target_modules(model, ["c_attn", "query_key_value"])


# --- training ----------------------------------------------------------------------------------


def test_adapter_and_metadata_are_written(trained):
    loaded, result = trained
    out = result.out_dir
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    meta = json.loads((out / "transfergrid.json").read_text())
    assert meta["study_hash"] == "s123" and meta["data_manifest_hash"] == "m456"
    assert meta["cells"] == ["arc_challenge:en"] and meta["seed"] == 1
    assert meta["train_size"] == 16 and meta["val_size"] == 4
    assert len(meta["train_losses"]) == len(meta["val_losses"]) == 2
    assert meta["best_epoch"] == 1 + min(range(2), key=lambda e: meta["val_losses"][e])
    assert meta["model"]["fingerprint"] == loaded.fingerprint
    assert meta["config"]["rank"] == 4 and meta["tokens_per_second"] > 0 and meta["wall_time_s"] > 0
    assert meta["train_losses"][1] < meta["train_losses"][0]  # it learns
    # nothing but the result is left beside it
    assert [p.name for p in out.parent.iterdir()] == ["a"]


def test_adapter_loads_in_peft_and_the_engine_and_base_scores_stay_exact(trained):
    from peft import PeftModel

    from transfergrid.testing import tiny_model

    loaded, result = trained
    items = make_items(6, seed=9)
    plain, tok = tiny_model()
    base = score_items(plain, tok, items, "letters")

    peft_model = PeftModel.from_pretrained(tiny_model()[0], str(result.out_dir)).eval()
    via_peft = score_variants(peft_model, tok, ["default"], items, "letters")["default"]

    adapters = AdapterSet(loaded)
    adapters.add("src", result.out_dir)
    scores = score_variants(adapters, loaded.tokenizer, [None, "src", None], items, "letters")
    # training left the loaded model untouched, and None is exactly the base model
    assert [s.loglik for s in scores[None]] == [s.loglik for s in base]
    assert [s.loglik for s in scores["src"]] != [s.loglik for s in base]
    for ours, theirs in zip(scores["src"], via_peft):
        assert ours.loglik == pytest.approx(theirs.loglik, abs=1e-5)
    adapters.remove("src")


def test_same_seed_gives_identical_adapters_and_another_seed_does_not(tmp_path, tiny_loaded):
    items, val = make_items(12), make_items(4, seed=1)
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        train_adapter(tiny_loaded, items, val, SPEC, seed=seed, fmt="cloze", out_dir=tmp_path / name)
        runs[name] = lora_state(tmp_path / name)
    assert runs["a"].keys() == runs["b"].keys()
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])
    meta = [json.loads((tmp_path / n / "transfergrid.json").read_text()) for n in "ab"]
    assert meta[0]["train_losses"] == meta[1]["train_losses"]


def test_gradient_checkpointing_gives_the_same_adapter_and_is_switched_off_after(tmp_path, tiny_loaded):
    items, val = make_items(12), make_items(4, seed=1)
    spec = SPEC.model_copy(update={"dropout": 0.1})  # dropout: the recomputation must replay its RNG
    train_adapter(tiny_loaded, items, val, spec, seed=5, fmt="cloze", out_dir=tmp_path / "plain")
    checkpointed = spec.model_copy(update={"gradient_checkpointing": True})
    train_adapter(tiny_loaded, items, val, checkpointed, seed=5, fmt="cloze", out_dir=tmp_path / "ckpt")
    plain, ckpt = lora_state(tmp_path / "plain"), lora_state(tmp_path / "ckpt")
    assert plain.keys() == ckpt.keys()
    assert all(torch.allclose(plain[k], ckpt[k], rtol=0, atol=1e-6) for k in plain)
    assert not tiny_loaded.model.is_activation_checkpointing  # the base model is handed back as it was


def test_the_epoch_with_the_lowest_validation_loss_is_kept(tmp_path, tiny_loaded, monkeypatch):
    scripted = iter([3.0, 1.0, 2.0])
    snapshots = []

    def fake_validation_loss(model, examples, batch_size, pad_id):
        snapshots.append({k.replace(".default", ""): v.detach().clone()
                          for k, v in model.named_parameters() if "lora_" in k})
        return next(scripted)

    monkeypatch.setattr(train_mod, "validation_loss", fake_validation_loss)
    spec = SPEC.model_copy(update={"epochs": 3})
    result = train_adapter(tiny_loaded, make_items(8), make_items(2, seed=1), spec, seed=0, fmt="letters",
                           out_dir=tmp_path / "best")
    assert result.best_epoch == 2 and result.val_losses == [3.0, 1.0, 2.0]
    saved = lora_state(tmp_path / "best")
    assert len(saved) == len(snapshots[1]) > 0
    assert all(torch.equal(value, snapshots[1][key]) for key, value in saved.items())
    assert not all(torch.equal(value, snapshots[2][key]) for key, value in saved.items())


def test_pooled_sources_train_on_every_item_and_record_every_cell(tmp_path, tiny_loaded):
    pooled = make_items(6, "en") + make_items(5, "es", seed=2)
    result = train_adapter(tiny_loaded, pooled, make_items(2, "es", seed=3), SPEC, seed=0, fmt="letters",
                           out_dir=tmp_path / "pool")
    assert result.cells == ["arc_challenge:en", "arc_challenge:es"] and result.train_size == 11
    meta = json.loads((tmp_path / "pool" / "transfergrid.json").read_text())
    assert meta["cells"] == result.cells and meta["train_size"] == 11
    examples = build_examples(tiny_loaded.tokenizer, pooled, "letters")
    assert result.train_tokens == SPEC.epochs * sum(len(e) for e in examples)


def test_nan_loss_stops_with_the_cell_and_step_and_writes_nothing(tmp_path, tiny_loaded):
    model = tiny_loaded.model
    items = make_items(8)
    before = score_items(model, tiny_loaded.tokenizer, items[:3], "cloze")
    calls = {"n": 0}

    def poison(module, args, output):
        calls["n"] += 1
        return output * float("nan") if calls["n"] >= 2 else output  # the second forward pass diverges

    handle = model.lm_head.register_forward_hook(poison)
    try:
        with pytest.raises(DivergenceError, match=r"arc_challenge:en: training loss is nan at step 2"):
            train_adapter(tiny_loaded, items, [], SPEC, seed=0, fmt="cloze", out_dir=tmp_path / "x",
                          meta={"cells": ["arc_challenge:en"]})
    finally:
        handle.remove()
    assert list(tmp_path.iterdir()) == []  # no result, no temporary directory
    # the base model is as it was: no LoRA layers left behind
    assert not any("lora" in n for n, _ in model.named_modules())
    after = score_items(model, tiny_loaded.tokenizer, items[:3], "cloze")
    assert [s.loglik for s in after] == [s.loglik for s in before]


def test_an_infinite_learning_rate_diverges(tmp_path, tiny_loaded):
    spec = SPEC.model_copy(update={"learning_rate": float("inf"), "epochs": 1})
    with pytest.raises(DivergenceError, match="step"):
        train_adapter(tiny_loaded, make_items(12), make_items(2, seed=1), spec, seed=0, fmt="cloze",
                      out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_output_directory_is_replaced_only_when_it_holds_an_earlier_result(tmp_path, tiny_loaded):
    spec = SPEC.model_copy(update={"epochs": 1})
    out = tmp_path / "out"
    train_adapter(tiny_loaded, make_items(4), [], spec, seed=0, fmt="cloze", out_dir=out)
    first = lora_state(out)
    train_adapter(tiny_loaded, make_items(4), [], spec, seed=1, fmt="cloze", out_dir=out)  # replaces it
    assert json.loads((out / "transfergrid.json").read_text())["seed"] == 1
    assert not all(torch.equal(first[k], v) for k, v in lora_state(out).items())
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an earlier training result"):
        train_adapter(tiny_loaded, make_items(4), [], spec, seed=0, fmt="cloze", out_dir=other)
    assert (other / "keep.txt").read_text() == "mine"


def test_generative_items_cannot_be_trained_on(tmp_path, tiny_loaded):
    item = Item("g1", "mgsm", "en", "What is 2+2?", (), -1, {"answer": "4"})
    with pytest.raises(UserError, match="generative"):
        train_adapter(tiny_loaded, [item], [], SPEC, seed=0, fmt="cloze", out_dir=tmp_path / "g")


def test_full_fine_tuning_writes_a_model_that_loads_and_leaves_the_base_alone(tmp_path, tiny_loaded):
    spec = SPEC.model_copy(update={"method": "full", "learning_rate": 1e-3, "epochs": 1})
    items = make_items(6)
    before = [p.detach().clone() for p in tiny_loaded.model.parameters()]
    result = train_adapter(tiny_loaded, items, make_items(2, seed=1), spec, seed=0, fmt="letters",
                           out_dir=tmp_path / "full")
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_loaded.model.parameters()))
    tuned = load_model(str(result.out_dir))
    assert json.loads((result.out_dir / "transfergrid.json").read_text())["kind"] == "full"
    base = score_items(tiny_loaded.model, tiny_loaded.tokenizer, items, "letters")
    ft = score_items(tuned.model, tuned.tokenizer, items, "letters")
    assert [s.loglik for s in base] != [s.loglik for s in ft]


def test_progress_callback_sees_every_step_and_epoch(tmp_path, tiny_loaded):
    events = []
    result = train_adapter(tiny_loaded, make_items(9), make_items(2, seed=1), SPEC, seed=0, fmt="cloze",
                           out_dir=tmp_path / "p", progress=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == result.steps == 2 * 3 and steps[-1]["total_steps"] == 6
    assert [e["epoch"] for e in events if e["kind"] == "epoch"] == [1, 2]


def test_gradient_accumulation_takes_fewer_optimizer_steps(tmp_path, tiny_loaded):
    spec = SPEC.model_copy(update={"batch_size": 2, "grad_accum": 3, "epochs": 1})
    result = train_adapter(tiny_loaded, make_items(12), [], spec, seed=0, fmt="cloze", out_dir=tmp_path / "g")
    assert result.steps == 2  # 6 micro-batches, 3 per step


# --- command -----------------------------------------------------------------------------------


def test_train_command_trains_and_prints_the_loss_curve(tmp_path, monkeypatch, capsys):
    import sys
    import types

    from transfergrid.cli.app import main

    # a stand-in for the data layer (docs/architecture.md contract), independent of the real files
    splits = {"train": make_items(10, "es"), "validation": make_items(3, "es", seed=1)}
    data = types.ModuleType("transfergrid.data")
    data.load_items = lambda task, lang, split, root, source=None: splits[split]
    data.resolve_data_dir = lambda value=None, study=None: tmp_path
    monkeypatch.setitem(sys.modules, "transfergrid.data", data)
    out = tmp_path / "adapter"
    main(["train", "--model", "tiny:", "--task", "arc_challenge", "--lang", "es", "--out", str(out),
          "--epochs", "2", "--lr", "0.01", "--rank", "4", "--format", "letters", "--limit", "8"])
    text = capsys.readouterr().out
    assert "validation loss" in text and "kept" in text and "8 train / 1 validation" in text
    meta = json.loads((out / "transfergrid.json").read_text())
    assert meta["cells"] == ["arc_challenge:es"] and meta["config"]["rank"] == 4 and meta["config"]["alpha"] == 8


def test_train_command_rejects_bad_options_with_exit_2(tmp_path, capsys):
    from transfergrid.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "tiny:", "--task", "arc_challenge", "--lang", "es", "--out", str(tmp_path / "o"),
              "--format", "essay"])
    assert exit_info.value.code == 2 and "--format" in capsys.readouterr().err
