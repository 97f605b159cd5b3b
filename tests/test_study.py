"""The study file: reference defaults, one-line errors with the field path, stable hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfergrid.errors import StudyError
from transfergrid.model_names import size_bucket
from transfergrid.study import load_study, parse_study

BASE = {"name": "s", "models": [{"id": "Qwen2.5-0.5B-Instruct", "source": "Qwen/Qwen2.5-0.5B-Instruct"}],
        "grid": {"tasks": ["arc_challenge", "truthfulqa_mc1"], "languages": ["en", "es"]}}


def test_defaults_are_the_reference_recipe():
    s = parse_study(BASE)
    assert s.seeds == [17, 42, 101]
    assert (s.splits.train, s.splits.test, s.splits.validation_fraction, s.splits.validation_seed) == (300, 400, 0.1, 42)
    assert s.splits.sizes("global_mmlu_lite") == (215, 400) and s.splits.sizes("arc_challenge") == (300, 400)
    t = s.training
    assert (t.method, t.rank, t.alpha, t.dropout, t.learning_rate, t.epochs, t.batch_size, t.warmup_ratio,
            t.scheduler) == ("lora", 32, 64, 0.0, 5e-5, 3, 8, 0.1, "linear")
    assert set(t.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert s.evaluation.metric == "auto" and s.evaluation.format == "cloze"
    assert s.models[0].family == "qwen2.5" and s.models[0].size_b == 0.5 and size_bucket(0.5) == "S"
    assert len(s.cells()) == 4 and s.source_cells() == s.cells()


@pytest.mark.parametrize("patch, expected", [
    ({"trainig": {}}, "trainig: unknown field (did you mean 'training'?)"),
    ({"training": {"rnak": 8}}, "training.rnak: unknown field (did you mean 'rank'?)"),
    ({"training": {"rank": 0}}, "training.rank: Input should be greater than or equal to 1"),
    ({"grid": {"tasks": ["arc_chalenge"], "languages": ["en"]}}, "did you mean 'arc_challenge'?"),
    ({"models": []}, "models: List should have at least 1 item"),
])
def test_errors_are_one_line_with_field_path(patch, expected):
    with pytest.raises(StudyError) as info:
        parse_study({**BASE, **patch}, "study.toml")
    message = str(info.value)
    assert message.startswith("study.toml: ") and expected in message and "\n" not in message


def test_load_study_errors(tmp_path):
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n", encoding="utf-8")
    with pytest.raises(StudyError, match="not valid TOML"):
        load_study(bad)


def test_content_hash_is_stable_and_ignores_names():
    a, b = parse_study(BASE), parse_study({**BASE, "name": "other", "description": "x"})
    assert a.content_hash() == b.content_hash() == parse_study(dict(BASE)).content_hash()
    changed = parse_study({**BASE, "seeds": [1]})
    assert changed.content_hash() != a.content_hash()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml")),
                         ids=lambda p: p.name)
def test_examples_parse(path):
    study = load_study(path)
    assert study.cells()
