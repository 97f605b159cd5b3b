"""Few-shot evaluation: parity with lm-evaluation-harness's own few-shot construction on real items.

The harness side is its okapi ARC task (`_arc_yaml` + `utils.process_docs`, by absolute path) with
the dataset pointed at local JSONL files holding our 20 first ARC-es train items (its
`training_split`, the fewshot pool) and our 5 first ARC-es test items, mapped back to the Okapi
m_arc row format. What is compared, for k = 2:

- per-item draws: the harness's sampler seeded 1234 (`set_fewshot_seed`) draws its own examples
  for each test document in order; our `draw(..., sampling="item")` must pick the same ids and our
  rendered contexts must equal the harness's `fewshot_context` strings character for character;
- per-cell draws (our default): the same ids as the harness's first draw; the harness is then given
  those two examples explicitly (`fewshot_config.samples`, sampler `first_n`) and its contexts must
  equal ours for every test item;
- chat template, multi-turn (the harness's default) and single-turn: the harness's
  `fewshot_context(..., apply_chat_template=True, fewshot_as_multiturn=...)` through its HFLM's
  `apply_chat_template` on the tiny model's tokenizer vs. our contexts;
- log-likelihoods: the harness's own requests (`build_all_requests`, num_fewshot 2, its draws)
  scored by its HFLM on the tiny in-process model vs. our engine on our prompts, to 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transfergrid.errors import StudyError, UserError
from transfergrid.fewshot import draw, key_fields, render_fewshot
from transfergrid.records import Cell, Item
from transfergrid.study import parse_study
from transfergrid.versions import HARNESS_MIN_VERSION

K, SEED, N_TEST, N_POOL = 2, 1234, 5, 20


def _okapi_rows(items) -> list[dict]:
    rows = []
    for it in items:
        row = {"id": it.id, "instruction": it.context, "answer": "ABCDE"[it.gold]}
        for j, letter in enumerate("abcde"):
            row[f"option_{letter}"] = it.choices[j] if j < len(it.choices) else None
        rows.append(row)
    return rows


def _harness_task(tmp: Path, train, test, samples=None):
    import datasets
    import lm_eval
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks._yaml_loader import load_yaml

    datasets.disable_progress_bars()
    tmp.mkdir(parents=True, exist_ok=True)
    for name, items in (("train", train), ("test", test)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                   for r in _okapi_rows(items)), encoding="utf-8")
    okapi = Path(lm_eval.__file__).parent / "tasks" / "okapi" / "arc_multilingual"
    (tmp / "task.yaml").write_text(
        f"include: {okapi / '_arc_yaml'}\ntask: tg_fewshot\ntag: []\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  cache_dir: {tmp / 'cache'}\n  data_files:\n    train: {tmp / 'train.jsonl'}\n"
        f"    test: {tmp / 'test.jsonl'}\ntraining_split: train\nvalidation_split: null\ntest_split: test\n",
        encoding="utf-8")
    config = load_yaml(tmp / "task.yaml")
    if samples is not None:  # the given examples, in order, before every document
        process = config["process_docs"]
        config["fewshot_config"] = {"sampler": "first_n", "samples": process(datasets.Dataset.from_list(
            _okapi_rows(samples))).to_list()}
    task = ConfigurableTask(config=config)
    task.set_fewshot_seed(SEED)
    return task


@pytest.fixture(scope="module")
def arc(data_dir, tmp_path_factory):
    pytest.importorskip("lm_eval", minversion=HARNESS_MIN_VERSION)
    from transfergrid.data import load_items

    pool = list(load_items("arc_challenge", "es", "train", data_dir))[:N_POOL]
    test = list(load_items("arc_challenge", "es", "test", data_dir))[:N_TEST]
    return pool, test, tmp_path_factory.mktemp("fewshot")


@pytest.fixture(scope="module")
def harness_lm(tiny):
    from lm_eval.models.huggingface import HFLM

    model, tok = tiny
    return HFLM(pretrained=model, tokenizer=tok, batch_size=1, device="cpu")


def test_per_item_draws_and_contexts_equal_the_harness(arc):
    pool, test, tmp = arc
    task = _harness_task(tmp / "item", pool, test)
    docs = list(task.test_docs())
    theirs = [task.fewshot_context(doc, K) for doc in docs]  # one seeded stream over the documents
    task.set_fewshot_seed(SEED)
    their_ids = [[d["id"] for d in task.sampler.sample(K)] for _ in docs]

    shots = draw(pool, K, SEED, N_TEST, "item")
    assert [[x.id for x in ex] for ex in shots] == their_ids
    assert len({tuple(ids) for ids in their_ids}) > 1  # the stream really differs per item
    ours = [render_fewshot(it, ex, "cloze").context for it, ex in zip(test, shots)]
    assert ours == theirs


def test_per_cell_draw_is_the_harness_first_draw_and_renders_as_the_harness(arc):
    pool, test, tmp = arc
    shots = draw(pool, K, SEED, N_TEST, "cell")
    assert all(ex == shots[0] for ex in shots)
    first = _harness_task(tmp / "first", pool, test)
    assert [x.id for x in shots[0]] == [d["id"] for d in first.sampler.sample(K)]

    task = _harness_task(tmp / "cell", pool, test, samples=shots[0])
    theirs = [task.fewshot_context(doc, K) for doc in task.test_docs()]
    ours = [render_fewshot(it, shots[0], "cloze").context for it in test]
    assert ours == theirs
    assert ours[0].count("\n\nQuestion: ") == K  # k examples, then the item


@pytest.mark.parametrize("multiturn", [True, False])
def test_chat_template_contexts_equal_the_harness(arc, tiny, harness_lm, multiturn):
    pool, test, tmp = arc
    _, tok = tiny
    task = _harness_task(tmp / f"chat{multiturn}", pool, test)
    shots = draw(pool, K, SEED, N_TEST, "item")
    theirs = [task.fewshot_context(doc, K, apply_chat_template=True, fewshot_as_multiturn=multiturn,
                                   chat_template=harness_lm.apply_chat_template) for doc in task.test_docs()]
    ours = [render_fewshot(it, ex, "cloze", chat_template=True, tokenizer=tok, multiturn=multiturn).context
            for it, ex in zip(test, shots)]
    assert ours == theirs
    assert ours[0].count("<|assistant|>") == (K + 1 if multiturn else 1)


def test_loglikelihoods_equal_the_harness_requests(arc, tiny, harness_lm):
    from transfergrid.scoring import score_variants

    pool, test, tmp = arc
    model, tok = tiny
    task = _harness_task(tmp / "ll", pool, test)
    task.set_config("num_fewshot", K)
    task.build_all_requests(rank=0, world_size=1)
    instances = sorted(task.instances, key=lambda r: (r.doc_id, r.idx))
    lls = [ll for ll, _ in harness_lm.loglikelihood(instances, disable_tqdm=True)]
    theirs: dict[int, list[float]] = {}
    for inst, ll in zip(instances, lls):
        theirs.setdefault(inst.doc_id, []).append(ll)

    shots = draw(pool, K, SEED, N_TEST, "item")
    prompts = [render_fewshot(it, ex, "cloze") for it, ex in zip(test, shots)]
    assert [p.context for p in prompts] == [instances[i].args[0] for i in range(len(instances))
                                            if instances[i].idx == 0]
    ours = score_variants(model, tok, [None], test, "cloze", prompts=prompts)[None]
    for i, score in enumerate(ours):
        assert score.loglik == pytest.approx(theirs[i], abs=1e-4)


# --- the study option --------------------------------------------------------------------------
def _study(**evaluation):
    return parse_study({"name": "fs", "models": [{"id": "t", "source": "tiny:"}],
                        "grid": {"tasks": ["arc_challenge"], "languages": ["en", "es"]},
                        "splits": {"train": 12, "test": 4}, "evaluation": evaluation})


class _Data:
    """A StudyData stand-in: 10 train and 4 test items per cell (parallel ids)."""

    def items(self, cell, split):
        n = 10 if split == "train" else 4
        return [Item(f"{split}{i}", cell.task, cell.lang, f"q{i}?", ("a", "b"), 0, {}) for i in range(n)]


def test_key_fields_carry_k_seed_and_the_drawn_ids():
    cells = [Cell("arc_challenge", "en"), Cell("arc_challenge", "es")]
    assert key_fields(_study(), _Data(), cells) is None  # zero-shot keys are unchanged
    fields = key_fields(_study(fewshot=3), _Data(), cells)
    assert fields["k"] == 3 and fields["seed"] == SEED and fields["sampling"] == "cell"
    ids = fields["examples"]["arc_challenge:en"]
    assert len(ids) == 3 and all(i.startswith("train") for i in ids)
    assert fields["examples"]["arc_challenge:es"] == ids  # parallel manifests: the same examples
    other = key_fields(_study(fewshot=3, fewshot_seed=7), _Data(), cells)
    assert other["examples"] != fields["examples"]
    item = key_fields(_study(fewshot=3, fewshot_sampling="item"), _Data(), cells)
    assert isinstance(item["examples"]["arc_challenge:en"], str)  # a digest of the per-item stream


def test_eval_keys_change_with_fewshot_and_train_keys_do_not():
    from transfergrid.plan import EVAL, TRAIN, build_jobs

    def keys(study):
        fs = key_fields(study, _Data(), study.target_cells())
        jobs = build_jobs(study, lambda task: "m", lambda source: "fp", fs)
        return {kind: [j.key for j in jobs if j.kind == kind] for kind in (TRAIN, EVAL)}

    zero, two, two_seed = keys(_study()), keys(_study(fewshot=2)), keys(_study(fewshot=2, fewshot_seed=5))
    assert zero[TRAIN] == two[TRAIN] == two_seed[TRAIN]
    assert not set(zero[EVAL]) & set(two[EVAL]) and not set(two[EVAL]) & set(two_seed[EVAL])
    with pytest.raises(ValueError, match="examples' ids"):
        build_jobs(_study(fewshot=2), lambda task: "m", lambda source: "fp")
    assert _study().content_hash() == _study(fewshot=0, fewshot_seed=9).content_hash()
    assert _study().content_hash() != _study(fewshot=2).content_hash()


def test_study_errors_are_one_line():
    with pytest.raises(StudyError, match="fewshot_as_multiturn = true needs chat_template"):
        _study(fewshot=2, fewshot_as_multiturn=True)
    with pytest.raises(StudyError, match="evaluation.fewshot"):
        _study(fewshot=-1)
    with pytest.raises(UserError, match=r"arc_challenge:en: evaluation.fewshot = 11 needs 11 train items"):
        key_fields(_study(fewshot=11), _Data(), [Cell("arc_challenge", "en")])
