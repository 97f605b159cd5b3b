"""Bring your own runs (ingest.py, analysis/completeness.py, `transfergrid import`): lm-evaluation-harness
folders written in the harness's own layout, per-seed CSVs, the completeness check, and the round trip
through `transfergrid analyze`. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import transfergrid.cli.commands  # noqa: F401  (registers the commands on the app)
from transfergrid.analysis.completeness import describe_missing, missing_entries
from transfergrid.cli import main
from transfergrid.cli.app import app
from transfergrid.ingest import (
    aggregate_seeds,
    read_harness_json,
    read_harness_runs,
    read_seed_csv,
)

runner = CliRunner()
MODEL = "Qwen2.5-0.5B-Instruct"
# Per seed {harness task: (acc, acc_norm or None)}; truthfulqa and global_mmlu have acc only.
BASE = {17: {"arc_de": (0.50, 0.55), "arc_fr": (0.30, 0.35), "truthfulqa_de_mc1": (0.25, None),
             "global_mmlu_de": (0.50, None)},
        42: {"arc_de": (0.50, 0.55), "arc_fr": (0.32, 0.36), "truthfulqa_de_mc1": (0.27, None),
             "global_mmlu_de": (0.50, None)}}
FT = {17: {"arc_de": (0.60, 0.65), "arc_fr": (0.40, 0.45), "truthfulqa_de_mc1": (0.30, None),
           "global_mmlu_de": (0.55, None)},
      42: {"arc_de": (0.60, 0.65), "arc_fr": (0.36, 0.42), "truthfulqa_de_mc1": (0.30, None),
           "global_mmlu_de": (0.53, None)}}


def harness_results(scores: dict, model_args: str | dict) -> dict:
    """A results_*.json as lm-evaluation-harness 0.4 writes it (EvaluationTracker.save_results_aggregated):
    the global_mmlu_de group carries its subtasks in `results` and lists them in `group_subtasks`."""
    results, group_subtasks = {}, {}
    for task, (acc, norm) in scores.items():
        metrics = {"name": task, "alias": task, "sample_len": 400, "acc,none": acc, "acc_stderr,none": 0.02}
        if norm is not None:
            metrics |= {"acc_norm,none": norm, "acc_norm_stderr,none": 0.02}
        results[task] = metrics
        if task.startswith("global_mmlu"):  # group_subtasks lists groups only
            subtasks = [f"{task}_stem", f"{task}_humanities"]
            group_subtasks[task] = subtasks
            for sub in subtasks:  # subtask scores that must not count
                results[sub] = {"name": sub, "alias": f" - {sub}", "sample_len": 200, "acc,none": 0.99,
                                "acc_stderr,none": 0.01}
    if isinstance(model_args, dict):
        model_name = model_args.get("peft") or model_args["pretrained"]
    else:  # the harness names a run by its last model argument: peft= before pretrained=
        model_name = model_args.split(",")[-1].split("=", 1)[1]
    return {
        "results": results,
        "groups": {t: results[t] for t in scores if t.startswith("global_mmlu")},
        "group_subtasks": group_subtasks,
        "configs": {t: {"task": t, "output_type": "multiple_choice", "metadata": {"version": 1.0}} for t in results},
        "versions": {t: 1.0 for t in results},
        "n-shot": {t: 0 for t in results},
        "higher_is_better": {t: {"acc": True, "acc_norm": True} for t in results},
        "n-samples": {t: {"original": 400, "effective": 400} for t in results},
        # model_args: a string as given on the command line (0.4.13 stores a parsed dict; both are read)
        "config": {"model": "hf", "model_args": model_args, "batch_size": "auto", "batch_sizes": [],
                   "device": "cuda:0", "use_cache": None, "limit": None, "bootstrap_iters": 100000,
                   "gen_kwargs": None, "random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234,
                   "fewshot_seed": 1234},
        "git_hash": "1a2b3c4", "date": 1767225600.0, "task_hashes": {}, "model_source": "hf",
        "model_name": model_name, "model_name_sanitized": model_name.replace("/", "__"),
        "system_instruction": None, "system_instruction_sha": None, "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None, "total_evaluation_time_seconds": "12.5",
    }


def write_run(root: Path, scores: dict, model_args: str | dict, date: str = "2026-01-02T10-00-00.000000") -> None:
    """`lm_eval --output_path root` puts results under root/<model_name_sanitized>/results_<date>.json."""
    data = harness_results(scores, model_args)
    folder = root / data["model_name_sanitized"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"results_{date}.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


@pytest.fixture
def harness_dir(tmp_path) -> Path:
    root = tmp_path / "runs"
    for seed in (17, 42):
        write_run(root / "base" / f"seed{seed}", BASE[seed], {"pretrained": f"Qwen/{MODEL}", "dtype": "bfloat16"})
        write_run(root / "ft" / "arc_challenge-de" / f"seed{seed}", FT[seed],
                  f"pretrained=Qwen/{MODEL},peft=adapters/arc_challenge-de/seed{seed}")
    # an older re-run in the same folder: the newer file (by name) wins
    write_run(root / "ft" / "arc_challenge-de" / "seed17", {t: (0.0, 0.0) for t in FT[17]},
              f"pretrained=Qwen/{MODEL},peft=old", date="2025-12-31T09-00-00.000000")
    (root / "runs.toml").write_text(
        "[[run]]\nsource = \"base\"\nseed = 17\npath = \"base/seed17\"\n\n"
        "[[run]]\nsource = \"base\"\nseed = 42\npath = \"base/seed42\"\n\n"
        f"[[run]]\nmodel = \"{MODEL}\"\nsource = \"arc_challenge:de\"\nseed = 17\npath = \"ft/arc_challenge-de/seed17\"\n\n"
        # no model: the name comes from the file's pretrained= argument, not the adapter path
        "[[run]]\nsource = \"arc_challenge:de\"\nseed = 42\npath = \"ft/arc_challenge-de/seed42\"\n",
        encoding="utf-8")
    return root


def test_harness_json_keeps_groups_not_their_subtasks(harness_dir):
    path = next((harness_dir / "base" / "seed17").rglob("results_*.json"))
    scores, model = read_harness_json(path)
    assert model == MODEL
    assert set(scores) == {"arc_de", "arc_fr", "truthfulqa_de_mc1", "global_mmlu_de"}
    assert scores["arc_fr"] == (0.30, 0.35)
    assert scores["truthfulqa_de_mc1"] == (0.25, 0.25)  # no acc_norm: score_norm is acc


def by_target(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(target=frame["eval_dataset"] + ":" + frame["eval_language"]).set_index("target")


def test_harness_import_matches_hand_values(harness_dir):
    per_seed = read_harness_runs(harness_dir / "runs.toml")
    assert len(per_seed) == 16 and set(per_seed["model_name"]) == {MODEL}
    out = by_target(aggregate_seeds(per_seed))
    assert list(out.index) == ["arc_challenge:de", "arc_challenge:fr", "global_mmlu:de", "truthfulqa:de"]
    fr = out.loc["arc_challenge:fr"]
    # acc Δ per seed: 10, 4 -> mean 7, std √18, se √18/√2 = 3; acc_norm Δ: 10, 6 -> 8, √8, 2
    assert fr["delta_score_mean"] == pytest.approx(7.0)
    assert fr["delta_score_std"] == pytest.approx(math.sqrt(18))
    assert fr["delta_score_se"] == pytest.approx(3.0)
    assert [fr["delta_score_norm_mean"], fr["delta_score_norm_std"], fr["delta_score_norm_se"]] == \
        pytest.approx([8.0, math.sqrt(8), 2.0])
    assert [fr["score_mean"], fr["score_std"], fr["score_base_mean"], fr["score_norm_base_mean"]] == \
        pytest.approx([0.38, math.sqrt(2 * 0.02 ** 2), 0.31, 0.355])
    assert fr["n_seeds"] == 2 and fr["model_size"] == 0.5 and fr["regime"] == "MT-CL"
    assert out.loc["arc_challenge:de", "regime"] == "MT-ML" and out.loc["truthfulqa:de", "regime"] == "CT-ML"
    # truthfulqa: acc only, so the norm Δ is the acc Δ (5, 3 -> 4); global_mmlu is its group's score
    assert out.loc["truthfulqa:de", "delta_score_norm_mean"] == pytest.approx(4.0)
    assert out.loc["global_mmlu:de", "delta_score_mean"] == pytest.approx(4.0)


def _run_main(*args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code, capsys.readouterr().err


def test_incomplete_grid_is_named_and_nothing_written(harness_dir, tmp_path, capsys):
    for path in (harness_dir / "ft" / "arc_challenge-de" / "seed42").rglob("*.json"):
        data = json.loads(path.read_text())
        del data["results"]["arc_fr"]  # the seed-42 adapter never evaluated on arc_challenge:fr
        path.write_text(json.dumps(data))
    out = tmp_path / "results.csv"
    code, err = _run_main("import", "harness", harness_dir / "runs.toml", "--out", out, capsys=capsys)
    # expected: 1 model × 4 targets × 2 seeds × (base + 1 source) = 16 entries
    assert code == 2 and not out.exists()
    assert "1 of 16" in err and "Qwen2.5-0.5B-Instruct, arc_challenge:de, arc_challenge:fr, seed 42" in err
    listed = tmp_path / "missing.csv"
    code, err = _run_main("import", "harness", harness_dir / "runs.toml", "--check", "--seeds", "17,42,101",
                          "--missing", listed, capsys=capsys)
    # seed 101 was never run: 4 base + 4 fine-tuned entries more, 24 expected in all
    assert code == 2 and "9 of 24" in err and "by seed: 101 8, 42 1" in err
    assert len(pd.read_csv(listed)) == 9
    result = runner.invoke(app, ["import", "harness", str(harness_dir / "runs.toml"), "--out", str(out),
                                 "--allow-incomplete"])
    assert result.exit_code == 0, result.output
    assert by_target(pd.read_csv(out)).loc["arc_challenge:fr", "n_seeds"] == 1


def test_missing_entries_by_hand():
    rows = [("m", "base", "t:a", None), ("m", "base", "t:b", 1),  # seedless base covers t:a for every seed
            ("m", "s:a", "t:a", 1), ("m", "s:a", "t:b", 1), ("m", "s:a", "t:a", 2)]
    frame = pd.DataFrame(rows, columns=["model_name", "source", "target", "seed"])
    missing, expected = missing_entries(frame)
    assert expected == 1 * 2 * 2 * 2
    assert sorted(map(tuple, missing[["kind", "source", "target", "seed"]].to_numpy())) == \
        [("base", "base", "t:b", 2), ("fine-tuned", "s:a", "t:b", 2)]
    assert describe_missing(missing, expected).startswith("grid incomplete: 2 of 8")
    assert describe_missing(missing.iloc[:0], expected) == \
        "grid complete: all 8 (model, source, target, seed) entries present"


def seed_rows() -> pd.DataFrame:
    """The harness fixture's numbers as a per-seed CSV (tasks by the release's names)."""
    names = {"arc_de": "arc_challenge:de", "arc_fr": "arc_challenge:fr", "truthfulqa_de_mc1": "truthfulqa:de",
             "global_mmlu_de": "global_mmlu:de"}
    rows = []
    for source, table in (("base", BASE), ("arc_challenge:de", FT)):
        for seed, scores in table.items():
            for task, (acc, norm) in scores.items():
                rows.append({"model": MODEL, "source": source, "target": names[task], "seed": seed, "score": acc,
                             "score_norm": "" if norm is None else norm})
    return pd.DataFrame(rows)


def test_seed_csv_import_equals_harness_import(harness_dir, tmp_path):
    path = tmp_path / "per_seed.csv"
    seed_rows().to_csv(path, index=False)
    from_csv = aggregate_seeds(read_seed_csv(path))
    from_harness = aggregate_seeds(read_harness_runs(harness_dir / "runs.toml"))
    pd.testing.assert_frame_equal(from_csv, from_harness)


def test_reference_style_seed_csv_and_seedless_base(tmp_path):
    """The reference's results_seed*.csv columns; a base without a seed serves every seed (std 0)."""
    rows = [{"model_name": MODEL, "model_size": "0.5", "seed": "", "fine_tuned_dataset": "n/a",
             "fine_tuned_language": "n/a", "eval_dataset": "arc_challenge", "eval_language": "fr",
             "score": 0.30, "score_norm": 0.35}]
    rows += [{"model_name": MODEL, "model_size": "0.5", "seed": seed, "fine_tuned_dataset": "arc_challenge",
              "fine_tuned_language": "de", "eval_dataset": "arc_challenge", "eval_language": "fr",
              "score": acc, "score_norm": norm} for seed, acc, norm in ((17, 0.40, 0.45), (42, 0.36, 0.42))]
    path = tmp_path / "results_seed17.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    row = aggregate_seeds(read_seed_csv(path)).iloc[0]
    # Δ acc: 10, 6 -> mean 8, std √8; base std over the two paired rows: 0
    assert [row["delta_score_mean"], row["delta_score_std"], row["score_base_std"], row["n_seeds"]] == \
        pytest.approx([8.0, math.sqrt(8), 0.0, 2])


def test_bad_inputs_are_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    frame = seed_rows()
    frame.loc[3, "score"] = 55.0  # a percentage where a proportion belongs
    frame.to_csv(bad, index=False)
    code, err = _run_main("import", "seeds", bad, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "not a proportion" in err and "Traceback" not in err
    frame = seed_rows()
    frame.loc[5, "target"] = "arc_challenge"
    frame.to_csv(bad, index=False)
    code, err = _run_main("import", "seeds", bad, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "bad.csv:7" in err and "TASK:LANG" in err
    bad.write_text("model,source,target,seed,score\n")
    code, err = _run_main("import", "seeds", bad, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "no scores found" in err
    bad.write_text("model,source,target,seed,score\nm,base,arc_challenge:en,,0.5\n")
    code, err = _run_main("import", "seeds", bad, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "only base-model scores" in err
    index = tmp_path / "runs.toml"
    index.write_text('[[run]]\nsource = "arc_challenge:de"\npath = "nowhere"\n')
    code, err = _run_main("import", "harness", index, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "run 1" in err and "seed" in err
    index.write_text('[[run]]\nsource = "base"\npath = "nowhere"\n')
    code, err = _run_main("import", "harness", index, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "no such file or folder" in err
    (tmp_path / "x.json").write_text("{not json")
    index.write_text('[[run]]\nsource = "base"\npath = "x.json"\n')
    code, err = _run_main("import", "harness", index, "--out", tmp_path / "o.csv", capsys=capsys)
    assert code == 2 and "x.json" in err and "not a JSON file" in err
    assert not (tmp_path / "o.csv").exists()


def test_import_round_trips_through_analyze(harness_dir, tmp_path):
    results = tmp_path / "results.csv"
    result = runner.invoke(app, ["import", "harness", str(harness_dir / "runs.toml"), "--out", str(results)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "analysis"
    result = runner.invoke(app, ["analyze", "--results", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    uplift = pd.read_csv(out / "tables" / "uplift_summary.csv").set_index("scope")
    # headline Δ: arc acc_norm (MT-CL arc:fr 8), truthfulqa and global_mmlu acc (CT-ML 4 and 4)
    assert uplift.loc["MT-CL", "mean"] == pytest.approx(8.0)
    assert uplift.loc["CT-ML", "mean"] == pytest.approx(4.0)
    assert uplift.loc["transfer", "mean"] == pytest.approx(16 / 3)
    assert uplift.loc["MT-ML", "mean"] == pytest.approx(10.0)  # arc:de acc_norm 10, 10


def test_csv_index_and_task_map(harness_dir, tmp_path):
    """The same runs from a CSV index; --tasks maps a task to another cell and skips one ("" dataset)."""
    index = harness_dir / "runs.csv"
    index.write_text("model,model_size,source,seed,path\n"
                     ",,base,,base/seed17\n"
                     f"{MODEL},0.5,arc_challenge:de,17,ft/arc_challenge-de/seed17\n", encoding="utf-8")
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("harness_task,dataset,language\ntruthfulqa_de_mc1,truthfulqa_mc1,de\nglobal_mmlu_de,,\n")
    out = tmp_path / "results.csv"
    result = runner.invoke(app, ["import", "harness", str(index), "--tasks", str(tasks), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = by_target(pd.read_csv(out))
    assert list(frame.index) == ["arc_challenge:de", "arc_challenge:fr", "truthfulqa_mc1:de"]
    # one seed: the seedless base (seed 17's file) serves it; std and SE are empty
    assert frame.loc["truthfulqa_mc1:de", "delta_score_mean"] == pytest.approx(5.0)
    assert frame["n_seeds"].tolist() == [1, 1, 1] and frame["delta_score_std"].isna().all()
