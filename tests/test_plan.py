"""Jobs and content keys: what changes a key, and what the plan leaves out."""

from __future__ import annotations

import pytest

from transfergrid.plan import EVAL, TRAIN, build_jobs, plan
from transfergrid.records import Cell
from transfergrid.store import Store
from transfergrid.study import parse_study


def _study(**over):
    spec = {
        "name": "t", "seeds": [1, 2],
        "models": [{"id": "a", "source": "tiny:seed=0"}, {"id": "b", "source": "tiny:seed=1"}],
        "grid": {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en", "es"]},
    }
    for k, v in over.items():
        spec[k] = {**spec.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_study(spec)


def _jobs(study, manifests=None, fps=None):
    manifests = manifests or {}
    fps = fps or {}
    return build_jobs(study, lambda task: manifests.get(task, f"m-{task}"), lambda src: fps.get(src, f"fp-{src}"))


def _keys(jobs, kind=None, adapter=None):
    out = {}
    for j in jobs:
        if kind and j.kind != kind:
            continue
        if adapter is not None and (j.adapter_key is not None) != adapter:
            continue
        out[(j.kind, j.model, j.spec.get("source_cell"), j.spec.get("seed"))] = j.key
    return out


def test_jobs_of_a_grid_and_their_order():
    study = _study()
    jobs = _jobs(study)
    # per model: 1 base evaluation + 4 sources x 2 seeds trainings + as many adapter evaluations
    assert len(jobs) == 2 * (1 + 8 + 8)
    assert len({j.key for j in jobs}) == len(jobs)
    for model in ("a", "b"):
        mine = [j for j in jobs if j.model == model]
        kinds = [(j.kind, j.adapter_key is None) for j in mine]
        assert kinds == [(EVAL, True)] + [(TRAIN, True)] * 8 + [(EVAL, False)] * 8
        trains = {j.key for j in mine if j.kind == TRAIN}
        assert {j.adapter_key for j in mine if j.kind == EVAL and j.adapter_key} == trains
    base = jobs[0]
    assert base.targets == [Cell(t, lang) for t in ("arc_challenge", "truthfulqa_mc1") for lang in ("en", "es")]
    assert _jobs(study) == jobs  # keys are stable


def test_what_changes_which_keys():
    study = _study()
    ref = _keys(_jobs(study))

    def changed(new):
        return {k for k, v in _keys(new).items() if ref.get(k) != v}

    base_a = ("eval", "a", None, None)
    train_a = {k for k in ref if k[0] == TRAIN and k[1] == "a"}
    adapter_evals_a = {k for k in ref if k[0] == EVAL and k[1] == "a" and k[2]}

    # the base evaluation does not depend on seeds; adding one adds jobs, changes none
    more = _jobs(_study(seeds=[1, 2, 3]))
    assert changed(more) == set(_keys(more)) - set(ref)
    # training config: every training and adapter evaluation, never the base evaluation
    lr = changed(_jobs(_study(training={"learning_rate": 1e-4})))
    assert base_a not in lr and train_a <= lr and adapter_evals_a <= lr
    # evaluation format with an explicit training format: evaluations only
    fmt = changed(_jobs(_study(training={"format": "cloze"}, evaluation={"format": "letters"})))
    assert fmt == {k for k in ref if k[0] == EVAL}
    # a model's weights: that model's jobs only
    fp = changed(_jobs(study, fps={"tiny:seed=0": "other"}))
    assert fp == {k for k in ref if k[1] == "a"}
    # an explicit dtype (bf16 weights score differently): that model's jobs only; "auto" keeps its keys
    bf16 = changed(_jobs(_study(models=[{"id": "a", "source": "tiny:seed=0", "dtype": "bfloat16"},
                                        {"id": "b", "source": "tiny:seed=1"}])))
    assert bf16 == {k for k in ref if k[1] == "a"}
    # one task's data manifest: trainings on that task, and every evaluation (it is a target)
    data = changed(_jobs(study, manifests={"truthfulqa_mc1": "new"}))
    assert {k for k in data if k[0] == TRAIN} == {k for k in ref if k[0] == TRAIN and k[2].startswith("truthfulqa")}
    assert {k for k in ref if k[0] == EVAL} <= data


def test_plan_subtracts_done_jobs(tmp_path):
    study = _study()
    jobs = _jobs(study)
    store = Store(tmp_path)
    assert plan(study, store, jobs=jobs) == jobs
    base = jobs[0]
    assert store.claim(base)
    for cell in base.targets:
        store.commit_cell(base, cell, {"n": 1, "acc": 1.0, "acc_norm": 1.0, "acc_bytes": 1.0}, [{"id": "x"}])
    store.finish(base)
    assert plan(study, store, jobs=jobs) == jobs[1:]
    # a study with other keys does not see these rows
    other = _jobs(study, fps={"tiny:seed=0": "other"})
    assert plan(study, store, jobs=other) == other


@pytest.mark.parametrize("bad", [{"sources": ["arc_challenge:xx"]}])
def test_source_cells_must_be_in_the_grid(bad):
    from transfergrid.errors import StudyError

    with pytest.raises(StudyError):
        _study(grid={"tasks": ["arc_challenge"], "languages": ["en"], **bad})
