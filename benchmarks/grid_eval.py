"""Grid evaluation: K adapters on M target cells, transfergrid's runner way vs the reference pipeline's.

- transfergrid: the base model is loaded once; each adapter is added to an `AdapterSet`, switched
  in place, scored on every target cell by the scoring engine, and removed.
- reference (the "Donors and Recipients" pipeline): for each adapter, load the base model, apply the
  adapter, `merge_and_unload()`, save the full merged model, then run lm-evaluation-harness on all
  target cells from that directory (the harness loads the model once per adapter).

Same model, adapters and items on both sides, in one process; both sides are timed end to end
(model loading included). The adapters are random LoRA adapters (r = 32 on the reference target
modules, non-zero B so they change the scores): their quality does not matter for speed. Per-item
predictions of the two sides must agree.

    .venv/bin/python benchmarks/grid_eval.py --adapters 6 --langs en,es,zh --n 10
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    CACHE,
    MODEL,
    arc_items,
    compare,
    harness_lm,
    load_model_and_dir,
    run_harness,
    write_harness_tasks,
)


def make_adapters(hf_dir: Path, k: int, out: Path) -> list[Path]:
    """K random LoRA adapters on the reference recipe's modules (r=32, alpha=64)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from transfergrid.training_config import REFERENCE_TARGET_MODULES

    paths = []
    for i in range(k):
        torch.manual_seed(1000 + i)
        base = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        config = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.0, target_modules=REFERENCE_TARGET_MODULES,
                            init_lora_weights=False, task_type="CAUSAL_LM")
        model = get_peft_model(base, config)
        with torch.no_grad():  # random B scaled down: a perturbation of the base model, as after training
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.05)
        path = out / f"adapter-{i}"
        model.save_pretrained(path)
        paths.append(path)
    return paths


class Ours:
    """transfergrid's way: one base load (timed once), then per adapter add / score / remove."""

    def __init__(self):
        from transfergrid.adapters import AdapterSet
        from transfergrid.models import load_model

        start = time.perf_counter()
        self.loaded = load_model(MODEL, device="cpu", dtype="float32")
        self.aset = AdapterSet(self.loaded)
        self.seconds = time.perf_counter() - start

    def adapter(self, i: int, path: Path, cells: dict[str, list]) -> dict:
        from transfergrid.scoring import score_variants

        start = time.perf_counter()
        name = f"a{i}"
        self.aset.add(name, path)
        scores = {lang: score_variants(self.aset, self.loaded.tokenizer, [name], items, "cloze")[name]
                  for lang, items in cells.items()}
        self.aset.remove(name)
        self.seconds += time.perf_counter() - start
        return scores


def reference_adapter(i: int, path: Path, hf_dir: Path, task_dir: Path, tasks: dict[str, str], work: Path):
    """The reference pipeline for one adapter: load, merge, save the full model, lm-eval all targets."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    out = work / f"merged-{i}"
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(hf_dir).save_pretrained(out)
    del base, merged
    lm = harness_lm(out)
    results = {lang: run_harness(lm, task_dir, task) for lang, task in tasks.items()}
    del lm
    shutil.rmtree(out)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=6)
    parser.add_argument("--langs", default="en,es,zh", help="ARC-Challenge target languages")
    parser.add_argument("--n", type=int, default=10, help="items per target cell")
    args = parser.parse_args()

    import torch

    langs = args.langs.split(",")
    _, _, hf_dir = load_model_and_dir(MODEL)
    cells = {lang: arc_items(lang, args.n) for lang in langs}
    work = Path(tempfile.mkdtemp(dir=CACHE, prefix="grid-eval-"))
    try:
        adapters = make_adapters(hf_dir, args.adapters, work)
        tasks = {}
        for lang, items in cells.items():
            task = write_harness_tasks(items, work / f"tasks-{lang}", name=f"tg_grid_{lang}")["cloze"]
            tasks[lang] = task
        # one task directory holding every cell's task
        task_dir = work / "tasks"
        task_dir.mkdir()
        for lang in langs:
            for f in (work / f"tasks-{lang}").glob("*.yaml"):
                shutil.copy(f, task_dir / f.name)
            shutil.copy(work / f"tasks-{lang}" / "utils.py", task_dir / "utils.py")
        # interleaved per adapter, so that load from other processes hits both sides alike
        ours = Ours()
        s_ours, s_ref, t_ref = {}, {}, 0.0
        for i, path in enumerate(adapters):
            for lang, scores in ours.adapter(i, path, cells).items():
                s_ours[(i, lang)] = scores
            seconds, results = reference_adapter(i, path, hf_dir, task_dir, tasks, work)
            t_ref += seconds
            for lang, res in results.items():
                s_ref[(i, lang)] = res
        t_ours = ours.seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)

    from transfergrid.prompts import render

    agree = agree_norm = total = 0
    for key, theirs in s_ref.items():
        items = cells[key[1]]
        c = compare(s_ours[key], theirs, [render(it, "cloze").choice_texts for it in items])
        agree, agree_norm, total = agree + c["pred_agree"], agree_norm + c["pred_norm_agree"], total + c["n"]
    n_evals = args.adapters * len(langs) * args.n
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{args.adapters} adapters x {len(langs)} target cells ({','.join(langs)}) x {args.n} items "
          f"= {n_evals} item evaluations, {MODEL}, cloze")
    print(f"transfergrid (one base load, adapters switched in place): {t_ours:.1f} s")
    print(f"reference (merge + save + lm-eval per adapter):           {t_ref:.1f} s")
    print(f"speedup: {t_ref / t_ours:.1f}x")
    print(f"agreement: acc {agree}/{total}, acc_norm {agree_norm}/{total}")


if __name__ == "__main__":
    main()
