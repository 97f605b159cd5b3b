"""Parity with lm-evaluation-harness 0.4.13 on the real bundled model and real ARC items.

The harness runs its own okapi ARC task (`_arc_yaml` + `utils.process_docs`) through
`simple_evaluate(model="hf", pretrained=<local dir>)`, fully offline, on the very items our data
layer loads; our engine must give the same per-item predictions and the same acc / acc_norm,
also with the chat template (the harness's `apply_chat_template=True`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from transfergrid.versions import HARNESS_MIN_VERSION

pytestmark = pytest.mark.real_model

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 20


def _common():
    spec = importlib.util.spec_from_file_location("tg_bench_common", REPO / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tg_bench_common", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(data_dir, tmp_path_factory):
    pytest.importorskip("lm_eval", minversion=HARNESS_MIN_VERSION)
    for module, name in (("transfergrid.models", "load_model"), ("transfergrid.data", "load_items")):
        if not hasattr(pytest.importorskip(module), name):
            pytest.skip(f"{module}.{name} is not available")
    common = _common()
    model, tok, hf_dir = common.load_model_and_dir()
    items = common.arc_items("es", N_ITEMS, data_dir)
    task_dir = tmp_path_factory.mktemp("harness_tasks")
    tasks = common.write_harness_tasks(items, task_dir)
    return common, model, tok, hf_dir, items, task_dir, tasks


@pytest.mark.parametrize(("fmt", "chat"), [("cloze", False), ("letters", False), ("cloze", True)])
def test_predictions_match_harness(setup, fmt, chat):
    from transfergrid.prompts import render
    from transfergrid.scoring import cell_metrics, score_items

    common, model, tok, hf_dir, items, task_dir, tasks = setup
    theirs = common.run_harness(hf_dir, task_dir, tasks[fmt], apply_chat_template=chat)
    ours = score_items(model, tok, items, fmt, chat_template=chat)
    assert len(theirs) == len(ours) == N_ITEMS
    texts = [render(it, fmt, chat_template=chat, tokenizer=tok).choice_texts for it in items]
    agreement = common.compare(ours, theirs, texts)
    # the same continuations are scored: every choice's log-likelihood agrees to float noise
    assert agreement["max_abs_loglik_diff"] < 1e-3, agreement
    assert agreement["pred_agree"] + agreement["ties"] >= N_ITEMS, agreement
    assert agreement["pred_norm_agree"] + agreement["ties"] >= N_ITEMS, agreement
    if agreement["ties"] == 0:
        m = cell_metrics(ours)
        assert m["acc"] == pytest.approx(agreement["acc_harness"])
        assert m["acc_norm"] == pytest.approx(agreement["acc_norm_harness"])
