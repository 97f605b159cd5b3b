"""devices.py and the out-of-memory back-off of scoring and training, simulated on CPU."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from transfergrid import devices
from transfergrid.errors import ModelError
from transfergrid.execute.ray import _slots
from transfergrid.models import load_model
from transfergrid.records import Item
from transfergrid.scoring import score_items
from transfergrid.train import train_adapter
from transfergrid.training_config import TrainingSpec

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "sun", "star", "water", "boils"]


def make_items(n: int, seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    return [Item(f"d{seed}-{i}", "arc_challenge", "en",
                 " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "?",
                 tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) for _ in range(4)),
                 rng.randrange(4)) for i in range(n)]


class FakeOOM:
    """A forward pre-hook on the decoder that runs out of memory for batches of more than `rows` rows."""

    def __init__(self, model, rows: int, error=torch.OutOfMemoryError):
        self.rows, self.error, self.raised = rows, error, 0
        self.handle = model.model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        ids = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]
        if ids.shape[0] > self.rows:
            self.raised += 1
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --- choices ------------------------------------------------------------------------------------


def test_device_and_dtype_choices(monkeypatch):
    assert devices.choose() == ("cpu", torch.float32) or torch.cuda.is_available()
    assert devices.choose("cpu", "bf16") == ("cpu", torch.bfloat16)
    assert devices.choose("cpu", torch.float16) == ("cpu", torch.float16)
    with pytest.raises(ModelError, match="dtype 'int8'"):
        devices.choose("cpu", "int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="CUDA is not available"):
        devices.choose("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert devices.choose() == ("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert devices.choose("cuda:1") == ("cuda:1", torch.float16)


def test_attention_and_autocast_choices(monkeypatch):
    monkeypatch.setattr(devices, "flash_attention_available", lambda: True)
    assert devices.training_attention("cuda", torch.bfloat16) == "flash_attention_2"
    assert devices.training_attention("cuda", torch.float32) == "sdpa"  # flash-attention needs 16-bit
    assert devices.training_attention("cpu", torch.bfloat16) == "sdpa"
    monkeypatch.setattr(devices, "flash_attention_available", lambda: False)
    assert devices.training_attention("cuda", torch.bfloat16) == "sdpa"
    assert not isinstance(devices.autocast("cpu", torch.bfloat16), torch.autocast)
    assert not isinstance(devices.autocast("cuda", torch.float32), torch.autocast)


def test_attention_switch_restores_the_evaluation_kernel():
    model = load_model("tiny:").model
    before = model.config._attn_implementation
    with devices.attention(model, "eager"):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == before


def test_is_oom_recognises_every_out_of_memory_error():
    assert devices.is_oom(torch.OutOfMemoryError("x"))
    assert devices.is_oom(torch.cuda.OutOfMemoryError("x"))
    assert devices.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not devices.is_oom(RuntimeError("shape mismatch"))
    assert not devices.is_oom(ValueError("out of memory"))


def test_token_budget_follows_free_memory_within_bounds():
    config = load_model("random:llama-3.1-8b?layers=1&hidden=64&heads=4", device="cpu").model.config
    small, large = (devices.budget_from_memory(g << 30, config) for g in (1, 40))
    assert devices.MIN_BATCH_TOKENS <= small < large <= devices.MAX_BATCH_TOKENS
    for b in (small, large):
        assert b & (b - 1) == 0  # a power of two
    assert devices.budget_from_memory(0, config) == devices.MIN_BATCH_TOKENS
    assert devices.eval_token_budget(load_model("tiny:").model) == devices.CPU_BATCH_TOKENS


def test_ray_starts_one_worker_per_gpu_and_never_more():
    class FakeRay:
        def __init__(self, res):
            self.res = res

        def cluster_resources(self):
            return self.res

    assert _slots(FakeRay({"GPU": 8.0, "CPU": 64.0}), None) == (8, {"num_gpus": 1, "num_cpus": 1})
    assert _slots(FakeRay({"GPU": 2.0, "CPU": 64.0}), 6)[0] == 2
    assert _slots(FakeRay({"GPU": 8.0, "CPU": 64.0}), 3)[0] == 3
    assert _slots(FakeRay({"CPU": 4.0}), None) == (4, {"num_cpus": 1})


# --- back-off -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, torch.cuda.OutOfMemoryError])
def test_scoring_backs_off_on_out_of_memory_with_identical_scores(error, caplog):
    loaded = load_model("tiny:")
    items = make_items(12)
    clean = score_items(loaded.model, loaded.tokenizer, items, "cloze", batch_tokens=100_000)
    with caplog.at_level(logging.WARNING, logger="transfergrid.scoring"), FakeOOM(loaded.model, 2, error) as oom:
        backed_off = score_items(loaded.model, loaded.tokenizer, items, "cloze", batch_tokens=100_000)
    assert oom.raised >= 3  # 12 rows -> 6 -> 3 -> 1-2
    assert "out of memory on a batch of 12 rows" in caplog.text
    assert [s.pred for s in backed_off] == [s.pred for s in clean]
    assert [s.pred_norm for s in backed_off] == [s.pred_norm for s in clean]
    for a, b in zip(backed_off, clean):
        assert a.loglik == pytest.approx(b.loglik, abs=1e-5)


def test_scoring_that_cannot_fit_one_row_is_a_clear_error():
    loaded = load_model("tiny:")
    with FakeOOM(loaded.model, 0), pytest.raises(ModelError, match="out of memory on a single sequence"):
        score_items(loaded.model, loaded.tokenizer, make_items(3), "letters")


def test_training_backs_off_to_micro_batches_and_trains_the_same_adapter(tmp_path, caplog):
    from safetensors.torch import load_file

    spec = TrainingSpec(rank=4, alpha=8, epochs=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0)
    items, val = make_items(16), make_items(8, seed=1)
    clean = train_adapter(load_model("tiny:"), items, val, spec, seed=3, fmt="cloze", out_dir=tmp_path / "clean")
    loaded = load_model("tiny:")
    with caplog.at_level(logging.WARNING, logger="transfergrid.train"), FakeOOM(loaded.model, 2) as oom:
        backed = train_adapter(loaded, items, val, spec, seed=3, fmt="cloze", out_dir=tmp_path / "oom")
    assert oom.raised >= 2 and "micro-batch now 2" in caplog.text
    assert backed.steps == clean.steps == 2  # the batch of 8 is kept: the same optimiser steps
    assert backed.train_tokens == clean.train_tokens
    assert backed.train_losses == pytest.approx(clean.train_losses, rel=1e-5)
    assert backed.val_losses == pytest.approx(clean.val_losses, rel=1e-5)
    a, b = (load_file(str(r.out_dir / "adapter_model.safetensors")) for r in (backed, clean))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
