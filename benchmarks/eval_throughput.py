"""Evaluation throughput: transfergrid's scoring engine vs lm-evaluation-harness, same run, same items.

Both sides score the same ARC-Challenge items with the same model (float32, CPU), interleaved in
one process: `cloze` (the harness's own okapi ARC task) and `letters` (a lettered multiple-choice
task; the harness issues one request per letter and, by default, reuses one forward pass for
single-token continuations through its `logits_cache`). Per-item predictions must agree.

The harness is timed twice: end to end (`simple_evaluate` with a pre-loaded model: task building,
requests, scoring) and its log-likelihood phase alone (`HFLM.loglikelihood`), the most generous
comparison. Ours is timed end to end from Items (prompt rendering, tokenisation, scoring).

    .venv/bin/python benchmarks/eval_throughput.py --n 200
    .venv/bin/python benchmarks/eval_throughput.py --n 200 --per-letter   # + harness with logits_cache=False
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    MODEL,
    arc_items,
    compare,
    harness_lm,
    harness_too_old,
    load_model_and_dir,
    run_harness,
    write_harness_tasks,
)


class _Timed:
    """Wraps an HFLM so that the time spent in loglikelihood() is recorded."""

    def __init__(self, lm):
        self.lm, self.seconds = lm, 0.0
        inner = lm.loglikelihood

        def timed(requests, *args, **kwargs):
            t = time.perf_counter()
            try:
                return inner(requests, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        lm.loglikelihood = timed


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--lang", default="es")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--formats", nargs="+", default=["cloze", "letters"])
    ap.add_argument("--harness-batch-size", default="1", help="the harness's batch size (its default: 1)")
    ap.add_argument("--per-letter", action="store_true",
                    help="also time the harness with logits_cache=False (every letter its own forward pass)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("lm_eval", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    import lm_eval

    from transfergrid.prompts import render
    from transfergrid.scoring import score_items

    if (why := harness_too_old()) is not None:
        raise SystemExit(why)
    bs = int(args.harness_batch_size) if args.harness_batch_size.isdigit() else args.harness_batch_size
    model, tok, hf_dir = load_model_and_dir(args.model)
    items = arc_items(args.lang, args.n)
    task_dir = Path(tempfile.mkdtemp(prefix="tg-bench-"))
    tasks = write_harness_tasks(items, task_dir)
    peers = [("harness", harness_lm(hf_dir, batch_size=bs))]
    if args.per_letter:
        peers.append(("harness-per-letter", harness_lm(hf_dir, batch_size=bs, logits_cache=False)))

    # warm-up both sides (first calls allocate and compile kernels)
    score_items(model, tok, items[:4], "cloze")
    run_harness(peers[0][1], task_dir, tasks["cloze"])

    results = {"machine": machine(), "model": args.model, "lang": args.lang, "n": len(items),
               "lm_eval": lm_eval.__version__, "harness_batch_size": bs, "formats": {}}
    for k, fmt in enumerate(args.formats):
        row: dict = {}
        # alternate who goes first, so that drifting load from other processes hits both sides
        order = ["ours", *[p[0] for p in peers]] if k % 2 == 0 else [*[p[0] for p in peers], "ours"]
        for side in order:
            if side == "ours":
                t = time.perf_counter()
                ours = score_items(model, tok, items, fmt)
                row["ours_s"] = time.perf_counter() - t
                continue
            if side == "harness-per-letter" and fmt != "letters":
                continue
            lm = dict(peers)[side]
            timer = _Timed(lm)
            t = time.perf_counter()
            theirs = run_harness(lm, task_dir, tasks[fmt])
            row[f"{side}_s"] = time.perf_counter() - t
            row[f"{side}_loglik_s"] = timer.seconds
            del lm.loglikelihood  # drop the timing wrapper
            if side == "harness":
                harness_result = theirs
        texts = [render(it, fmt).choice_texts for it in items]
        row["agreement"] = compare(ours, harness_result, texts)
        for side in [p[0] for p in peers]:
            if f"{side}_s" in row:
                row[f"speedup_vs_{side}"] = row[f"{side}_s"] / row["ours_s"]
                row[f"speedup_vs_{side}_loglik"] = row[f"{side}_loglik_s"] / row["ours_s"]
        row["items_per_s_ours"] = len(items) / row["ours_s"]
        row["items_per_s_harness"] = len(items) / row["harness_s"]
        results["formats"][fmt] = row

    print(f"machine: {results['machine']}")
    print(f"{args.model}, ARC-Challenge {args.lang}, {len(items)} items, lm-eval {lm_eval.__version__}, "
          f"harness batch size {bs}")
    for fmt, row in results["formats"].items():
        a = row["agreement"]
        print(f"[{fmt}] ours {row['ours_s']:.1f}s ({row['items_per_s_ours']:.2f} items/s) | harness "
              f"{row['harness_s']:.1f}s end-to-end, {row['harness_loglik_s']:.1f}s log-likelihood phase")
        print(f"[{fmt}] speedup: {row['speedup_vs_harness']:.2f}x end-to-end, "
              f"{row['speedup_vs_harness_loglik']:.2f}x vs the log-likelihood phase alone")
        if "harness-per-letter_s" in row:
            print(f"[{fmt}] vs harness without logits_cache (one forward per letter): "
                  f"{row['speedup_vs_harness-per-letter']:.2f}x end-to-end, "
                  f"{row['speedup_vs_harness-per-letter_loglik']:.2f}x log-likelihood phase")
        print(f"[{fmt}] predictions: acc {a['pred_agree']}/{a['n']} agree, acc_norm {a['pred_norm_agree']}/{a['n']} "
              f"agree ({a['ties']} float ties); max |Δ loglik| {a['max_abs_loglik_diff']:.2e}; "
              f"acc {a['acc_ours']:.4f} vs {a['acc_harness']:.4f}, "
              f"acc_norm {a['acc_norm_ours']:.4f} vs {a['acc_norm_harness']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
