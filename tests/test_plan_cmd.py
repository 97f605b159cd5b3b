"""transfergrid plan / run --dry-run: job, cell, item and token counts, the compute estimate, the
offline fallbacks, and that planning writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfergrid.cli import main
from transfergrid.costs import CostModel
from transfergrid.prompts import render
from transfergrid.study import load_study
from transfergrid.testing import tiny_tokenizer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "okapi").is_dir(), reason="../shared/data is not here")

STUDY = """
name = "p"
output_dir = "{out}"
seeds = [1]

[[models]]
id = "tiny"
source = "tiny:seed=0"

[grid]
tasks = ["arc_challenge"]
languages = ["en", "es"]
{extra}
[splits]
train = 10
test = 5
"""


def _plan(tmp_path, capsys, *args, extra=""):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(out=tmp_path / "out", extra=extra), encoding="utf-8")
    capsys.readouterr()
    main(["plan", str(path), "--data-dir", str(DATA), "--json", *args])
    return json.loads(capsys.readouterr().out), path


def test_plan_counts_items_and_tokens_and_writes_nothing(tmp_path, capsys):
    report, path = _plan(tmp_path, capsys)
    c = report["counts"]
    assert (c["trainings"], c["evaluation jobs"], c["cell evaluations"], c["result cells"]) == (2, 3, 6, 4)
    (row,) = report["models"]
    assert row["tokens_by"] == "tokenizer"
    assert row["train_items_per_job"] == 10 and row["eval_items_per_job"] == 10
    # the tokens of an evaluation job are its items' contexts and continuations, by the model's tokenizer
    from transfergrid.data import StudyData
    from transfergrid.records import Cell

    study = load_study(path)
    data = StudyData(study, DATA)
    items = [i for lang in ("en", "es") for i in data.items(Cell("arc_challenge", lang), "test")]
    tok = tiny_tokenizer()
    expected = 0
    for it in items:  # context once plus every continuation, no special tokens
        p = render(it, "cloze")
        expected += sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in (p.context, *p.continuations))
    assert row["eval_tokens_per_job"] == pytest.approx(expected)
    assert report["compute_s"] is None
    assert not (tmp_path / "out").exists()


def test_plan_compute_from_given_throughput(tmp_path, capsys):
    report, _ = _plan(tmp_path, capsys, "--train-tokens-per-s", "100", "--eval-tokens-per-s", "1000", "--gpus", "2")
    t = report["tokens"]
    # training tokens at 100/s at most (validation is forward only, at 1000/s); scored tokens at 1000/s
    assert t["eval"] / 1000 + t["train"] / 1000 < report["compute_s"] < t["eval"] / 1000 + t["train"] / 100
    assert report["wall_s"] == pytest.approx(report["compute_s"] / 2)


def test_cost_model_scales_with_model_size():
    cost = CostModel.from_throughput(1000, 4000, 1.0, "given")
    assert cost.train_seconds(1000, 8.0) == pytest.approx(8.0)
    assert cost.eval_seconds(4000, 0.5) == pytest.approx(0.5)
    flops = CostModel.from_flops(4e14)
    assert flops.train_seconds(1e6, 1.0) == pytest.approx(4e9 * 1e6 / 4e14)


def test_cost_model_from_the_gpu_benchmarks_costs_file(tmp_path, capsys):
    """`plan --costs` reads benchmarks/gpu.py's file: seconds per token per B params, averaged over models."""
    costs = {"format": "transfergrid-costs/1", "measured": True, "machine": {"device": "NVIDIA H200"},
             "models": {"a": {"params": 1e9, "train": {"tokens_per_s": 1000.0}, "eval": {"tokens_per_s": 4000.0}},
                        "b": {"params": 8e9, "train": {"tokens_per_s": 250.0}, "eval": {"tokens_per_s": 500.0}},
                        "c": {"params": 3e9, "eval": {"tokens_per_s": 1.0}}}}  # no training row: left out
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(costs))
    cost = CostModel.from_costs_file(path, gpus=8)
    assert cost.train_s_per_token_b == pytest.approx((1 / 1000 + 1 / 2000) / 2)
    assert cost.eval_s_per_token_b == pytest.approx((1 / 4000 + 1 / 4000) / 2)
    assert cost.gpus == 8 and "2 model(s) on NVIDIA H200 (measured)" in cost.basis
    report, study = _plan(tmp_path, capsys, "--costs", str(path))
    assert report["compute_s"] > 0 and "costs file" in report["cost_basis"]
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(SystemExit) as info:
        main(["plan", str(study), "--data-dir", str(DATA), "--costs", str(path)])
    assert info.value.code == 2 and "transfergrid-costs/1" in capsys.readouterr().err


def test_plan_offline_source_falls_back_and_says_so(tmp_path, capsys):
    report, _ = _plan(tmp_path, capsys, extra='[data.sources]\narc_challenge = "no-such-copy"\n')
    assert any(k.startswith("arc_challenge (no-such-copy)") for k in report["unchecked"])
    (row,) = report["models"]
    assert row["train_items_per_job"] == 10 and row["eval_items_per_job"] == 10  # from the split sizes
    assert row["eval_tokens_per_job"] > 0
    assert any("local copy" in n for n in report["notes"])


def test_run_dry_run_is_the_plan(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(STUDY.format(out=tmp_path / "out", extra=""), encoding="utf-8")
    capsys.readouterr()
    main(["run", str(path), "--data-dir", str(DATA), "--dry-run"])
    out = capsys.readouterr().out
    assert "2 trainings; 3 evaluation jobs" in out and "tiny" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not (DATA / "dnr_manifests").is_dir(), reason="no reference manifests here")
def test_the_papers_grid_plans_offline_from_the_manifests(tmp_path, capsys):
    sources = "".join(f'{t} = "{tmp_path}/absent"\n' for t in
                      ("arc_challenge", "global_mmlu_lite", "hellaswag", "truthfulqa_mc1"))
    path = tmp_path / "dr.toml"
    path.write_text(f'name = "dr"\nprofile = "donors-recipients"\noutput_dir = "{tmp_path}/out"\n'
                    f"[data.sources]\n{sources}", encoding="utf-8")
    capsys.readouterr()
    main(["plan", str(path), "--data-dir", str(DATA), "--json"])
    report = json.loads(capsys.readouterr().out)
    c = report["counts"]
    assert (c["trainings"], c["evaluation jobs"], c["result cells"]) == (1188, 1197, 17424)
    assert c["cell evaluations"] == 1197 * 44
    rows = {r["model"]: r for r in report["models"]}
    assert len(rows) == 9 and "Qwen2.5-3B-Instruct" in rows
    # 3 tasks x 300 train ids + Global-MMLU's 215, over 4 source tasks; 44 cells x 400 test ids
    assert rows["gemma-3-1b-it"]["train_items_per_job"] == pytest.approx((3 * 300 + 215) / 4)
    assert rows["gemma-3-1b-it"]["eval_items_per_job"] == 44 * 400
    # reference encoding: every training example is padded to its task's length (256/512/512/128)
    per_epoch = (300 * (256 + 512 + 128) + 215 * 512) / 4
    assert rows["gemma-3-1b-it"]["train_tokens_per_job"] == pytest.approx(3 * per_epoch)
    assert len(report["unchecked"]) >= 4
