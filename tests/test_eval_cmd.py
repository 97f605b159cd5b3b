"""`transfergrid eval` on the tiny model: per-item JSONL, printed metrics, one-line errors (exit 2).

Model loading and data loading are replaced by the tiny model and in-memory items, so these tests
exercise the command's own wiring (adapters through the real `AdapterSet`, output, errors).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from transfergrid.models import LoadedModel
from transfergrid.records import Item
from transfergrid.scoring import score_items

ITEMS = [
    Item(f"q{i}", "arc_challenge", "es", f"¿Pregunta número {i} sobre el sistema solar?",
         ("Júpiter", "Marte", "La Tierra", "El Sol"), i % 4)
    for i in range(5)
]


@pytest.fixture
def cli(tiny, monkeypatch):
    from transfergrid import data, models
    from transfergrid.errors import ModelError

    model, tok = tiny

    def load_model(source, **kwargs):
        if source != "tiny":
            raise ModelError(f"unknown model {source!r}")
        return LoadedModel(model=copy.deepcopy(model), tokenizer=tok, fingerprint="tiny",
                           device="cpu", dtype="float32", source=source)

    # only the loaders are stand-ins (raising=True: a renamed loader fails here, not silently);
    # adapters go through the real models.AdapterSet, as in production
    monkeypatch.setattr(models, "load_model", load_model)
    monkeypatch.setattr(data, "resolve_data_dir", lambda value=None, study=None: Path("."))
    monkeypatch.setattr(data, "load_items", lambda task, lang, split, data_dir, source=None: list(ITEMS))

    from transfergrid.cli import main

    def run(*args) -> int:
        try:
            main(list(args))
        except SystemExit as exc:
            return exc.code or 0
        return 0

    return run


def test_eval_writes_items_and_prints_metrics(cli, tiny, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code = cli("eval", "--model", "tiny", "--task", "arc_challenge", "--lang", "es", "--limit", "4",
               "--format", "letters", "--out", str(out))
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = score_items(*tiny, ITEMS[:4], "letters")
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    for row, s in zip(rows, expected):
        assert row["loglik"] == pytest.approx(list(s.loglik), abs=1e-5)
        assert (row["pred"], row["correct"], row["pred_norm"], row["correct_norm"]) == (
            s.pred, s.correct, s.pred_norm, s.correct_norm)
        assert {"gold", "pred_bytes", "correct_bytes"} <= set(row)
    acc = sum(s.correct for s in expected) / 4
    assert f"{acc:.4f}" in capsys.readouterr().out


def test_eval_with_chat_template_flag(cli, tmp_path):
    out = tmp_path / "c.jsonl"
    assert cli("eval", "-m", "tiny", "-t", "arc_challenge", "-l", "es", "--chat-template", "-o", str(out)) == 0
    assert len(out.read_text().splitlines()) == len(ITEMS)


def _lora(model, path: Path):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(3)
    peft_model = get_peft_model(copy.deepcopy(model), cfg)
    peft_model.save_pretrained(path)
    return peft_model.merge_and_unload()


def test_eval_with_adapter_matches_merged_model(cli, tiny, tmp_path):
    model, tok = tiny
    merged = _lora(model, tmp_path / "adapter")
    out = tmp_path / "a.jsonl"
    assert cli("eval", "-m", "tiny", "-t", "arc_challenge", "-l", "es", "--adapter", str(tmp_path / "adapter"),
               "-o", str(out)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row, s in zip(rows, score_items(merged, tok, ITEMS, "cloze"), strict=True):
        assert row["loglik"] == pytest.approx(list(s.loglik), abs=1e-4)


def test_eval_errors_are_one_line_exit_2(cli, tmp_path, capsys):
    from transfergrid.testing import tiny_model

    args = ["eval", "-t", "arc_challenge", "-l", "es", "-o", str(tmp_path / "x.jsonl")]
    assert cli(*args, "-m", "nope") == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert cli(*args, "-m", "tiny", "--adapter", str(tmp_path / "missing")) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli(*args, "-m", "tiny", "--adapter", str(tmp_path / "empty")) == 2
    assert "adapter_config.json" in capsys.readouterr().err
    other, _ = tiny_model(hidden_size=32)  # an adapter trained on another base model
    _lora(other, tmp_path / "other")
    assert cli(*args, "-m", "tiny", "--adapter", str(tmp_path / "other")) == 2
    err = capsys.readouterr().err
    assert "other does not fit this base model" in err and "size mismatch" in err and "Traceback" not in err
    assert cli(*args, "-m", "tiny", "--format", "essay") == 2
    assert not (tmp_path / "x.jsonl").exists()
