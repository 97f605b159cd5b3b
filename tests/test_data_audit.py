"""`transfergrid data audit`: are the items of one id the same question in every language?"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfergrid.cli.app import main
from transfergrid.data.audit import (
    audit_manifest,
    audit_study,
    audit_warnings,
    summarize,
)
from transfergrid.study import parse_study

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()
OKAPI_TQA = SHARED / "okapi" / "m_truthfulqa"
DNR = SHARED / "dnr_manifests"
OKAPI_LANGS = ["ar", "bn", "de", "es", "fr", "hi", "id", "it", "pt", "zh"]


def tqa_row(question, n_mc1=3, n_mc2=2):
    return {"question": question, "mc1_targets_choices": [f"{question}{k}" for k in range(n_mc1)],
            "mc1_targets_labels": [1] + [0] * (n_mc1 - 1), "mc2_targets_choices": ["x"] * n_mc2,
            "mc2_targets_labels": [1] + [0] * (n_mc2 - 1)}


@pytest.fixture
def layout(tmp_path):
    """de: rows a b c d; es: the same, but the translator dropped row b (rows shift by one)."""
    shapes = [(3, 2), (4, 2), (3, 5), (2, 2)]
    for lang, keep in (("de", [0, 1, 2, 3]), ("es", [0, 2, 3])):
        path = tmp_path / "tqa" / lang / "val.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(tqa_row(f"{lang}{k}", *shapes[k])) + "\n" for k in keep), encoding="utf-8")
    (tmp_path / "truthfulqa.csv").write_text("split,id\ntrain,0\ntrain,1\ntest,2\ntest,3\n", encoding="utf-8")
    return tmp_path


def test_row_shift_is_found(layout):
    rows = audit_manifest(layout / "truthfulqa.csv", "truthfulqa_mc1", layout, ["de", "es"],
                          source=str(layout / "tqa"), pivot="de")
    assert [(r.lang, r.ids, r.missing, r.differ, r.examples) for r in rows] == [("es", 4, 1, 2, ("1", "2"))]
    assert summarize(rows) == [("truthfulqa_mc1: the same id is not the same question in every language: of 4 ids, "
                                "the item's structure differs from the de item's in es 2 (transfergrid data audit)")]


def test_warnings_for_a_study(layout):
    study = parse_study({"name": "t", "models": [{"id": "m", "source": "bundled:x"}],
                         "grid": {"tasks": ["truthfulqa_mc1"], "languages": ["de", "es"]},
                         "data": {"sources": {"truthfulqa_mc1": str(layout / "tqa")}},
                         "splits": {"manifests": str(layout)}})
    rows = audit_study(study, layout, pivot="de")
    assert [(r.missing, r.differ) for r in rows] == [(1, 2)]
    assert audit_warnings(study, layout, pivot="de") == summarize(rows)
    broken = study.model_copy(update={"data": study.data.model_copy(update={"sources": {"truthfulqa_mc1": "nowhere"}})})
    [line] = audit_warnings(broken, layout)
    assert line.startswith("truthfulqa_mc1: could not audit the parallel ids: data source 'nowhere'")


def test_cli_manifest_needs_a_task_and_strict_fails(layout, capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "audit", str(layout / "truthfulqa.csv"), "--data-dir", str(layout)])
    assert info.value.code == 2 and "needs --task" in capsys.readouterr().err
    args = ["data", "audit", str(layout / "truthfulqa.csv"), "--task", "truthfulqa_mc1", "--languages", "de,es",
            "--source", str(layout / "tqa"), "--pivot", "de", "--data-dir", str(layout)]
    main(args)
    assert "in es 2" in capsys.readouterr().out.replace("\n", " ")
    with pytest.raises(SystemExit) as info:
        main([*args, "--strict"])
    assert info.value.code == 2


@pytest.mark.skipif(not (DNR / "truthfulqa.csv").is_file() or not OKAPI_TQA.is_dir(),
                    reason="needs ../shared/data/dnr_manifests and okapi/m_truthfulqa")
def test_reference_truthfulqa_row_ids_on_the_okapi_files():
    """Issue 12's figures: with the reference's row-order ids, the row of the same index has
    another shape than the German row for most of its 700 ids."""
    rows = audit_manifest(DNR / "truthfulqa.csv", "truthfulqa_mc1", SHARED, OKAPI_LANGS,
                          source=str(OKAPI_TQA), pivot="de")
    assert {r.lang: r.differ for r in rows} == {"ar": 667, "hi": 639, "id": 601, "es": 542, "it": 504,
                                                "zh": 480, "bn": 405, "fr": 293, "pt": 179}
    assert all(r.ids == 700 and r.missing == 0 for r in rows)


@pytest.mark.skipif(not (DNR / "arc_challenge.csv").is_file(), reason="needs ../shared/data/dnr_manifests")
def test_reference_arc_ids_are_parallel(data_dir):
    rows = audit_manifest(DNR / "arc_challenge.csv", "arc_challenge", data_dir, ["en", *OKAPI_LANGS])
    assert len(rows) == 10 and all(r.missing == 0 and r.differ == 0 for r in rows)
