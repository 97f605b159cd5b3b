"""Compute cost per token: what turns a study's token counts (`estimate`) into time.

Time = tokens x seconds per token, and seconds per token = a per-token cost x the model's size in
billions of parameters (`CostModel`). The costs are parameters: measured on this machine
(`measure_cost`), given as throughput at a model size (`CostModel.from_throughput`), or from a
FLOP rate (`CostModel.from_flops`: 2N FLOPs per scored token, 4N per LoRA training token, 6N for
full fine-tuning). Linear scaling in model size is an approximation (attention and the vocabulary
projection do not scale with N); say which basis an estimate used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transfergrid.errors import UserError

COSTS_FORMAT = "transfergrid-costs/1"  # benchmarks/gpu.py --costs


@dataclass(frozen=True)
class CostModel:
    """Seconds per token per billion parameters, for training (forward + backward) and scoring."""

    train_s_per_token_b: float
    eval_s_per_token_b: float
    basis: str
    gpus: int = 1

    def train_seconds(self, tokens: float, size_b: float) -> float:
        return tokens * self.train_s_per_token_b * size_b

    def eval_seconds(self, tokens: float, size_b: float) -> float:
        return tokens * self.eval_s_per_token_b * size_b

    @classmethod
    def from_throughput(cls, train_tokens_per_s: float, eval_tokens_per_s: float, size_b: float,
                        basis: str, gpus: int = 1) -> CostModel:
        if train_tokens_per_s <= 0 or eval_tokens_per_s <= 0 or size_b <= 0:
            raise UserError("throughput and model size must be positive numbers")
        return cls(1.0 / (train_tokens_per_s * size_b), 1.0 / (eval_tokens_per_s * size_b), basis, gpus)

    @classmethod
    def from_costs_file(cls, path: Path, gpus: int = 1) -> CostModel:
        """The per-token costs `benchmarks/gpu.py --costs PATH` measured (format transfergrid-costs/1):
        seconds per token per billion parameters, averaged over the models it measured."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"--costs {path}: cannot read it as JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != COSTS_FORMAT:
            raise UserError(f"--costs {path}: expected a {COSTS_FORMAT} file written by benchmarks/gpu.py --costs")
        train, score = [], []
        for m in (data.get("models") or {}).values():
            try:
                size_b = float(m["params"]) / 1e9
                train.append(1.0 / (float(m["train"]["tokens_per_s"]) * size_b))
                score.append(1.0 / (float(m["eval"]["tokens_per_s"]) * size_b))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                continue  # a section the benchmark skipped or stopped
        if not train:
            raise UserError(f"--costs {path}: no model with both training and evaluation throughput")
        machine = data.get("machine") or {}
        kind = "measured" if data.get("measured") else "NOT a GPU measurement (CPU or --small run)"
        return cls(sum(train) / len(train), sum(score) / len(score),
                   f"costs file {path}: {len(train)} model(s) on {machine.get('device', '?')} "
                   f"({kind}), scaled by model size", gpus)

    @classmethod
    def from_flops(cls, flops_per_s: float, *, full: bool = False, gpus: int = 1) -> CostModel:
        if flops_per_s <= 0:
            raise UserError("--flops-per-s must be a positive number")
        train = (6.0 if full else 4.0) * 1e9 / flops_per_s
        return cls(train, 2.0 * 1e9 / flops_per_s, f"{flops_per_s:.3g} FLOP/s per device "
                   f"({'6' if full else '4'}N FLOPs per training token, 2N per scored token)", gpus)


def measure_cost(source: str = "bundled:smollm2-135m-instruct", *, batch: int = 8, length: int = 128,
                 steps: int = 3, gpus: int = 1) -> CostModel:
    """Time LoRA training steps and scoring passes of a local model on random tokens, here."""
    import time

    import torch
    from peft import LoraConfig, get_peft_model

    from transfergrid.models import load_model

    loaded = load_model(source)
    model = loaded.model
    size_b = sum(p.numel() for p in model.parameters()) / 1e9
    device = next(model.parameters()).device
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        model(input_ids=ids[:1, :16])  # warm-up
        tick = time.perf_counter()
        for _ in range(steps):
            model(input_ids=ids, logits_to_keep=1)
        eval_s = time.perf_counter() - tick
    net = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules="all-linear"))
    net.train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-5)
    tick = time.perf_counter()
    for _ in range(steps):
        out = net(input_ids=ids, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    train_s = time.perf_counter() - tick
    net.unload()
    tokens = batch * length * steps
    where = f"{device.type}, {torch.get_num_threads()} threads" if device.type == "cpu" else device.type
    basis = (f"measured here: {source} ({size_b:.3f}B params, {where}): {tokens / train_s:,.0f} training "
             f"and {tokens / eval_s:,.0f} scoring tokens/s, scaled by model size")
    return CostModel.from_throughput(tokens / train_s, tokens / eval_s, size_b, basis, gpus)
