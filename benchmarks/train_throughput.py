"""Training throughput: transfergrid's trainer vs the reference recipe, same run, same data.

Both sides fine-tune the same base model (the bundled SmolLM2-135M-Instruct unless --model says
otherwise) on the same examples of one real cell, with the same LoRA configuration (r=32, alpha=64,
dropout 0 on q,k,v,o,gate,up,down), AdamW lr 5e-5, linear decay after 10% warmup, batch 8, the same
seed, answer-only labels and one validation pass per epoch with the best epoch kept:

- transfergrid: `train.train_adapter` (batches padded to their own longest example, length-grouped;
  the vocabulary projection only on answer positions);
- the reference recipe as published: the Hugging Face `Trainer` with every example padded to the
  fixed max length (512), `eval_strategy="epoch"`, `save_strategy="epoch"`,
  `load_best_model_at_end=True`.

Both are timed end to end (training, validation, checkpointing). Tokens/second counts the real
(unpadded) tokens of the training examples, the same number on both sides, so the speed ratio is the
wall-time ratio. The final validation loss of each side's kept adapter is computed by the same
function on the same validation examples.

    .venv/bin/python benchmarks/train_throughput.py --n 64 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def reference_trainer(model, tokenizer, train_ex, val_ex, spec, seed: int, out: Path) -> tuple[float, object]:
    """The reference pipeline's recipe: HF Trainer, every example padded to spec.max_length."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, default_data_collator

    from transfergrid.train import resolve_target_modules
    from transfergrid.train_examples import IGNORE_INDEX

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def padded(examples):
        rows = []
        for e in examples:
            n = len(e)
            fill = spec.max_length - n
            rows.append({"input_ids": torch.tensor(list(e.input_ids) + [pad] * fill),
                         "attention_mask": torch.tensor([1] * n + [0] * fill),
                         "labels": torch.tensor(list(e.labels) + [IGNORE_INDEX] * fill)})
        return rows

    torch.manual_seed(seed)
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, bias="none",
                        target_modules=resolve_target_modules(model, spec.target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    on_gpu = torch.cuda.is_available()
    steps = spec.epochs * math.ceil(math.ceil(len(train_ex) / spec.batch_size) / spec.grad_accum)
    warmup = math.ceil(spec.warmup_ratio * steps)  # as the Trainer's warmup_ratio: ceil(ratio x steps)
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=spec.batch_size, per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum, num_train_epochs=spec.epochs, learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay, lr_scheduler_type=spec.scheduler, warmup_steps=warmup,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="eval_loss",
        greater_is_better=False, save_total_limit=1, logging_strategy="no", report_to=[], seed=seed, data_seed=seed,
        use_cpu=not on_gpu, bf16=on_gpu, dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = Trainer(model=peft_model, args=args, train_dataset=padded(train_ex), eval_dataset=padded(val_ex),
                      data_collator=default_data_collator)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start, trainer.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--task", default="arc_challenge")
    parser.add_argument("--lang", default="en")
    parser.add_argument("--n", type=int, default=64, help="training items (the first N of the train split)")
    parser.add_argument("--val", type=int, default=16, help="validation items")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--format", default="letters", help="the reference trained on lettered prompts")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch
    import transformers

    from transfergrid.data import load_items, resolve_data_dir
    from transfergrid.models import load_model
    from transfergrid.train import train_adapter
    from transfergrid.train_examples import build_examples
    from transfergrid.train_loop import validation_loss
    from transfergrid.training_config import TrainingSpec

    root = resolve_data_dir()
    train_items = list(load_items(args.task, args.lang, "train", root))[: args.n]
    val_items = list(load_items(args.task, args.lang, "validation", root))[: args.val]
    spec = TrainingSpec(epochs=args.epochs, max_length=args.max_length)
    loaded = load_model(args.model)
    tok = loaded.tokenizer
    train_ex = build_examples(tok, train_items, args.format, max_length=spec.max_length)
    val_ex = build_examples(tok, val_items, args.format, max_length=spec.max_length)
    real_tokens = spec.epochs * sum(len(e) for e in train_ex)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    print(f"{args.model} on {args.task}:{args.lang}: {len(train_ex)} train / {len(val_ex)} validation examples, "
          f"{spec.epochs} epoch(s); example lengths {min(map(len, train_ex))}-{max(map(len, train_ex))} tokens "
          f"(mean {real_tokens / spec.epochs / len(train_ex):.0f}); device {loaded.device}, "
          f"{torch.get_num_threads()} threads", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ours = train_adapter(loaded, train_items, val_items, spec, seed=args.seed, fmt=args.format,
                             out_dir=Path(tmp) / "ours")
        ours_wall = time.perf_counter() - start
        ours_val = ours.val_losses[ours.best_epoch - 1]
        print(f"transfergrid: {ours_wall:.1f} s, {real_tokens / ours_wall:.0f} tokens/s, "
              f"validation loss {ours_val:.4f}", flush=True)

        ref_wall, ref_model = reference_trainer(loaded.model, tok, train_ex, val_ex, spec, args.seed, Path(tmp) / "ref")
        ref_val = validation_loss(ref_model, val_ex, spec.batch_size, pad)
        print(f"reference (HF Trainer, padded to {spec.max_length}): {ref_wall:.1f} s, "
              f"{real_tokens / ref_wall:.0f} tokens/s, validation loss {ref_val:.4f}", flush=True)

    result = {
        "model": args.model, "cell": f"{args.task}:{args.lang}", "n_train": len(train_ex), "n_val": len(val_ex),
        "epochs": spec.epochs, "max_length": spec.max_length, "format": args.format, "real_tokens": real_tokens,
        "padded_tokens_reference": spec.epochs * len(train_ex) * spec.max_length,
        "ours": {"wall_s": ours_wall, "tokens_per_s": real_tokens / ours_wall, "val_loss": ours_val},
        "reference": {"wall_s": ref_wall, "tokens_per_s": real_tokens / ref_wall, "val_loss": ref_val},
        "speedup": ref_wall / ours_wall,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"torch {torch.__version__}, transformers {transformers.__version__}",
    }
    print(f"speedup: {result['speedup']:.2f}x; validation loss ours {ours_val:.4f} vs reference {ref_val:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
