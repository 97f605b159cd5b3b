"""Devices: device and dtype choice, CUDA settings, attention kernels, token budgets, out-of-memory back-off.

Choices (one place, so scoring, training and the workers agree):

- device `auto` = cuda when available, else cpu; dtype `auto` = bfloat16 on CUDA (float16 where
  the GPU has no bf16), float32 on CPU;
- on CUDA, TF32 matmuls for whatever still runs in float32, bf16 autocast in training (16-bit
  weights, float32 adapter weights: PEFT keeps them in float32), inference mode in evaluation;
- attention: SDPA (PyTorch's fused kernels) by default, because evaluation packs a question's
  choices behind one context with a 4-D mask that only eager and SDPA kernels take; training
  switches to flash-attention 2 when the flash_attn package is installed (CUDA, 16-bit weights);
- evaluation batches are sized by a token budget: 512 tokens on CPU (throughput is flat in batch
  size there and padding is waste), and on CUDA from the free memory and the model's activation
  size per token (`eval_token_budget`);
- out of memory (`is_oom`): evaluation halves the failing batch and retries each half, then keeps
  the halved budget; training halves its micro-batch and accumulates gradients, so the effective
  batch (the recipe's 8) and the result stay the same. (The reference's HF `auto_find_batch_size`
  starts at 8 and halves the batch itself, which changes the optimisation; we keep the batch.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from transfergrid.errors import ModelError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32", "bfloat16": "bfloat16",
           "bf16": "bfloat16", "float16": "float16", "fp16": "float16", "half": "float16"}
CPU_BATCH_TOKENS = 512
MAX_BATCH_TOKENS = 65536  # beyond this a forward pass is long enough to saturate any GPU
MIN_BATCH_TOKENS = 1024
MEMORY_FRACTION = 0.5  # of the free memory, for one evaluation batch's activations and logits


def choose(device=None, dtype=None):
    """(device string, torch dtype) from user choices (None / "auto" = the defaults above)."""
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device}: CUDA is not available here (torch {torch.__version__}); use cpu or auto")
    if dtype in (None, "auto"):
        if device == "cpu":
            dtype = torch.float32
        elif device.startswith("cuda") and not torch.cuda.is_bf16_supported():
            dtype = torch.float16
        else:
            dtype = torch.bfloat16
    elif isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ModelError(f"dtype {dtype!r}: expected one of auto, float32, bfloat16, float16")
        dtype = getattr(torch, _DTYPES[dtype])
    return device, dtype


def configure(device: str) -> None:
    """Backend settings for `device`: TF32 matmuls and cuDNN autotuning on CUDA."""
    import torch

    if str(device).startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")


def flash_attention_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def training_attention(device: str, dtype) -> str:
    """The attention kernel for training: flash-attention 2 where installed (CUDA, 16-bit), else SDPA."""
    import torch

    half = dtype in (torch.bfloat16, torch.float16)
    return "flash_attention_2" if str(device).startswith("cuda") and half and flash_attention_available() else "sdpa"


@contextlib.contextmanager
def attention(model, implementation: str):
    """Use `implementation` inside the block, then restore the model's kernel (evaluation needs SDPA)."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switched = False
    if before and implementation != before and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation(implementation)
            switched = True
        except (ValueError, ImportError) as exc:
            log.info("attention: staying on %s (%s)", before, str(exc).splitlines()[0])
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(before)


def autocast(device, dtype):
    """bf16/fp16 autocast on CUDA for a model with 16-bit weights; no-op elsewhere."""
    import torch

    if str(device).startswith("cuda") and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


# --- memory ------------------------------------------------------------------------------------


def is_oom(exc: BaseException) -> bool:
    """An out-of-memory error of any device (torch.OutOfMemoryError covers CUDA's)."""
    import torch

    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    if isinstance(exc, oom_types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_memory(device) -> int | None:
    """Free bytes on a CUDA device (None elsewhere)."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(dev)
    return int(free)


def activation_bytes_per_token(config, dtype_bytes: int = 2, read_fraction: float = 0.5) -> float:
    """Peak evaluation memory per token of a batch: a layer's hidden states, attention projections and
    MLP intermediates in the model dtype, plus float32 log-probabilities over the vocabulary at the
    read positions (`read_fraction` of the tokens at most, for cloze choices)."""
    c = getattr(config, "text_config", None) or config
    hidden, inter = int(c.hidden_size), int(getattr(c, "intermediate_size", 4 * c.hidden_size))
    vocab = int(getattr(c, "vocab_size", 32000))
    return dtype_bytes * (6 * hidden + 3 * inter) + read_fraction * vocab * (dtype_bytes + 4)


def eval_token_budget(model) -> int:
    """Tokens per evaluation forward pass: CPU_BATCH_TOKENS on CPU; on CUDA a power of two that fits
    MEMORY_FRACTION of the free memory; 8192 on other devices."""
    import torch

    try:
        param = next(model.parameters())
    except StopIteration:  # pragma: no cover
        return CPU_BATCH_TOKENS
    if param.device.type == "cpu":
        return CPU_BATCH_TOKENS
    free = free_memory(param.device)
    if free is None:
        return 8192
    return budget_from_memory(free, model.config, torch.finfo(param.dtype).bits // 8)


def budget_from_memory(free_bytes: int, config, dtype_bytes: int = 2) -> int:
    """The largest power of two of tokens whose activations fit MEMORY_FRACTION of `free_bytes`,
    within [MIN_BATCH_TOKENS, MAX_BATCH_TOKENS]."""
    tokens = int(free_bytes * MEMORY_FRACTION / activation_bytes_per_token(config, dtype_bytes))
    budget = MIN_BATCH_TOKENS
    while budget * 2 <= min(tokens, MAX_BATCH_TOKENS):
        budget *= 2
    return budget


def split_on_oom(run: Callable[[Sequence[T]], list[R]], batch: Sequence[T], *,
                 on_oom: Callable[[Sequence[T]], None] | None = None) -> list[R]:
    """`run(batch)` (one result per element); on out-of-memory, run each half and join the results.
    `on_oom(batch)` is told about every batch that failed. A single element that does not fit is a ModelError."""
    try:
        return run(batch)
    except Exception as exc:
        if not is_oom(exc):
            raise
    release_memory()  # outside the except block: the traceback no longer pins the failed batch's tensors
    if len(batch) == 1:
        raise ModelError("out of memory on a single sequence; use a smaller model, a shorter max_length "
                         "or a device with more memory") from None
    if on_oom is not None:
        on_oom(batch)
    mid = len(batch) // 2
    return split_on_oom(run, batch[:mid], on_oom=on_oom) + split_on_oom(run, batch[mid:], on_oom=on_oom)


def describe(model: Any) -> str:
    """One line for logs: device, dtype, attention kernel."""
    try:
        p = next(model.parameters())
    except StopIteration:  # pragma: no cover
        return "no parameters"
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return f"{p.device} {str(p.dtype).removeprefix('torch.')} attention={impl}"
