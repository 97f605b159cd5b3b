"""Shared pieces of the eval benchmarks and the parity test: the bundled model as a local HF
directory, ARC items, and lm-evaluation-harness runs on those very items, fully offline.

The harness side uses the harness's OWN task definition for cloze (its okapi `_arc_yaml` and
`utils.process_docs`, included by absolute path, with only the dataset pointed at a local JSONL),
so a parity check compares our templates and engine with the harness's, not with a copy of ours.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
MODEL = "bundled:smollm2-135m-instruct"
CACHE = Path(os.environ.get("TRANSFERGRID_BENCH_CACHE", Path(tempfile.gettempdir()) / "transfergrid-bench"))


def harness_too_old() -> str | None:
    """Why the installed lm-evaluation-harness is not a peer (None: it is); MGSM prompts changed in 0.4.8."""
    import lm_eval
    from packaging.version import Version

    from transfergrid.versions import HARNESS_MIN_VERSION

    found = getattr(lm_eval, "__version__", "0")
    if Version(found) < Version(HARNESS_MIN_VERSION):
        return f"lm-eval {found} is older than {HARNESS_MIN_VERSION}: pip install 'lm-eval>={HARNESS_MIN_VERSION}'"
    return None


def load_model_and_dir(source: str = MODEL):
    """(model, tokenizer, hf_dir): the model in float32 on CPU, and a local HF directory holding the
    same weights and tokenizer for the harness's `pretrained=` argument."""
    from transfergrid.models import load_model

    loaded = load_model(source, device="cpu", dtype="float32")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    hf_dir = CACHE / f"hf-{loaded.fingerprint[:16]}"
    if not (hf_dir / "config.json").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=CACHE))
        # GGUF-loaded models carry a quantizer marker that blocks saving; the weights are plain now.
        quantizer = getattr(model, "hf_quantizer", None)
        qconfig = getattr(model.config, "quantization_config", None)
        try:
            model.hf_quantizer = None
            if qconfig is not None:
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        finally:
            model.hf_quantizer = quantizer
            if qconfig is not None:
                model.config.quantization_config = qconfig
        try:
            tmp.rename(hf_dir)
        except OSError:  # another process won the race
            pass
    return model, tokenizer, hf_dir


def arc_items(lang: str, n: int, data_dir: Path | None = None):
    """The first n ARC-Challenge test items of `lang` (through the project's data layer)."""
    from transfergrid.data import load_items, resolve_data_dir

    root = Path(data_dir) if data_dir else resolve_data_dir()
    return list(load_items("arc_challenge", lang, "test", root))[:n]


def _okapi_docs(items) -> list[dict]:
    """Items back in the Okapi m_arc row format the harness task reads."""
    rows = []
    for it in items:
        row = {"id": it.id, "instruction": it.context, "answer": "ABCDE"[it.gold]}
        for k, letter in enumerate("abcde"):
            row[f"option_{letter}"] = it.choices[k] if k < len(it.choices) else None
        rows.append(row)
    return rows


_LETTERS_UTILS = '''
from lm_eval.tasks.okapi.arc_multilingual.utils import preprocess

def doc_to_text(doc):
    options = [o for o in (doc["option_a"], doc["option_b"], doc["option_c"], doc["option_d"], doc["option_e"]) if o]
    lines = [preprocess(doc["instruction"])]
    lines += ["ABCDE"[i] + ". " + preprocess(o) for i, o in enumerate(options)]
    return "\\n".join(lines) + "\\nAnswer:"

def doc_to_choice(doc):
    n = sum(1 for o in (doc["option_a"], doc["option_b"], doc["option_c"], doc["option_d"], doc["option_e"]) if o)
    return list("ABCDE"[:n])

def doc_to_target(doc):
    return "ABCDE".index(doc["answer"])
'''


def write_harness_tasks(items, out: Path, name: str = "tg_arc") -> dict[str, str]:
    """Two harness tasks over the same local items: `{name}_cloze` (the harness's own okapi ARC
    task) and `{name}_letters` (a lettered multiple-choice task: one request per letter)."""
    import lm_eval

    out.mkdir(parents=True, exist_ok=True)
    data = out / "docs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _okapi_docs(items)), encoding="utf-8")
    okapi = Path(lm_eval.__file__).parent / "tasks" / "okapi" / "arc_multilingual"
    (out / "utils.py").write_text(
        "from lm_eval.tasks.okapi.arc_multilingual.utils import process_docs  # noqa: F401\n" + _LETTERS_UTILS)
    dataset = (f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
               "training_split: null\nvalidation_split: null\ntest_split: test\n")
    cloze = f"{name}_cloze"
    (out / f"{cloze}.yaml").write_text(
        f"include: {okapi / '_arc_yaml'}\ntask: {cloze}\ntag: []\n" + dataset
        + "process_docs: !function utils.process_docs\n")
    letters = f"{name}_letters"
    (out / f"{letters}.yaml").write_text(
        f"task: {letters}\n" + dataset + "output_type: multiple_choice\n"
        "doc_to_text: !function utils.doc_to_text\ndoc_to_choice: !function utils.doc_to_choice\n"
        "doc_to_target: !function utils.doc_to_target\n"
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    return {"cloze": cloze, "letters": letters}


def harness_lm(hf_dir: Path, *, batch_size: int | str = 1, logits_cache: bool = True):
    """The harness's HF backend on the local model directory (float32, CPU)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(hf_dir), dtype="float32", device="cpu", batch_size=batch_size,
                logits_cache=logits_cache)


_TASK_MANAGERS: dict[str, object] = {}


def task_manager(task_dir: Path):
    """The harness's TaskManager over its tasks plus ours (built once: indexing takes seconds)."""
    from lm_eval.tasks import TaskManager

    key = str(task_dir)
    if key not in _TASK_MANAGERS:
        _TASK_MANAGERS[key] = TaskManager(include_path=key)
    return _TASK_MANAGERS[key]


def run_harness(model, task_dir: Path, task: str, *, batch_size: int | str = 1,
                apply_chat_template: bool = False) -> list[dict]:
    """Per-doc harness results in document order: {lls, acc, acc_norm}.

    `model` is a local HF directory (loaded as `model="hf"`, the harness's own route) or an HFLM.
    """
    import lm_eval

    if isinstance(model, (str, Path)):
        kwargs = {"model": "hf", "model_args": f"pretrained={model},dtype=float32,device=cpu",
                  "batch_size": batch_size}
    else:
        kwargs = {"model": model}
    res = lm_eval.simple_evaluate(
        tasks=[task], task_manager=task_manager(task_dir), log_samples=True,
        apply_chat_template=apply_chat_template, num_fewshot=0, verbosity="WARNING", **kwargs)
    samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
    return [{"lls": [float(r[0]) for r in s["filtered_resps"]], "acc": s["acc"], "acc_norm": s["acc_norm"]}
            for s in samples]


def compare(ours, theirs, choice_texts, tie_tol: float = 1e-4) -> dict:
    """Agreement of per-item predictions (acc: argmax log-likelihood; acc_norm: argmax per
    character of the choice text). A disagreement is a tie when the harness's scores of the two
    choices are within `tie_tol` (float noise)."""
    import numpy as np

    agree = agree_norm = ties = 0
    max_diff = 0.0
    for o, t, texts in zip(ours, theirs, choice_texts, strict=True):
        lls = np.array(t["lls"])
        norm = lls / np.array([float(len(c)) for c in texts])
        pred, pred_norm = int(np.argmax(lls)), int(np.argmax(norm))
        agree += o.pred == pred
        agree_norm += o.pred_norm == pred_norm
        ties += (o.pred != pred and abs(lls[o.pred] - lls[pred]) <= tie_tol) + (
            o.pred_norm != pred_norm and abs(norm[o.pred_norm] - norm[pred_norm]) <= tie_tol)
        max_diff = max(max_diff, float(np.max(np.abs(np.array(o.loglik) - lls))))
    n = len(theirs)
    return {
        "n": n, "pred_agree": agree, "pred_norm_agree": agree_norm, "ties": ties,
        "max_abs_loglik_diff": max_diff,
        "acc_ours": sum(o.correct for o in ours) / n, "acc_harness": sum(t["acc"] for t in theirs) / n,
        "acc_norm_ours": sum(o.correct_norm for o in ours) / n,
        "acc_norm_harness": sum(t["acc_norm"] for t in theirs) / n,
    }
