"""Multi-source composition: source sets in the study file, their keys, pooled training data,
regimes against a set, a simulated grid through export and the composition tables, and one tiny
real run whose adapter names its set."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from transfergrid.analysis.composition import composition_cells, composition_roles
from transfergrid.analysis.frame import prepare
from transfergrid.analysis.regimes import regime
from transfergrid.composition import members, members_of, pooled_items, source_label
from transfergrid.errors import StudyError
from transfergrid.plan import TRAIN
from transfergrid.records import Cell
from transfergrid.simulate import SimulatedWorker, simulated_jobs
from transfergrid.study import parse_study

ARC_EN, ARC_ES = Cell("arc_challenge", "en"), Cell("arc_challenge", "es")
TQA_EN, TQA_ES = Cell("truthfulqa_mc1", "en"), Cell("truthfulqa_mc1", "es")


def study(sources=None, **extra):
    grid = {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en", "es"]}
    if sources is not None:
        grid["sources"] = sources
    return parse_study({"name": "compose", "seeds": [1, 2], "models": [{"id": "m", "source": "org/m-0.5B"}],
                        "grid": grid, "splits": {"train": 10, "test": 12}, **extra})


# --- the study file ------------------------------------------------------------------------------
def test_sets_and_generators_parse():
    s = study(["arc_challenge:en", ["arc_challenge:es", "arc_challenge:en"], ["truthfulqa_mc1:es", "arc_challenge:en"]])
    assert s.sources() == [(ARC_EN,), (ARC_EN, ARC_ES), (ARC_EN, TQA_ES)]  # members sorted
    assert s.source_cells() == [ARC_EN, ARC_ES, TQA_ES]
    assert study("pairs:arc_challenge").sources() == [(ARC_EN, ARC_ES)]
    both = study(["cells", "pairs:truthfulqa_mc1"]).sources()
    assert both == [(ARC_EN,), (ARC_ES,), (TQA_EN,), (TQA_ES,), (TQA_EN, TQA_ES)]
    assert study().sources() == [(c,) for c in study().cells()]
    assert study([["arc_challenge:en"]]).sources() == [(ARC_EN,)]  # a set of one is that cell


@pytest.mark.parametrize("sources, expected", [
    ([["arc_challenge:en", "arc_challenge:zh"]], "grid: sources: 'arc_challenge:zh' is not a TASK:LANG cell"),
    ([["arc_challenge:en", "arc_challenge:en"]], "grid: sources: set ['arc_challenge:en', 'arc_challenge:en']: arc_challenge:en listed twice"),
    ("pairs:hellaswag", "grid: sources: 'pairs:hellaswag': 'hellaswag' is not a task of the grid"),
    ([3], "grid.sources: expected a list of TASK:LANG cells and of sets"),
    ([[]], "grid.sources: expected a list of TASK:LANG cells and of sets"),
    ("everything", "'everything' is not a TASK:LANG cell"),
])
def test_bad_sources_are_one_clear_line(sources, expected):
    with pytest.raises(StudyError) as err:
        study(sources)
    message = str(err.value)
    assert expected in message and "\n" not in message, message


def test_labels_round_trip():
    assert source_label([ARC_ES, ARC_EN]) == "arc_challenge:en+es"
    assert source_label([TQA_EN, ARC_EN]) == "arc_challenge+truthfulqa_mc1:en"
    assert source_label([TQA_ES, ARC_EN]) == "arc_challenge+truthfulqa_mc1:en+es"
    assert source_label([ARC_EN]) == "arc_challenge:en"
    for cells in ([ARC_EN, ARC_ES], [ARC_EN, TQA_EN], [ARC_EN, TQA_ES], [ARC_EN, ARC_ES, TQA_EN], [ARC_ES]):
        assert members_of(source_label(cells)) == tuple(sorted(cells))
    with pytest.raises(ValueError, match="2 tasks but 3 languages"):
        members("a+b", "en+es+fr")


# --- keys ----------------------------------------------------------------------------------------
def train_keys(s) -> dict[str, str]:
    return {j.spec["source_cell"]: j.key for j in simulated_jobs(s) if j.kind == TRAIN and j.spec["seed"] == 1}


def test_single_cell_keys_are_unchanged_by_sets():
    plain = train_keys(study())
    assert train_keys(study(["cells"])) == plain
    assert train_keys(study([str(c) for c in study().cells()])) == plain
    composed = train_keys(study(["cells", ["arc_challenge:es", "arc_challenge:en"]]))
    assert {k: v for k, v in composed.items() if k in plain} == plain
    assert set(composed) - set(plain) == {"arc_challenge:en+es"}
    # the set's key comes from the sorted set: the order written does not matter, the members do
    assert train_keys(study([["arc_challenge:en", "arc_challenge:es"]]))["arc_challenge:en+es"] == \
        composed["arc_challenge:en+es"]
    assert composed["arc_challenge:en+es"] not in plain.values()
    assert "arc_challenge:en+es" not in train_keys(study([["arc_challenge:en", "truthfulqa_mc1:es"]]))


# --- pooled training data ------------------------------------------------------------------------
def test_pooled_items_mix_the_cells_in_an_order_fixed_by_the_seed(data_dir):
    from transfergrid.data import StudyData

    s = study([["arc_challenge:en", "arc_challenge:es"]])
    data = StudyData(s, data_dir)
    for split in ("train", "validation"):
        pooled = pooled_items(data, [ARC_ES, ARC_EN], split, seed=1)
        alone = [*data.items(ARC_EN, split), *data.items(ARC_ES, split)]
        assert sorted((it.lang, it.id) for it in pooled) == sorted((it.lang, it.id) for it in alone)
        assert pooled == pooled_items(data, [ARC_EN, ARC_ES], split, seed=1)
        assert pooled != pooled_items(data, [ARC_EN, ARC_ES], split, seed=2)
    first = pooled_items(data, [ARC_EN, ARC_ES], "train", seed=1)[:9]
    assert {it.lang for it in first} == {"en", "es"}  # training.limit takes a mix, not one cell


def test_the_worker_trains_a_set_on_its_pooled_items(data_dir, monkeypatch):
    import transfergrid.train
    from transfergrid.jobs import Worker

    s = study([["arc_challenge:en", "arc_challenge:es"]])
    job = next(j for j in simulated_jobs(s) if j.kind == TRAIN)
    seen = {}

    def fake_train(loaded, train_items, val_items, spec, **kw):
        seen.update(train=train_items, val=val_items, meta=kw["meta"])
        return {}

    monkeypatch.setattr(transfergrid.train, "train_adapter", fake_train)
    worker = Worker(s, data_dir)
    monkeypatch.setattr(worker, "base", lambda job: None)
    worker.train(job, Path("unused"))
    assert seen["train"] == pooled_items(worker.data, [ARC_EN, ARC_ES], "train", job.spec["seed"])
    assert len(seen["val"]) == 2 * len(worker.data.items(ARC_EN, "validation"))
    assert seen["meta"]["cells"] == ["arc_challenge:en", "arc_challenge:es"]
    assert seen["meta"]["source_cell"] == "arc_challenge:en+es"


# --- regimes against a set -----------------------------------------------------------------------
def test_regimes_of_a_set():
    assert regime("arc_challenge", "en+es", "arc_challenge", "es") == "MT-ML"  # one of the set's cells
    assert regime("arc_challenge", "en+es", "arc_challenge", "zh") == "MT-CL"
    assert regime("arc_challenge", "en+es", "truthfulqa_mc1", "en") == "CT-ML"
    assert regime("arc_challenge", "en+es", "truthfulqa_mc1", "zh") == "CT-CL"
    mixed = ("arc_challenge+truthfulqa_mc1", "en+es")  # {arc:en, tqa:es}
    assert regime(*mixed, "truthfulqa_mc1", "es") == "MT-ML"
    assert regime(*mixed, "arc_challenge", "es") == "MT-ML"  # task and language among the set's, no member
    assert regime(*mixed, "hellaswag", "zh") == "CT-CL"
    assert regime("arc_challenge", "en", "arc_challenge", "es") == "MT-CL"  # single cells as ever


def test_prepare_accepts_the_set_regimes_and_recomputes_them():
    rows = pd.DataFrame({
        "model_name": "m", "fine_tuned_dataset": ["arc_challenge", "arc_challenge+truthfulqa_mc1", "arc_challenge"],
        "fine_tuned_language": ["en+es", "en+es", "en"], "eval_dataset": ["arc_challenge", "arc_challenge", "hellaswag"],
        "eval_language": ["zh", "es", "en"], "regime": ["MT-CL", "MT-ML", "CT-ML"], "delta_score_norm_mean": 1.0,
        "delta_score_mean": 1.0})
    assert prepare(rows)["regime"].tolist() == ["MT-CL", "MT-ML", "CT-ML"]
    with pytest.raises(Exception, match="disagrees"):
        prepare(rows.assign(regime=["MT-ML", "MT-ML", "CT-ML"]))


# --- a simulated grid through export and the composition tables ----------------------------------
def test_simulated_run_exports_sets_and_compares_them_with_their_members(tmp_path):
    from transfergrid.analysis.tables import compute_tables
    from transfergrid.execute.local import run_local
    from transfergrid.export import export_results
    from transfergrid.store import Store

    s = study(["cells", "pairs:arc_challenge", ["arc_challenge:en", "truthfulqa_mc1:es"]])
    jobs = simulated_jobs(s)
    store = Store(tmp_path / "out")
    summary = run_local(s, store, jobs, Path("."), progress=False, worker=SimulatedWorker(s))
    assert summary.ok and len(summary.done) == len(jobs) == 1 + 2 * (6 + 6)
    results = export_results(s, store, jobs)
    assert len(results) == 6 * 4
    pair = results[(results.fine_tuned_dataset == "arc_challenge") & (results.fine_tuned_language == "en+es")]
    assert pair.set_index(["eval_dataset", "eval_language"]).regime.to_dict() == {
        ("arc_challenge", "en"): "MT-ML", ("arc_challenge", "es"): "MT-ML",
        ("truthfulqa_mc1", "en"): "CT-ML", ("truthfulqa_mc1", "es"): "CT-ML"}
    mixed = results[results.fine_tuned_dataset == "arc_challenge+truthfulqa_mc1"]
    assert set(mixed.fine_tuned_language) == {"en+es"} and (mixed.n_seeds == 2).all()

    cells = composition_cells(results)
    assert len(cells) == 2 * 4 and set(cells.source) == {"arc_challenge:en+es", "arc_challenge+truthfulqa_mc1:en+es"}
    # the set's Δ against its members' own rows on the same target, recomputed from results.csv
    df = prepare(results)
    delta = df.set_index(["source", "target"])["delta"]
    row = cells[(cells.source == "arc_challenge:en+es") & (cells.target == "truthfulqa_mc1:en")].iloc[0]
    member = [delta[("arc_challenge:en", "truthfulqa_mc1:en")], delta[("arc_challenge:es", "truthfulqa_mc1:en")]]
    assert row.delta_set == pytest.approx(delta[("arc_challenge:en+es", "truthfulqa_mc1:en")])
    assert row.members_mean == pytest.approx(sum(member) / 2) and row.members_best == pytest.approx(max(member))
    assert row.gain_vs_mean == pytest.approx(row.delta_set - sum(member) / 2)
    assert not row.member and row.regime == "CT-ML"
    assert cells[cells.source == "arc_challenge+truthfulqa_mc1:en+es"].member.sum() == 2  # arc:en, tqa:es

    roles = composition_roles(results).set_index(["source", "scope"])
    ct = roles.loc[("arc_challenge:en+es", "CT-ML")]
    on = cells[(cells.source == "arc_challenge:en+es") & (cells.regime == "CT-ML")]
    assert ct.n_cells == 2 and ct.set_donor == pytest.approx(on.delta_set.mean())
    assert ct.members_donor == pytest.approx(on.members_mean.mean())
    assert ct.gain_vs_mean == pytest.approx(ct.set_donor - ct.members_donor)
    assert ("arc_challenge:en+es", "transfer") in roles.index
    # the mixed set's MT-ML non-members (arc:es, tqa:en) are their own scope, apart from its member cells
    assert roles.loc[("arc_challenge+truthfulqa_mc1:en+es", "member")].n_cells == 2
    assert roles.loc[("arc_challenge+truthfulqa_mc1:en+es", "MT-ML")].n_cells == 2
    assert ("arc_challenge+truthfulqa_mc1:en+es", "transfer") not in roles.index  # every target is MT-ML
    tables = compute_tables(results, variance=False, distance=False)
    pd.testing.assert_frame_equal(tables["composition_cells"], cells)
    assert composition_cells(results[~results.fine_tuned_language.str.contains("+", regex=False)]).empty



def test_every_table_runs_on_a_grid_with_sets(tmp_path):
    from transfergrid.analysis.tables import TABLES, compute_tables
    from transfergrid.execute.local import run_local
    from transfergrid.export import export_results
    from transfergrid.store import Store

    s = parse_study({"name": "compose3", "seeds": [1], "models": [{"id": "a", "source": "org/a-1B"},
                                                                  {"id": "b", "source": "org/b-3B"}],
                     "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es", "zh"],
                              "sources": ["cells", "pairs:arc_challenge"]}, "splits": {"train": 10, "test": 12}})
    jobs = simulated_jobs(s)
    store = Store(tmp_path / "out")
    assert run_local(s, store, jobs, Path("."), progress=False, worker=SimulatedWorker(s)).ok
    results = export_results(s, store, jobs)
    tables = compute_tables(results, urielplus=False, permutations=99)
    assert list(tables) == list(TABLES)
    roles = tables["composition_roles"].set_index(["source", "scope"])
    assert roles.loc[("arc_challenge:en+es", "MT-CL"), "n_cells"] == 2  # zh, for each of 2 models
    assert "en+es" in set(tables["language_roles"]["language"])  # a set is a donor of its own
    assert not tables["ling_correlation"].empty  # the singles' language pairs; sets have no distance

# --- one real (tiny) run -------------------------------------------------------------------------
TINY = """
name = "compose-tiny"
seeds = [1]

[[models]]
id = "tiny"
source = "tiny:seed=0"

[grid]
tasks = ["arc_challenge"]
languages = ["en", "es"]
sources = ["arc_challenge:en", ["arc_challenge:es", "arc_challenge:en"]]

[splits]
train = 10
test = 4

[training]
epochs = 1
batch_size = 4
rank = 4
alpha = 8
learning_rate = 0.01
target_modules = ["q_proj", "v_proj"]
max_length = 256
"""


def test_a_tiny_run_trains_the_set_as_one_adapter(tmp_path, data_dir):
    from transfergrid.cli import main

    path = tmp_path / "study.toml"
    path.write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    try:
        main(["run", str(path), "--out", str(out), "--data-dir", str(data_dir), "--no-progress", "--no-report"])
    except SystemExit as exc:
        assert not exc.code
    metas = [json.loads(p.read_text()) for p in (out / "artifacts" / "adapters").glob("*/transfergrid.json")]
    by_source = {m["meta"]["source_cell"]: m for m in metas}
    assert set(by_source) == {"arc_challenge:en", "arc_challenge:en+es"}
    pair = by_source["arc_challenge:en+es"]
    assert pair["cells"] == ["arc_challenge:en", "arc_challenge:es"]
    assert pair["train_size"] == 2 * by_source["arc_challenge:en"]["train_size"]
    assert set(pair["data_manifest_hash"]) == {"arc_challenge"}
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert set(zip(results.fine_tuned_dataset, results.fine_tuned_language)) == {
        ("arc_challenge", "en"), ("arc_challenge", "en+es")}
    assert results[results.fine_tuned_language == "en+es"].regime.tolist() == ["MT-ML", "MT-ML"]


def test_a_grid_without_sets_logs_nothing_about_composition(caplog):
    """The composition tables are empty without source sets, and say so only where sets exist."""
    import logging

    from transfergrid.analysis.simulate import simulate_results
    from transfergrid.analysis.tables import compute_tables

    frame = prepare(simulate_results(["arc_challenge"], ["en", "es"], models=2, seeds=1))
    with caplog.at_level(logging.INFO, logger="transfergrid"):
        tables = compute_tables(frame, variance=False, distance=False)
    assert tables["composition_cells"].empty and tables["composition_roles"].empty
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in logged if m.startswith("composition_")], logged
    assert "task_roles: empty for this grid" in logged  # other empty tables still say so
    assert not [m for m in logged if m.startswith("variance_decomposition: empty")]  # switched off: one line
