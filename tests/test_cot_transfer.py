"""Chain-of-thought in a transfer grid (`evaluation.cot`, issue 15 item 5): study parsing, job keys,
a simulated run through export and report, the comparison table, and a tiny real run whose adapter
CoT evaluations really use the adapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_runner import cli

from transfergrid.analysis.cot_compare import COMPARISON_COLUMNS, cot_comparison
from transfergrid.errors import StudyError
from transfergrid.export import COLUMNS
from transfergrid.plan import EVAL, TRAIN, build_jobs, is_cot
from transfergrid.study import parse_study

GRID = {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en", "es"]}


def _study(kind: str = "transfer", **evaluation):
    data = {"name": "c", "seeds": [1, 2], "models": [{"id": "m", "source": "tiny:seed=0"}],
            "splits": {"train": 12, "test": 6}, "evaluation": evaluation}
    if kind == "transfer":
        data["grid"] = dict(GRID)
    else:
        data |= {"kind": "relatedness", "relatedness": {"source_languages": ["arb_Arab"],
                                                        "groups": {"related": ["heb_Hebr"]}}}
    return parse_study(data, "study.toml")


# --- study file ---------------------------------------------------------------------------------
def test_cot_settings_default_to_study_2s():
    study = _study(cot=True)
    spec = study.cot_spec()
    assert (spec.max_new_tokens, spec.batch_size) == (256, 8)  # relatedness.cot's defaults
    assert _study().cot_spec() is None
    assert _study(cot=True, cot_max_new_tokens=16).cot_spec().max_new_tokens == 16


@pytest.mark.parametrize("evaluation, kind, message", [
    ({"cot": True, "fewshot": 2}, "transfer", "evaluation.cot with evaluation.fewshot"),
    ({"cot": True}, "relatedness", "a relatedness study's chain-of-thought ablation is relatedness.cot"),
    ({"cot": True, "cot_max_new_tokens": 0}, "transfer", "evaluation.cot_max_new_tokens"),
    ({"cot": "yes please"}, "transfer", "evaluation.cot"),
])
def test_study_errors_are_one_line(evaluation, kind, message):
    with pytest.raises(StudyError, match=message) as err:
        _study(kind, **evaluation)
    assert "\n" not in str(err.value) and str(err.value).startswith("study.toml: ")


def test_cot_rejects_generative_extra_targets():
    data = {"name": "c", "models": [{"id": "m", "source": "tiny:seed=0"}], "evaluation": {"cot": True},
            "grid": {**GRID, "extra_targets": ["mgsm:en"]}}
    with pytest.raises(StudyError, match="extra targets .*mgsm.* are generative"):
        parse_study(data, "study.toml")


# --- plan ---------------------------------------------------------------------------------------
def _jobs(study):
    return build_jobs(study, lambda task: f"manifest-{task}", lambda source: "fp")


def test_zero_shot_keys_do_not_change_and_each_variant_has_its_own():
    plain, cot = _jobs(_study()), _jobs(_study(cot=True))
    zero = [j for j in cot if not is_cot(j)]
    assert [j.key for j in zero] == [j.key for j in plain]  # zero-shot keys as without CoT
    cots = [j for j in cot if is_cot(j)]
    n_adapters = sum(j.kind == TRAIN for j in plain)  # 4 sources x 2 seeds
    assert [j.spec["variant"] for j in cots].count("cot") == 1
    assert [j.spec["variant"] for j in cots].count("ft-cot") == n_adapters == 8
    assert len({j.key for j in cot}) == len(cot)  # CoT keys differ from their zero-shot twins
    # every adapter's CoT evaluation depends on that adapter's training
    assert sorted(j.adapter_key for j in cots if j.adapter_key) == sorted(j.key for j in plain if j.kind == TRAIN)
    assert all(j.kind == EVAL and "chain-of-thought" in j.label for j in cots)
    # the CoT settings are part of the CoT keys (only)
    other = _jobs(_study(cot=True, cot_max_new_tokens=64))
    assert [j.key for j in other if not is_cot(j)] == [j.key for j in plain]
    assert not {j.key for j in other if is_cot(j)} & {j.key for j in cots}
    # a study without CoT hashes as before the fields existed, whatever they are set to
    assert _study().content_hash() == _study(cot=False, cot_max_new_tokens=5).content_hash()
    assert _study().content_hash() != _study(cot=True).content_hash()


def test_relatedness_cot_keys_unchanged_by_the_grid_instruction():
    """Study 2's CoT key has no instruction field (its instruction is COT_VERSION's)."""
    from transfergrid.plan import _cot_settings

    assert "instruction" not in _cot_settings(_study("relatedness"))
    assert "reason briefly about the question" in _cot_settings(_study(cot=True))["instruction"]


# --- simulated run: export and report -----------------------------------------------------------
SIM_STUDY = """
name = "sim-cot"
seeds = [1, 2]

[[models]]
id = "qwen2.5-0.5b"
source = "Qwen/Qwen2.5-0.5B-Instruct"

[grid]
tasks = ["arc_challenge", "truthfulqa_mc1"]
languages = ["en", "es", "de"]

[splits]
train = 10
test = 30

[evaluation]
cot = {cot}
"""


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("simcot")
    outs = {}
    for cot in ("false", "true"):
        study = root / f"{cot}.toml"
        study.write_text(SIM_STUDY.format(cot=cot), encoding="utf-8")
        out = root / f"out-{cot}"
        args = ["run", study, "--out", out, "--simulate", "--no-progress"]
        assert cli(*args, *([] if cot == "true" else ["--no-report"])) == 0
        outs[cot] = out
    return outs


def test_simulated_cot_variant_is_exported_beside_unchanged_zero_shot_rows(simulated):
    plain, cot = simulated["false"], simulated["true"]
    zero = pd.read_csv(cot / "results.csv")
    pd.testing.assert_frame_equal(zero, pd.read_csv(plain / "results.csv"))  # zero-shot rows unchanged
    assert not (plain / "results_cot.csv").exists()
    variant = pd.read_csv(cot / "results_cot.csv")
    assert list(variant.columns) == list(zero.columns) and list(zero.columns[:len(COLUMNS)]) == COLUMNS
    keys = COLUMNS[:7]
    assert len(variant) == len(zero) == 36
    both = zero.merge(variant, on=keys, suffixes=("", "_cot"))
    assert len(both) == 36  # the same cells
    # its own scores: a CoT base (higher in the stand-in) and a CoT Δ against it
    assert (both.score_base_mean_cot >= both.score_base_mean).all()
    assert (both.score_base_mean_cot > both.score_base_mean).any()
    assert not np.allclose(both.delta_score_mean_cot, both.delta_score_mean)
    # numbered labels are equally long: the CoT variant's acc_norm is its acc
    assert np.allclose(variant.score_norm_mean, variant.score_mean)
    assert (variant.n_seeds == 2).all() and (variant.delta_n_items == 30).all()  # paired with the CoT base
    items = pd.read_parquet(cot / "results_cot.items.parquet")
    assert "cot" not in set(items.variant) and "base" in set(items.variant)
    zero_items = pd.read_parquet(cot / "items.parquet")
    assert len(zero_items) == len(pd.read_parquet(plain / "items.parquet"))  # no CoT rows mixed in


def test_report_shows_the_cot_section(simulated):
    report = simulated["true"] / "report"
    html = (report / "report.html").read_text(encoding="utf-8")
    assert "Chain-of-thought variant (zero-shot vs CoT)" in html and "cot comparison" in html
    assert "cot uplift summary" in html
    table = pd.read_csv(report / "cot" / "tables" / "cot_comparison.csv")
    assert list(table.columns) == COMPARISON_COLUMNS and table.scope.tolist()[0] == "transfer"
    assert (report / "cot" / "tables" / "uplift_summary.csv").is_file()
    assert (report / "cot" / "tables" / "cot_comparison.md").is_file() and (report / "cot" / "tables" / "cot_comparison.tex").is_file()
    assert any((report / "cot" / "figures").glob("*.png"))


def test_analyze_picks_up_the_cot_file(simulated, tmp_path):
    out = tmp_path / "analysis"
    assert cli("analyze", "--results", simulated["true"] / "results.csv", "--out", out) == 0
    assert (out / "cot" / "tables" / "cot_comparison.csv").is_file()
    assert "Chain-of-thought variant" in (out / "report.html").read_text(encoding="utf-8")
    (out / "report.html").unlink()
    assert cli("report", "--from", out) == 0  # rebuilt from the tables: the CoT section stays
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Chain-of-thought variant" in html and "cot comparison" in html


# --- the comparison table -----------------------------------------------------------------------
def _frame(deltas: dict, base: float) -> pd.DataFrame:
    rows = []
    for (source, target), delta in deltas.items():
        (st, sl), (tt, tl) = source.split(":"), target.split(":")
        rows.append({"model_name": "qwen2.5-0.5b", "model_size": 0.5, "fine_tuned_dataset": st,
                     "fine_tuned_language": sl, "eval_dataset": tt, "eval_language": tl, "regime": "",
                     "score_mean": base + delta / 100, "score_base_mean": base, "score_norm_mean": base + delta / 100,
                     "score_norm_base_mean": base, "delta_score_mean": delta, "delta_score_norm_mean": delta,
                     "n_seeds": 1})
    frame = pd.DataFrame(rows)
    from transfergrid.analysis.regimes import regime

    frame["regime"] = [regime(a, b, c, d) for a, b, c, d in zip(frame.fine_tuned_dataset, frame.fine_tuned_language,
                                                                frame.eval_dataset, frame.eval_language)]
    return frame


def test_comparison_means_per_regime_on_shared_cells():
    a, t = "arc_challenge", "truthfulqa_mc1"
    zs = _frame({(f"{a}:en", f"{a}:en"): 10.0, (f"{a}:en", f"{a}:es"): 4.0, (f"{a}:en", f"{t}:en"): -2.0,
                 (f"{a}:en", f"{t}:es"): 0.0, (f"{a}:es", f"{a}:en"): 6.0}, 0.30)
    cot = _frame({(f"{a}:en", f"{a}:en"): 5.0, (f"{a}:en", f"{a}:es"): 1.0, (f"{a}:en", f"{t}:en"): 1.0,
                  (f"{a}:en", f"{t}:es"): -3.0}, 0.40)  # no (arc:es -> arc:en) cell: left out
    table = cot_comparison(zs, cot).set_index("scope")
    assert table.loc["transfer", "n"] == 3 and table.loc["MT-CL", "n"] == 1
    assert table.loc["transfer", "delta_zero_shot"] == pytest.approx((4 - 2 + 0) / 3)
    assert table.loc["transfer", "delta_cot"] == pytest.approx((1 + 1 - 3) / 3)
    assert table.loc["transfer", "delta_change"] == pytest.approx(-1 / 3 - 2 / 3)
    assert table.loc["MT-ML", "delta_cot"] == 5.0 and table.loc["CT-ML", "delta_change"] == pytest.approx(3.0)
    assert table.loc["transfer", "win_rate_zero_shot"] == pytest.approx(100 / 3)
    assert table.loc["transfer", "harm_rate_cot"] == pytest.approx(100 / 3)  # -3 <= -1; +1 and +1 are wins
    assert table.loc["transfer", "base_zero_shot"] == pytest.approx(30.0)
    assert table.loc["transfer", "base_cot"] == pytest.approx(40.0)


# --- a tiny real run: the adapters' CoT evaluations use the adapter ---------------------------------
TINY = """
name = "tiny-cot"
seeds = [1]

[[models]]
id = "tiny"
source = "tiny:seed=0"

[grid]
tasks = ["arc_challenge"]
languages = ["en", "es"]

[splits]
train = 8
test = 4

[training]
epochs = 1
batch_size = 4
rank = 4
alpha = 8
learning_rate = 0.05
target_modules = ["q_proj", "v_proj"]
max_length = 256

[evaluation]
cot = true
cot_max_new_tokens = 4
"""


def test_tiny_run_scores_each_adapter_after_its_own_reasoning(tmp_path, data_dir):
    from transfergrid.plan import study_jobs
    from transfergrid.store import Store
    from transfergrid.study import load_study

    study_path = tmp_path / "study.toml"
    study_path.write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    assert cli("run", study_path, "--out", out, "--data-dir", data_dir, "--no-progress", "--no-report") == 0
    variant = pd.read_csv(out / "results_cot.csv")
    assert len(variant) == 4 and len(pd.read_csv(out / "results.csv")) == 4
    from transfergrid.data import StudyData

    study = load_study(study_path)
    jobs = {j.key: j for j in study_jobs(study, StudyData(study, data_dir))}
    scores = Store(out).cell_scores(jobs)
    loglik = {}
    for _, row in scores.iterrows():
        job = jobs[row["job_key"]]
        if is_cot(job):
            stored = pd.read_parquet(out / row["items_path"])
            assert {"reasoning", "generation", "loglik"} <= set(stored.columns)
            loglik[(job.spec["variant"], job.spec["source_cell"], row["cell"])] = np.stack(stored["loglik"])
    base = {cell: ll for (v, _, cell), ll in loglik.items() if v == "cot"}
    adapters = [(cell, ll) for (v, _, cell), ll in loglik.items() if v == "ft-cot"]
    assert len(base) == 2 and len(adapters) == 4
    for cell, ll in adapters:  # the adapter is active while it reasons and answers
        assert not np.allclose(ll, base[cell])
