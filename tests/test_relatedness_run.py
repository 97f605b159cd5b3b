"""Study 2 through the store: per-item records -> the relatedness frame -> `transfergrid analyze`."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from typer.testing import CliRunner

import transfergrid.cli.commands  # noqa: F401  (registers the commands on the app)
from transfergrid.analysis.relatedness import ITEM_COLUMNS
from transfergrid.cli.app import app
from transfergrid.errors import UserError
from transfergrid.plan import EVAL, Job
from transfergrid.report.relatedness_figures import FIGURES, TABLES
from transfergrid.store import Store
from transfergrid.studies.relatedness import (
    ITEMS_FILE,
    item_frame,
    item_records,
    read_item_frame,
)
from transfergrid.study import parse_study

runner = CliRunner()
LANGS = {"related": ["ms"], "control": ["vi", "th"]}


def _study(out, **extra):
    return parse_study({"name": "rel", "kind": "relatedness", "seeds": [1, 2], "output_dir": str(out),
                        "models": [{"id": "m1", "source": "tiny:seed=0"}, {"id": "m2", "source": "tiny:seed=1"}],
                        "relatedness": {"source_languages": ["id"], "groups": LANGS, "test_items": 12,
                                        "weak_baseline": 0.4, **extra}})


def _eval_jobs(study) -> list[Job]:
    targets = [f"belebele:{lang}" for langs in LANGS.values() for lang in langs]
    jobs = []
    for m in study.models:
        base = {"model": m.id, "model_source": m.source, "targets": targets, "adapter_key": None, "seed": None}
        jobs.append(Job(EVAL, f"{m.id}-base", {**base, "variant": "base"}))
        jobs.append(Job(EVAL, f"{m.id}-cot", {**base, "variant": "cot"}))
        for seed in study.seeds:
            jobs.append(Job(EVAL, f"{m.id}-ft{seed}", {**base, "variant": "ft", "seed": seed,
                                                         "adapter_key": f"{m.id}-train{seed}",
                                                         "source_cell": "belebele:id"}))
    return jobs


def _fill(store: Store, jobs: list[Job], n_items: int = 12) -> dict:
    """Commit random per-item outcomes for every job and cell; returns {(key, lang, id): correct}."""
    rng = random.Random(3)
    truth = {}
    for job in jobs:
        assert store.claim(job)
        for cell in job.targets:
            p = {"base": 0.3, "cot": 0.45, "ft": 0.6}[job.spec["variant"]]
            items = []
            for k in range(n_items):
                correct = rng.random() < p
                truth[(job.key, cell.lang, f"q{k}")] = correct
                item = {"id": f"q{k}", "task": "belebele", "lang": cell.lang, "gold": 0,
                        "loglik": [-1.0, -2.0, -3.0, -4.0], "pred": 0 if correct else 1, "correct": correct}
                if job.spec["variant"] == "cot":
                    item.update(reasoning=f"because {k}", generation=f"because {k}\nAnswer: 1")
                items.append(item)
            acc = sum(i["correct"] for i in items) / n_items
            store.commit_cell(job, cell, {"n": n_items, "acc": acc, "acc_norm": acc}, items)
        store.finish(job)
    return truth


@pytest.fixture()
def filled(tmp_path):
    study = _study(tmp_path / "out")
    store = Store(study.output_path())
    jobs = _eval_jobs(study)
    truth = _fill(store, jobs)
    return study, store, jobs, truth


def test_item_records_carry_variant_seed_group_and_reasoning(filled):
    study, store, jobs, truth = filled
    records = item_records(study, store, jobs)
    assert list(records.columns[:len(ITEM_COLUMNS)]) == list(ITEM_COLUMNS)
    # 2 models x (base + cot + 2 seeds) x 3 languages x 12 items
    assert len(records) == 2 * 4 * 3 * 12
    by = records.groupby(["model", "variant"])["seed"].apply(lambda s: sorted(set(s.dropna().astype(int))))
    assert by[("m1", "ft")] == [1, 2] and by[("m1", "base")] == [] and by[("m2", "cot")] == []
    assert dict(zip(records["language"], records["group"])) == {"ms": "related", "vi": "control", "th": "control"}
    for _, row in records.sample(20, random_state=0).iterrows():
        assert row["correct"] == truth[(row["job_key"], row["language"], row["item"])]
    cot = records[records["variant"] == "cot"]
    assert cot["reasoning"].str.startswith("because").all()
    assert records.loc[records["variant"] != "cot", "reasoning"].isna().all()
    # base and CoT share "no adapter" but never mix: each (model, language, item) once per variant
    assert not records.duplicated(["model", "language", "item", "variant", "seed"]).any()


def test_item_frame_gives_the_gains_the_records_imply(filled):
    from transfergrid.analysis.relatedness import gains_table

    study, store, jobs, truth = filled
    frame = item_frame(item_records(study, store, jobs))
    assert list(frame.columns) == list(ITEM_COLUMNS)
    gains = gains_table(frame).set_index(["model", "language"])
    for model in ("m1", "m2"):
        for lang in ("ms", "vi", "th"):
            def acc(key, lang=lang):
                return 100 * sum(truth[(key, lang, f"q{k}")] for k in range(12)) / 12

            ft = (acc(f"{model}-ft1") + acc(f"{model}-ft2")) / 2
            row = gains.loc[(model, lang)]
            assert row["baseline_acc"] == pytest.approx(acc(f"{model}-base"))
            assert row["gain"] == pytest.approx(ft - acc(f"{model}-base"))
            assert row["cot_gain"] == pytest.approx(acc(f"{model}-cot") - acc(f"{model}-base"))


def test_analyze_writes_every_relatedness_table_figure_and_the_report(filled, tmp_path):
    study, store, jobs, _ = filled
    item_records(study, store, jobs).to_parquet(study.output_path() / ITEMS_FILE, index=False)
    study_file = tmp_path / "rel.toml"
    study_file.write_text(
        f'name = "rel"\nkind = "relatedness"\nseeds = [1, 2]\noutput_dir = "{study.output_path()}"\n'
        '[[models]]\nid = "m1"\nsource = "tiny:seed=0"\n[[models]]\nid = "m2"\nsource = "tiny:seed=1"\n'
        '[relatedness]\nsource_languages = ["id"]\ntest_items = 12\nweak_baseline = 0.4\n'
        'groups = { related = ["ms"], control = ["vi", "th"] }\n', encoding="utf-8")
    result = runner.invoke(app, ["analyze", str(study_file)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = study.output_path() / "analysis"
    assert sorted(p.stem for p in (out / "tables").glob("*.csv")) == sorted(TABLES)
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == sorted(FIGURES)
    gains = pd.read_csv(out / "tables" / "relatedness_gains.csv")
    assert len(gains) == 6 and set(gains["group"]) == {"related", "control"}
    assert gains[["baseline_acc", "ft_acc", "gain", "mcnemar_p", "cot_gain"]].notna().all().all()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Relatedness vs task alignment (study 2)" in html and html.count("<img ") == len(FIGURES)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".analysis.staging")]
    # report STUDY rebuilds the HTML from those tables and figures
    result = runner.invoke(app, ["report", str(study_file)])
    assert result.exit_code == 0, repr(result.exception)
    assert "Relatedness vs task alignment" in (out / "report.html").read_text(encoding="utf-8")


def test_analyze_before_run_is_a_user_error(tmp_path):
    study_file = tmp_path / "rel.toml"
    study_file.write_text(
        f'name = "rel"\nkind = "relatedness"\noutput_dir = "{tmp_path / "nothing"}"\n'
        '[[models]]\nid = "m1"\nsource = "tiny:seed=0"\n[relatedness]\nsource_languages = ["id"]\n'
        'groups = { related = ["ms"], control = ["vi"] }\n', encoding="utf-8")
    result = runner.invoke(app, ["analyze", str(study_file)])
    assert isinstance(result.exception, UserError) and "transfergrid run" in str(result.exception)
    assert not (tmp_path / "nothing").exists()


def test_read_item_frame_rejects_records_without_base_rows(filled, tmp_path):
    study, store, jobs, _ = filled
    records = item_records(study, store, jobs)
    path = tmp_path / "items.parquet"
    records[records["variant"] != "base"].to_parquet(path, index=False)
    with pytest.raises(UserError, match="base-model"):
        read_item_frame(path)


# --- the runner: a tiny relatedness study on real Belebele data --------------------------------------

RUN_STUDY = """
name = "rel-run"
kind = "relatedness"
seeds = [1]

[[models]]
id = "tiny"
source = "tiny:seed=0"

[relatedness]
source_languages = ["id"]
test_items = 6
train_items_per_language = 12
weak_baseline = 0.3
groups = {{ related = ["ms"], control = ["vi", "en"] }}
scripts = {{ ms = "Latn", vi = "Latn", en = "Latn" }}

[relatedness.cot]
enabled = {cot}
max_new_tokens = 6
batch_size = 4

[evaluation]
format = "numbers"

[training]
epochs = 1
batch_size = 4
rank = 4
alpha = 8
learning_rate = 0.01
target_modules = ["q_proj", "v_proj"]
max_length = 384
"""


def _cli(*args) -> int:
    from transfergrid.cli import main

    try:
        main([*map(str, args)])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _events(out) -> int:
    import sqlite3

    con = sqlite3.connect(out / "transfergrid.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        con.close()


def test_runner_runs_a_relatedness_study_end_to_end_and_resumes(tmp_path, data_dir, capsys):
    study_file = tmp_path / "rel.toml"
    study_file.write_text(RUN_STUDY.format(cot="true"), encoding="utf-8")
    out = tmp_path / "out"
    args = ["run", study_file, "--out", out, "--data-dir", data_dir, "--no-progress"]
    assert _cli(*args) == 0
    # base + CoT + one adapter evaluation, each on 3 languages x 6 items, with the reasoning stored
    records = pd.read_parquet(out / ITEMS_FILE)
    assert records.groupby("variant").size().to_dict() == {"base": 18, "cot": 18, "ft": 18}
    assert set(records.loc[records["variant"] == "ft", "seed"]) == {1}
    assert records.loc[records["variant"] != "ft", "seed"].isna().all()
    cot = records[records["variant"] == "cot"]
    assert cot["reasoning"].notna().all() and cot["generation"].str.len().gt(0).any()
    # every language has the same test ids, and none of them was trained on
    ids = records.groupby("language")["item"].apply(frozenset)
    assert ids.nunique() == 1
    manifest = next((out / "artifacts" / "manifests").rglob("belebele.json"))
    import json

    pooled = {i for _, i in json.loads(manifest.read_text())["train"]}
    assert pooled and not pooled & set(ids.iloc[0])
    # the adapter was really active: its log-likelihoods differ from the base model's
    by = records.set_index(["variant", "language", "item"])["loglik"]
    key = ("en", records["item"].iloc[0])
    assert list(by[("ft", *key)]) != list(by[("base", *key)])

    tables_dir = out / "report" / "tables"
    gains = pd.read_csv(tables_dir / "relatedness_gains.csv")
    assert list(gains.columns[:3]) == ["model", "language", "group"]
    assert {"baseline_acc", "ft_acc", "gain", "mcnemar_p", "gain_ci_low", "gain_ci_high", "cot_acc",
            "cot_gain"} <= set(gains.columns)
    assert sorted(zip(gains["language"], gains["group"])) == [("en", "control"), ("ms", "related"),
                                                              ("vi", "control")]
    assert ((gains["gain"] - (gains["ft_acc"] - gains["baseline_acc"])).abs() < 1e-9).all()
    assert ((gains["cot_gain"] - (gains["cot_acc"] - gains["baseline_acc"])).abs() < 1e-9).all()
    assert (gains["n_items"] == 6).all()
    summary = pd.read_csv(tables_dir / "relatedness_group_summary.csv")
    assert {"related", "control", "related-minus-control"} <= set(summary["group"])
    assert set(summary["metric"]) == {"ft", "cot"}
    regression = pd.read_csv(tables_dir / "relatedness_regression.csv")
    assert list(regression.columns[:6]) == ["term", "coef", "se", "ci_low", "ci_high", "p"]
    corr = pd.read_csv(tables_dir / "cot_correlation.csv")
    assert list(corr["level"]) == ["model", "model_language"] and corr.loc[1, "n"] == 3
    assert len(pd.read_csv(tables_dir / "relatedness_weak_strong.csv")) == 2
    assert (out / "report" / "report.html").is_file()
    assert (out / "report" / "figures" / "relatedness_gains.png").is_file()

    # a second run does nothing
    before = _events(out)
    capsys.readouterr()
    assert _cli(*args) == 0
    assert "0 to run" in capsys.readouterr().out
    assert _events(out) == before
    # status knows the study
    assert _cli("status", study_file, "--out", out, "--data-dir", data_dir, "--json") == 0


def test_disabling_cot_adds_no_cot_job_and_keeps_the_other_keys(tmp_path, data_dir):
    from transfergrid.data import StudyData
    from transfergrid.plan import TRAIN, study_jobs
    from transfergrid.study import load_study

    keys = {}
    for cot in ("true", "false"):
        path = tmp_path / f"rel-{cot}.toml"
        path.write_text(RUN_STUDY.format(cot=cot), encoding="utf-8")
        study = load_study(path)
        jobs = study_jobs(study, StudyData(study, data_dir))
        keys[cot] = {(j.kind, j.spec.get("variant")): j.key for j in jobs}
        assert sum(j.kind == TRAIN for j in jobs) == 1
    assert set(keys["true"]) - set(keys["false"]) == {(EVAL, "cot")}
    assert all(keys["true"][k] == v for k, v in keys["false"].items())
