"""training_config.py: the `[training.adapter|optimizer|examples]` tables, the flat spelling of
earlier study files, and job keys that are the same in either spelling and as before the tables."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

from transfergrid.errors import StudyError
from transfergrid.plan import build_jobs
from transfergrid.study import parse_study
from transfergrid.training_config import FLAT, TABLES, TrainingSpec, nest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
BASE = {"name": "s", "models": [{"id": "m", "source": "tiny:"}],
        "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es"]}}

# sha256 over every job key of each example (fake fingerprints and manifest hashes, as `_keys`
# computes them), from the code before the tables existed: the keys must never change silently.
KEYS_BEFORE_TABLES = {
    "donors-recipients-matched.toml": "c93d39abdb8c1cd6", "donors-recipients.toml": "b1c202267afb88cd",
    "fewshot.toml": "367c349ecd6bd4d3", "mgsm-targets.toml": "2dcd99b9d050103e",
    "quickstart.toml": "cd8a300fe63aa53f", "reference-small.toml": "b9b28265d9498da6",
    "relatedness-arabic.toml": "24b5af04848d4b3f", "relatedness-small.toml": "23fea613871f063b",
    "relatedness.toml": "3e0587242b3b9aca",
    "composition.toml": "4a53db28e893e5f3",  # added with the example (source sets); its singles' keys are as ever
    "cot-transfer.toml": "650e58e1670556e9",  # added with the example (evaluation.cot); its zero-shot keys are as ever
}


def _flat(training: dict) -> dict:
    """A `[training]` table in the flat spelling of earlier study files."""
    back = {where: name for name, where in FLAT.items()}
    out = {k: v for k, v in training.items() if k not in TABLES}
    for table in TABLES:
        out.update({back[(table, f)]: v for f, v in training.get(table, {}).items()})
    return out


def _keys(data: dict) -> list[str]:
    study = parse_study(data)
    fewshot = {"k": study.evaluation.fewshot, "examples": ["x"]} if study.evaluation.fewshot else None
    return [j.key for j in build_jobs(study, lambda t: f"m-{t}", lambda s: f"fp-{s}", fewshot)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_keys_are_the_same_in_both_spellings_and_as_before_the_tables(path):
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    training = data.get("training", {})
    flat, tables = _flat(nest(training)), nest(_flat(training))
    assert not set(flat) & set(TABLES) and not set(tables) - set(TABLES)  # really the two spellings
    keys_flat, keys_tables = _keys({**data, "training": flat}), _keys({**data, "training": tables})
    assert keys_flat == keys_tables
    digest = hashlib.sha256("\n".join(keys_flat).encode()).hexdigest()[:16]
    assert digest == KEYS_BEFORE_TABLES[path.name]
    assert parse_study({**data, "training": flat}).content_hash() == parse_study(
        {**data, "training": tables}).content_hash()


def test_every_field_has_one_flat_key_and_the_tables_read_as_the_flat_names():
    fields = [(t, f) for t, cls in TABLES.items() for f in cls.model_fields if (t, f) != ("adapter", "bias")]
    assert sorted(FLAT.values()) == sorted(fields)  # each flat key in exactly one table, none left out
    s = parse_study({**BASE, "training": {"adapter": {"r": 8, "lora_alpha": 16}, "optimizer": {"epochs": 2},
                                          "examples": {"max_lengths": {"arc_challenge": 64}}}})
    t = s.training
    assert (t.rank, t.alpha, t.epochs, t.adapter.r, t.max_length_for("arc_challenge")) == (8, 16, 2, 8, 64)
    assert t == parse_study({**BASE, "training": {"rank": 8, "alpha": 16, "epochs": 2,
                                                  "max_lengths": {"arc_challenge": 64}}}).training
    assert t.model_dump() == t.flat() and TrainingSpec.model_validate(t.model_dump()) == t
    smaller = t.model_copy(update={"batch_size": 3, "auto_batch_size": True})
    assert (smaller.optimizer.batch_size, smaller.auto_batch_size, smaller.rank, t.batch_size) == (3, True, 8, 8)


@pytest.mark.parametrize("training, expected", [
    ({"adapter": {"rank": 8}}, "training.adapter.rank: unknown field (did you mean 'training.adapter.r'?)"),
    ({"r": 8}, "training.r: unknown field (did you mean 'training.adapter.r'?)"),
    ({"optimizer": {"lr": 1e-4}}, "training.optimizer.lr: unknown field; allowed: auto_batch_size, batch_size"),
    ({"rank": 8, "adapter": {"r": 8}}, "training.rank and training.adapter.r are one field; give it once"),
    ({"adapter": {"r": 0}}, "training.adapter.r: Input should be greater than or equal to 1"),
    ({"alpha": 0}, "training.alpha: Input should be greater than 0"),
    ({"examples": {"format": "prose"}}, "training.examples.format: Input should be 'cloze', 'letters' or 'numbers'"),
    ({"adapter": {"target_modules": ["q", "all-linear"]}}, "write target_modules = 'all-linear' (a string"),
    ({"adapter": {"bias": "all"}}, "training.adapter.bias: Input should be 'none'"),
])
def test_training_errors_are_one_line_naming_the_field_as_written(training, expected):
    with pytest.raises(StudyError) as info:
        parse_study({**BASE, "training": training}, "study.toml")
    message = str(info.value)
    assert message.startswith("study.toml: ") and expected in message and "\n" not in message


def test_a_study_file_s_tables_override_a_profile_s_flat_training_field_by_field():
    s = parse_study({**BASE, "profile": "donors-recipients", "training": {"adapter": {"r": 64},
                                                                        "optimizer": {"epochs": 1}}})
    assert (s.training.rank, s.training.alpha, s.training.epochs, s.training.encoding) == (64, 64, 1, "reference")
    with pytest.raises(StudyError, match="training.rank and training.adapter.r are one field"):
        parse_study({**BASE, "profile": "donors-recipients", "training": {"rank": 8, "adapter": {"r": 8}}})


def test_all_linear_adapts_every_linear_layer_but_the_output_layer(tmp_path):
    import torch
    from safetensors.torch import load_file

    from transfergrid.models import load_model
    from transfergrid.records import Item
    from transfergrid.train import train_adapter

    def make_items(n, seed=0):
        return [Item(f"{seed}-{i}", "arc_challenge", "en", f"the sun {i} or the star?", ("sun", "star"), i % 2)
                for i in range(n)]

    s = parse_study({**BASE, "training": {"adapter": {"target_modules": "all-linear", "r": 2},
                                          "optimizer": {"epochs": 1, "batch_size": 4}}})
    assert s.training.flat()["target_modules"] == "all-linear"
    loaded = load_model("tiny:")
    linear = {n.rsplit(".", 1)[-1] for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear)}
    result = train_adapter(loaded, make_items(4), make_items(2, seed=1), s.training, seed=1, fmt="letters",
                           out_dir=tmp_path / "a")
    adapted = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in load_file(str(result.out_dir / "adapter_model.safetensors"))}
    assert adapted == linear - {"lm_head"} and len(adapted) >= 7


def test_a_bumped_encoding_version_changes_every_training_key_and_no_base_evaluation_key(monkeypatch):
    from transfergrid import versions

    study = parse_study(BASE)
    before = build_jobs(study, lambda t: "m", lambda s: "fp")
    monkeypatch.setattr(versions, "ENCODING_VERSION", "2")
    after = build_jobs(study, lambda t: "m", lambda s: "fp")
    pairs = list(zip(before, after, strict=True))
    assert all(a.key != b.key for a, b in pairs if a.kind == "train" or a.adapter_key)  # adapters and their evals
    assert [a.key for a, b in pairs if a.kind == "eval" and not a.adapter_key] == \
        [b.key for a, b in pairs if a.kind == "eval" and not a.adapter_key]
