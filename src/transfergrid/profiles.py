"""Study profiles: named sets of study-file defaults, selected by one line (`profile = "NAME"`).

A profile is a study file in miniature (the same tables and fields). `apply_profile` merges it
*under* the study file: every field the study file sets explicitly wins. The top-level tables
(`[grid]`, `[data]`, `[splits]`, `[training]`, `[evaluation]`) merge field by field; a field's value
is replaced whole, so `models`, `seeds`, `grid.languages`, `data.sources` or `training.max_lengths`
written in the study file replace the profile's (they are not merged key by key). After the merge the profile's values are
ordinary study fields, so they are validated like any other and go into the job keys exactly as if
they had been written out (docs/reference-profile.md).

`donors-recipients` is the reference run of "Donors and Recipients" (repository
kdymkiewicz/Donors-and-Recipients at commit 5869b712): its nine models, grid, seeds, splits and
manifests, its Hugging Face sources, its training encoding (per-task prompts, lengths, truncation,
BOS rule, loss masks: `training.encoding = "reference"`), its Trainer's sampler and batch-size rule,
and its evaluation (cloze with the chat template, zero-shot).
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from transfergrid.data import reference
from transfergrid.errors import StudyError
from transfergrid.training_config import merge_training

# The reference's manifests, relative to the data root (../shared/data/dnr_manifests here).
MANIFESTS = "dnr_manifests"

REFERENCE_COMMIT = "5869b712a7ad6211b6dbdd47a78d48e6cf6b92bd"

# The nine models of core_grid_sweeps/*.yaml, loaded in bfloat16 as utils.load_base_model does.
REFERENCE_MODELS = [
    ("Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"),
    ("Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"),
    ("Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
    ("Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
    ("Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-3B-Instruct"),
    ("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
    ("gemma-3-1b-it", "google/gemma-3-1b-it"),
    ("gemma-3-4b-it", "google/gemma-3-4b-it"),
]

# dataset_processors/*.py: `max_length` of each task's tokenisation.
REFERENCE_MAX_LENGTHS = {"arc_challenge": 256, "global_mmlu_lite": 512, "hellaswag": 512, "truthfulqa_mc1": 128}

DONORS_RECIPIENTS: dict[str, Any] = {
    "seeds": [17, 42, 101],  # finetune.py EXPERIMENT_SEEDS
    "models": [{"id": i, "source": s, "dtype": "bfloat16"} for i, s in REFERENCE_MODELS],
    "grid": {
        "tasks": list(REFERENCE_MAX_LENGTHS),
        "languages": list(reference.LANGUAGES),
    },
    # split_benchmarks.py SOURCES: the pools the manifests' ids come from, at its pinned revisions
    "data": {"sources": dict(reference.SOURCES)},
    # the reference's frozen ids (split_manifests/canonical, 300 train / 400 test, Global-MMLU 215
    # train), here a folder of the data root; 90/10 train/validation by its rule (seed 42)
    "splits": {"manifests": MANIFESTS, "train": 300, "test": 400, "validation_fraction": 0.1,
               "validation_seed": 42, "per_task": {"global_mmlu_lite": {"train": 215}}},
    # HF Trainer defaults as finetune.py leaves them, plus its explicit arguments.
    "training": {
        "method": "lora", "rank": 32, "alpha": 64, "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "learning_rate": 5e-5, "weight_decay": 0.0, "epochs": 3, "batch_size": 8, "grad_accum": 1,
        "warmup_ratio": 0.1, "scheduler": "linear", "select_best_epoch": True,
        "encoding": "reference", "max_lengths": dict(REFERENCE_MAX_LENGTHS), "sampler": "random",
        "auto_batch_size": True, "chat_template": False,
    },
    # evaluate.py: lm_eval --apply_chat_template --num_fewshot 0 on the harness's (cloze) tasks.
    "evaluation": {"format": "cloze", "chat_template": True, "metric": "auto"},
}

PROFILES: dict[str, dict[str, Any]] = {"donors-recipients": DONORS_RECIPIENTS}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        close = difflib.get_close_matches(name, list(PROFILES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise StudyError(f"profile: unknown profile {name!r}{hint}; known profiles: {', '.join(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def merge_under(defaults: dict[str, Any], explicit: dict[str, Any]) -> dict[str, Any]:
    """`explicit` over `defaults`: top-level tables merge field by field, every field is replaced whole."""
    out = dict(defaults)
    for key, value in explicit.items():
        if key == "training" and isinstance(value, dict) and isinstance(out.get(key), dict):
            try:  # its tables merge field by field too, whichever spelling (flat or tables) each side uses
                out[key] = merge_training(out[key], value)
            except ValueError as exc:
                raise StudyError(f"training: {exc}") from None
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def apply_profile(data: dict[str, Any]) -> dict[str, Any]:
    """The study-file dict with its profile's defaults filled in (unchanged without `profile`)."""
    name = data.get("profile")
    if name is None:
        return data
    if not isinstance(name, str):
        raise StudyError(f"profile: expected a profile name (one of {', '.join(PROFILES)}), got {name!r}")
    return merge_under(get_profile(name), data)


def profile_warnings(study, data_dir) -> list[str]:
    """What a user of the reference profile should know about its data before running: whether its
    TruthfulQA ids (row positions) pair the same question in every language (`data audit`)."""
    if study.profile != "donors-recipients" or "truthfulqa_mc1" not in study.tasks:
        return []
    from transfergrid.data.audit import audit_study, summarize
    from transfergrid.errors import UserError

    try:
        return summarize(audit_study(study, data_dir, tasks=["truthfulqa_mc1"]))
    except UserError as exc:
        return [f"truthfulqa_mc1: could not audit whether its ids pair the same questions: {exc}"]
