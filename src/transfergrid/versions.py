"""Every version that enters a job key, and the library versions an adapter's metadata records.

Bump a version when its code changes what a job computes for the same inputs: every job whose key
holds it gets a new key and is redone; rows under the old keys are orphans (`status` counts them).
The modules named beside each version re-export it under the same name.
"""

from __future__ import annotations

# prompts.render: the text of every format (evaluation and training keys)
PROMPT_VERSION = "1"
# scoring: the log-likelihood engine, for the same model, items and prompts (evaluation keys)
SCORING_VERSION = "1"
# cot: the chain-of-thought texts and procedure (CoT evaluation keys)
COT_VERSION = "1"
# fewshot: drawing and rendering of few-shot examples (few-shot evaluation keys)
FEWSHOT_VERSION = "1"
# train_examples.encode_items: how training items become token ids, labels and masks under either
# `training.examples.encoding` (our prompt + gold continuation through encoding.encode_prompts, or the
# reference pipeline's per-task texts, truncation, BOS rule and masks).
ENCODING_VERSION = "1"
# Training keys predate ENCODING_VERSION. Its first value would only have renamed every adapter (hours
# of GPU time per grid) for identical outputs, so it enters the key only once bumped past this value:
# a bump still changes every training key, as a version should, and today's keys stay as they were.
_ENCODING_VERSION_BEFORE_KEYS = "1"

# The oldest lm-evaluation-harness our parity tests and benchmarks compare with (pyproject's dev extra
# says the same): its MGSM prompts changed in 0.4.8.
HARNESS_MIN_VERSION = "0.4.8"


def eval_key_versions() -> dict[str, str]:
    """The versions in every evaluation key."""
    return {"prompt_version": PROMPT_VERSION, "scoring_version": SCORING_VERSION}


def train_key_versions() -> dict[str, str]:
    """The versions in every training key (scoring is not: training computes no scores)."""
    out = {"prompt_version": PROMPT_VERSION}
    if ENCODING_VERSION != _ENCODING_VERSION_BEFORE_KEYS:
        out["encoding_version"] = ENCODING_VERSION
    return out


def library_versions() -> dict[str, str]:
    """The libraries an adapter was trained with (its metadata; not in keys: a fingerprint of the
    installed stack would redo a finished grid after every `pip install -U`)."""
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
