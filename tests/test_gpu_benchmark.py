"""benchmarks/gpu.py --small: the GPU benchmark's every section runs on CPU at tiny shapes, and its
summary and costs file carry every figure (CI runs this; the GPU run uses the same code)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_small_runs_every_section_and_writes_the_costs_file(tmp_path):
    costs_path = tmp_path / "costs.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TRANSFERGRID_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--small", "--costs", str(costs_path)],
                          check=False, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "== transfergrid GPU benchmark (small, CPU) ==" in out
    assert re.search(r"float32 matmul peak\s+[\d.]+ [GT]FLOP/s", out)
    for model in ("random:llama-3.2-1b?small", "random:llama-3.1-8b?small&layers=3"):
        rows = {line.split()[1] + " " + line.split()[2]: line for line in out.splitlines() if line.startswith(model + " ")}
        assert {"eval cloze", "LoRA train"} <= set(rows), out
        # engine and harness score the same items in float32: every prediction agrees
        assert re.search(r"eval cloze\s+[\d,]+\s+[\d.]+%\s+[\d.]+x\s+6 items, preds agree 6/6", rows["eval cloze"])
        assert len([line for line in out.splitlines() if line.startswith(model + " ") and "LoRA train b=" in line
                    and re.search(r"b=\d+\s+[\d,]+\s+[\d.]+%", line)]) == 2
    assert re.search(r"random:llama-3.2-1b\?small\s+grid eval\s+[\d.]+x\s+2 adapters x 2 x 3 items", out)
    assert "estimate: paper grid (1,188 trainings, 17,424 target cells, 9 models) on 8 GPUs" in out
    assert "not GPU figures" in out

    costs = json.loads(costs_path.read_text())
    assert costs["format"] == "transfergrid-costs/1" and costs["measured"] is False
    assert costs["machine"]["peak_flops"] > 0
    for entry in costs["models"].values():
        assert entry["params"] > 0
        for phase in ("eval", "train"):
            assert entry[phase]["tokens_per_s"] > 0 and entry[phase]["mfu"] > 0
            assert entry[phase]["pairs_per_token"] >= 1 and 0 < entry[phase]["reads_per_token"] < 1
        assert entry["eval"]["vs_harness"] > 0
    est = costs["estimate"]
    assert len(est["models"]) == 9 and est["wall_hours"] == est["gpu_hours"] / 8
