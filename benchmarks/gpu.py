"""GPU benchmark: evaluation and LoRA training speed and MFU at the paper's sizes, against
lm-evaluation-harness's HF backend and the reference pipeline, in one run of at most 8 minutes.

For random:llama-3.2-1b and random:llama-3.1-8b (real shapes, random weights: speed does not need
trained weights) in bf16 it measures, in one process:

- the GPU's bf16 matmul peak (a large square matmul), the denominator of every MFU figure;
- evaluation: transfergrid's engine on cloze ARC-style items (tokens/s, MFU) and the harness's HF
  backend (`HFLM` around the same model object, its own okapi ARC task) on the same items: ratio;
- LoRA training (reference recipe: r=32 on q,k,v,o,gate,up,down) at the recipe's batch of 8 and at a
  large batch: tokens/s and MFU;
- grid evaluation on the first model: K adapters switched in place on one base load vs, per
  adapter, load + merge + save + harness (benchmarks/grid_eval.py on CPU does the same at 135M);
- a costs file (JSON, `--costs`) that `transfergrid plan` can read, and from it an estimate of the
  paper's whole grid on `--gpus` GPUs.

Model FLOPs: 2 per decoder weight per token, 4 x head_dim per (query, key) pair per head and layer,
and the vocabulary projection where log-probabilities are read; training (frozen base) adds the
backward to the activations: once more the matmuls, twice the attention. Padding is not counted.
Items are synthetic ARC-like questions (`--data-dir` is not needed; nothing is fetched).

    python benchmarks/gpu.py                      # on a GPU (about 6 minutes on an H100/H200)
    python benchmarks/gpu.py --small              # tiny shapes on CPU in seconds (CI runs this)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")  # the harness's and datasets' progress bars

from benchmarks._common import run_harness, task_manager, write_harness_tasks
from transfergrid.costs import (
    COSTS_FORMAT,  # `transfergrid plan --costs` reads this file
)

MODELS = ["random:llama-3.2-1b", "random:llama-3.1-8b"]
SMALL_MODELS = ["random:llama-3.2-1b?small", "random:llama-3.1-8b?small&layers=3"]
WORDS = ["energy", "water", "plant", "animal", "light", "heat", "sound", "force", "motion", "earth", "rock", "soil", "cloud", "rain", "river", "ocean", "cell", "body", "blood", "bone", "muscle", "food", "chemical", "metal", "gas", "liquid", "solid", "change", "measure", "observe", "student", "experiment", "result", "increase", "decrease", "temperature", "pressure", "surface", "layer", "mass", "weight", "volume", "speed", "which", "what", "most", "likely", "because", "during", "after", "before", "between", "small", "large", "many"]
# The paper's grid (MISSION.md): 9 models x 44 source cells x 3 seeds; 44 target cells of 400 items;
# train splits of 300 items (Global-MMLU 215), 90% train / 10% validation, 3 epochs.
PAPER = {"sources": 44, "targets": 44, "seeds": 3, "test_items": 400, "epochs": 3,
         "train_items": (300 + 215 + 300 + 300) / 4, "train_fraction": 0.9}
# Tokens per cloze item (context once + choices) and per training example, SmolLM2's tokenizer, the
# first 100 items of each local cell (/work/shared/data, all 11 languages where present): ARC
# 151 / 99, Global-MMLU-Lite (en, id, zh) 158 / 146, TruthfulQA 362 / 250 (its 6-shot primer
# included, although evaluation encodes it once per cell); HellaSwag is not in the local data:
# assumed 250 / 150. The paper's tokenizers (vocabularies of 128k-262k) need fewer tokens.
PAPER_TOKENS = {"eval_per_item": 230, "train_per_example": 160}


class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise SectionTimeout in the block after `seconds` (SIGALRM; the main thread)."""
    def alarm(signum, frame):
        raise SectionTimeout(f"over its {seconds:.0f} s budget")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def synthetic_items(n: int, seed: int, prefix: str):
    from transfergrid.records import Item

    rng = random.Random(seed)

    def words(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [Item(f"{prefix}{i}", "arc_challenge", "en", words(20, 45).capitalize() + "?",
                 tuple(words(2, 8) for _ in range(4)), rng.randrange(4)) for i in range(n)]


def measure_peak(device: str, dtype, n: int, seconds: float = 2.0) -> float:
    """Achieved FLOP/s of an n x n x n matmul in `dtype`: the GPU's practical peak."""
    import torch

    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    k, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or k < 3:
        a @ b
        k += 1
        if k % 10 == 0:
            sync(device)
    sync(device)
    return 2.0 * n**3 * k / (time.perf_counter() - start)


def eval_work(tokenizer, items) -> dict:
    """Tokens run by our engine (context once, each choice minus its last token), attention pairs
    and read positions of the cloze items."""
    from transfergrid.encoding import encode_prompts
    from transfergrid.prompts import render

    tokens = pairs = reads = 0
    for e in encode_prompts(tokenizer, [render(it, "cloze") for it in items]):
        n = len(e.context)
        tokens, pairs = tokens + n, pairs + n * (n + 1) // 2
        for c in e.continuations:
            m = len(c) - 1
            tokens, pairs, reads = tokens + m, pairs + m * n + m * (m + 1) // 2, reads + len(c)
    return {"tokens": tokens, "pairs": pairs, "reads": reads}


def train_work(tokenizer, items, max_length: int) -> dict:
    from transfergrid.train_examples import IGNORE_INDEX, build_examples

    ex = build_examples(tokenizer, items, "cloze", max_length=max_length)
    return {"tokens": sum(len(e) for e in ex), "pairs": sum(len(e) * (len(e) + 1) // 2 for e in ex),
            "reads": sum(sum(1 for t in e.labels if t != IGNORE_INDEX) for e in ex)}


def flops(arch, work: dict, training: bool = False) -> float:
    forward = arch.forward_flops(work["tokens"], work["pairs"], work["reads"])
    return 2 * forward + arch.forward_flops(0, work["pairs"], 0) if training else forward


def harness_missing() -> str | None:
    """Why lm-evaluation-harness cannot run here (None: it can). Without it the peer rows are n/a."""
    try:
        import lm_eval.models.huggingface  # noqa: F401 - also imports datasets, which it needs
    except Exception as exc:  # noqa: BLE001 - any import failure means no peer
        return f"{type(exc).__name__}: {exc}"[:100]
    from benchmarks._common import harness_too_old

    return harness_too_old()


def bench_eval(loaded, items, tasks, args, arch, peak) -> dict:
    from benchmarks._common import compare
    from transfergrid.prompts import render
    from transfergrid.scoring import score_items

    model, tok, dev = loaded.model, loaded.tokenizer, loaded.device
    score_items(model, tok, items[:8], "cloze")  # warm-up: kernels, allocator
    runs = []
    for _ in range(args.repeats):
        sync(dev)
        t = time.perf_counter()
        ours = score_items(model, tok, items, "cloze")
        sync(dev)
        runs.append(time.perf_counter() - t)
    ours_s = sorted(runs)[len(runs) // 2]
    work = eval_work(tok, items)
    result = {"items": len(items), "tokens": work["tokens"], "seconds": ours_s, "tokens_per_s": work["tokens"] / ours_s,
              "items_per_s": len(items) / ours_s, "mfu": flops(arch, work) / ours_s / peak,
              "pairs_per_token": work["pairs"] / work["tokens"], "reads_per_token": work["reads"] / work["tokens"],
              "harness_seconds": None, "vs_harness": None, "agree": None}
    if args.no_harness:
        return result
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=args.harness_batch_size)
    sync(dev)
    t = time.perf_counter()
    theirs = run_harness(lm, args.task_dir, tasks)
    sync(dev)
    harness_s = time.perf_counter() - t
    agree = compare(ours, theirs, [render(it, "cloze").choice_texts for it in items])
    result.update(harness_seconds=harness_s, vs_harness=harness_s / ours_s, agree=f"{agree['pred_agree']}/{agree['n']}")
    return result


def bench_train(loaded, items, batch: int, arch, peak, work_dir: Path) -> dict:
    from transfergrid.train import train_adapter
    from transfergrid.training_config import TrainingSpec

    spec = TrainingSpec(epochs=1, batch_size=batch)  # the reference recipe, one epoch
    train_adapter(loaded, items[:batch * 2], [], spec, seed=0, fmt="cloze", out_dir=work_dir / "warm")
    result = train_adapter(loaded, items, [], spec, seed=0, fmt="cloze", out_dir=work_dir / f"b{batch}")
    seconds = result.train_tokens / result.tokens_per_second
    work = train_work(loaded.tokenizer, items, spec.max_length)
    return {"batch": batch, "examples": len(items), "steps": result.steps, "tokens": result.train_tokens,
            "seconds": seconds, "tokens_per_s": result.tokens_per_second,
            "mfu": flops(arch, work, training=True) / seconds / peak,
            "pairs_per_token": work["pairs"] / work["tokens"], "reads_per_token": work["reads"] / work["tokens"]}


def random_adapters(loaded, k: int, out: Path) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from transfergrid.training_config import REFERENCE_TARGET_MODULES

    paths = []
    for i in range(k):
        torch.manual_seed(1000 + i)
        config = LoraConfig(r=32, lora_alpha=64, target_modules=REFERENCE_TARGET_MODULES, init_lora_weights=False)
        peft = get_peft_model(loaded.model, config)
        with torch.no_grad():  # a perturbation of the base model, as after training
            for name, p in peft.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.05)
        paths.append(out / f"adapter-{i}")
        peft.save_pretrained(paths[-1])
        peft.unload()
    return paths


def bench_grid(loaded, cells: dict, args, work_dir: Path) -> dict:
    """Ours: one base load from disk, adapters switched in place; reference: per adapter load,
    merge, save the merged model, harness from that directory on every cell."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from transfergrid.adapters import AdapterSet
    from transfergrid.models import load_model
    from transfergrid.scoring import score_variants

    base_dir = work_dir / "base"
    loaded.model.save_pretrained(base_dir)
    loaded.tokenizer.save_pretrained(base_dir)
    adapters = random_adapters(loaded, args.adapters, work_dir)
    sync(loaded.device)
    t = time.perf_counter()
    ours_base = load_model(str(base_dir), device=loaded.device, dtype=loaded.dtype)
    aset = AdapterSet(ours_base)
    for i, path in enumerate(adapters):
        aset.add(f"a{i}", path)
        for items in cells.values():
            score_variants(aset, ours_base.tokenizer, [f"a{i}"], items, "cloze")
        aset.remove(f"a{i}")
    sync(loaded.device)
    ours_s = time.perf_counter() - t
    del aset, ours_base
    result = {"adapters": len(adapters), "cells": len(cells), "items": sum(len(v) for v in cells.values()),
              "seconds": ours_s, "reference_seconds": None, "ratio": None}
    if args.no_harness:
        return result
    from lm_eval.models.huggingface import HFLM

    t = time.perf_counter()
    for path in adapters:
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=loaded.dtype).to(loaded.device)
        merged = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
        merged.save_pretrained(work_dir / "merged")
        loaded.tokenizer.save_pretrained(work_dir / "merged")
        del base, merged
        lm = HFLM(pretrained=str(work_dir / "merged"), device=loaded.device, batch_size=args.harness_batch_size,
                  dtype=str(loaded.dtype).removeprefix("torch."))
        for task in cells:
            run_harness(lm, args.task_dir, task)
        del lm
        shutil.rmtree(work_dir / "merged")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    sync(loaded.device)
    ref_s = time.perf_counter() - t
    result.update(reference_seconds=ref_s, ratio=ref_s / ours_s)
    return result


# --- costs and the paper-grid estimate -------------------------------------------------------------


def estimate(costs: dict, gpus: int, eval_tokens_per_item: float, train_tokens_per_example: float,
             load_s: float = 60.0) -> dict:
    """GPU hours of the paper's grid from the measured MFU (nearest measured size per model)."""
    from transfergrid.architectures import ARCHITECTURES, describe_config
    from transfergrid.models import model_config

    measured = [m for m in costs["models"].values() if m.get("eval") and m.get("train")]
    if not measured:
        return {}
    peak = costs["machine"]["peak_flops"]
    p = PAPER
    train_examples = p["train_items"] * p["train_fraction"]
    rows, total = {}, 0.0
    for name in ARCHITECTURES:
        arch = describe_config(model_config(f"random:{name}"))
        near = min(measured, key=lambda m: abs(math.log(m["params"] / arch.params)))
        ev, tr = near["eval"], near["train"]
        trainings = p["sources"] * p["seeds"]
        train_tokens = trainings * p["epochs"] * train_examples * train_tokens_per_example
        eval_tokens = (1 + trainings) * p["targets"] * p["test_items"] * eval_tokens_per_item
        train_s = train_tokens * arch.token_flops(tr["pairs_per_token"], tr["reads_per_token"], True) / (peak * tr["mfu"])
        eval_s = eval_tokens * arch.token_flops(ev["pairs_per_token"], ev["reads_per_token"]) / (peak * ev["mfu"])
        hours = (train_s + eval_s + gpus * load_s) / 3600
        rows[name] = {"train_gpu_h": train_s / 3600, "eval_gpu_h": eval_s / 3600, "gpu_h": hours,
                      "mfu_from": near["source"]}
        total += hours
    return {"gpus": gpus, "trainings": 9 * p["sources"] * p["seeds"], "target_cells": 9 * p["sources"] * p["targets"],
            "eval_tokens_per_item": eval_tokens_per_item, "train_tokens_per_example": train_tokens_per_example,
            "models": rows, "gpu_hours": total, "wall_hours": total / gpus}


def ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def seconds(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f} s"


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny shapes on CPU in float32, a few items (CI)")
    ap.add_argument("--models", nargs="+", help="model sources (default: the 1B and the 8B Llama)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="the whole run's time budget")
    ap.add_argument("--gpus", type=int, default=8, help="GPUs for the paper-grid estimate")
    ap.add_argument("--costs", type=Path, default=Path(tempfile.gettempdir()) / "transfergrid-gpu-costs.json")
    ap.add_argument("--harness-batch-size", default=None, help="the harness's batch size (default 64 GPU, 8 CPU)")
    ap.add_argument("--eval-tokens-per-item", type=float, default=PAPER_TOKENS["eval_per_item"],
                    help="for the paper-grid estimate")
    ap.add_argument("--train-tokens-per-example", type=float, default=PAPER_TOKENS["train_per_example"],
                    help="for the paper-grid estimate")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("lm_eval", "transformers", "peft", "datasets", "transfergrid"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import torch
    import transformers

    from transfergrid import devices
    from transfergrid.architectures import describe_config
    from transfergrid.models import load_model

    started = time.perf_counter()
    device, dtype = ("cpu", torch.float32) if args.small else devices.choose()
    devices.configure(device)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    sources = args.models or (SMALL_MODELS if args.small else MODELS)
    hbs = args.harness_batch_size or (8 if args.small else 64)
    args.harness_batch_size = int(hbs) if str(hbs).isdigit() else hbs
    n_eval = [6, 6] if args.small else [1000, 500]
    n_train = [16, 16] if args.small else [512, 256]
    big_batch = 16 if args.small else 64
    args.repeats, args.adapters = (1, 2) if args.small else (3, 4)
    grid_items = 3 if args.small else 200
    # per-section budgets (s): peak, then per model load / eval / train, and the grid
    share = {"peak": 10, "load": 40, "eval": 90, "train": 80, "grid": 120} if not args.small else \
        {"peak": 5, "load": 60, "eval": 120, "train": 120, "grid": 120}

    work = Path(tempfile.mkdtemp(prefix="tg-gpu-bench-"))
    rows: list[tuple] = []
    costs: dict = {"format": COSTS_FORMAT, "measured": device.startswith("cuda") and not args.small,
                   "machine": {"device": gpu, "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
                               "transformers": transformers.__version__}, "models": {}}

    def remaining(section: str) -> float:
        return min(share[section], args.budget_s - (time.perf_counter() - started))

    try:
        # every harness task is written before the harness indexes its task directory (once)
        eval_items = [synthetic_items(n, 10 + i, f"e{i}-") for i, n in enumerate(n_eval)]
        train_items = [synthetic_items(n, 20 + i, f"t{i}-") for i, n in enumerate(n_train)]
        grid_cells = {f"tg_grid{c}_cloze": synthetic_items(grid_items, 30 + c, f"g{c}-") for c in range(3 - args.small)}
        args.task_dir = work / "tasks"
        args.task_dir.mkdir()
        named = {f"tg_eval{i}": items for i, items in enumerate(eval_items)}
        named.update({k.removesuffix("_cloze"): v for k, v in grid_cells.items()})
        args.no_harness = harness_missing()
        if args.no_harness:
            rows.append(("-", "lm-evaluation-harness", "", "", "", (f"not importable ({args.no_harness}): "
                         "peer ratios are n/a; see docs/benchmarks.md for the wheels")))
        else:
            for name, items in named.items():
                write_harness_tasks(items, work / name, name=name)
                shutil.copy(work / name / f"{name}_cloze.yaml", args.task_dir)
                shutil.copy(work / name / "utils.py", args.task_dir / "utils.py")
            task_manager(args.task_dir)

        def attempt(source: str, label: str, seconds: float, fn):
            """fn() within `seconds`; a timeout or an error becomes a row, and the run goes on."""
            if seconds <= 1:
                rows.append((source, label, "", "", "", "skipped: the run's time budget is spent"))
                return None
            try:
                with time_limit(seconds):
                    return fn()
            except SectionTimeout as exc:
                rows.append((source, label, "", "", "", f"stopped: {exc}"))
            except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
                traceback.print_exc()
                rows.append((source, label, "", "", "", f"failed: {type(exc).__name__}: {str(exc)[:80]}"))
            return None

        peak = attempt("-", "matmul peak", share["peak"],
                       lambda: measure_peak(device, dtype, 1024 if args.small else 8192, 1.0 if args.small else 2.0))
        if peak is None:
            raise SystemExit("could not measure the matmul peak")
        costs["machine"]["peak_flops"] = peak
        rows.append(("-", f"{str(dtype).removeprefix('torch.')} matmul peak", f"{peak / 1e12:.1f} TFLOP/s" if peak > 1e12
                     else f"{peak / 1e9:.1f} GFLOP/s", "", "", "measured in this run"))

        for k, source in enumerate(sources):
            entry: dict = {"source": source}
            costs["models"][source] = entry
            loaded = attempt(source, "load", remaining("load"), partial(load_model, source, device=device, dtype=dtype))
            if loaded is None:
                continue
            arch = describe_config(loaded.model.config)
            entry["params"] = arch.params
            r = attempt(source, "eval cloze", remaining("eval"),
                        partial(bench_eval, loaded, eval_items[k % 2], f"tg_eval{k % 2}_cloze", args, arch, peak))
            if r:
                entry["eval"] = r
                rows.append((source, "eval cloze", f"{r['tokens_per_s']:,.0f}", f"{100 * r['mfu']:.1f}%",
                             ratio(r["vs_harness"]), (f"{r['items']} items, preds agree {r['agree']} "
                             f"(harness {seconds(r['harness_seconds'])}, ours {r['seconds']:.2f} s)")))
            for batch in (8, big_batch):
                label = f"LoRA train b={batch}"
                r = attempt(source, label, remaining("train") / 2,
                            partial(bench_train, loaded, train_items[k % 2], batch, arch, peak, work))
                if r:
                    entry["train" if batch == 8 else "train_large"] = r
                    rows.append((source, label, f"{r['tokens_per_s']:,.0f}", f"{100 * r['mfu']:.1f}%", "",
                                 f"{r['steps']} steps, {r['tokens']:,} tokens"
                                 + ("" if batch == 8 else " (not the recipe's batch)")))
            if k == 0:
                r = attempt(source, "grid eval", remaining("grid"), partial(bench_grid, loaded, grid_cells, args, work))
                if r:
                    entry["grid"] = r
                    rows.append((source, "grid eval", "", "", ratio(r["ratio"]),
                                 (f"{r['adapters']} adapters x {r['cells']} x {r['items'] // r['cells']} items; ours "
                                  f"{r['seconds']:.1f} s, merge+save+harness {seconds(r['reference_seconds'])}")))
            loaded = None  # free it before the next model
            devices.release_memory()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    measured = [m for m in costs["models"].values() if "eval" in m and "train" in m]
    if measured:
        costs["estimate"] = estimate(costs, args.gpus, args.eval_tokens_per_item, args.train_tokens_per_example)
    args.costs.parent.mkdir(parents=True, exist_ok=True)
    args.costs.write_text(json.dumps(costs, indent=1))

    print(f"== transfergrid GPU benchmark ({'small, CPU' if args.small else device}) ==")
    print(f"machine: {gpu}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{str(dtype).removeprefix('torch.')}, harness batch size {args.harness_batch_size}")
    header = ("model", "section", "tokens/s", "MFU", "vs peer", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    est = costs.get("estimate") or {}
    if est:
        print(f"estimate: paper grid ({est['trainings']:,} trainings, {est['target_cells']:,} target cells, "
              f"9 models) on {est['gpus']} GPUs: {est['wall_hours']:.1f} h wall, {est['gpu_hours']:.1f} GPU h "
              f"(assumes {est['eval_tokens_per_item']:.0f} eval tokens/item, {est['train_tokens_per_example']:.0f} "
              f"train tokens/example; target: < 24 h on 8 GPUs)"
              + (" [from tiny CPU shapes: meaningless]" if args.small else ""))
    print(f"costs: {args.costs}")
    print(f"total: {time.perf_counter() - started:.0f} s" + ("" if costs["measured"] else
                                                            " (not GPU figures: nothing here is a GPU measurement)"))
    return costs


if __name__ == "__main__":
    main()
