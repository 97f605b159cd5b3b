"""TruthfulQA multiple choice (mc1): Okapi's machine translations (okapi/m_truthfulqa, the layout of
alexandrainst/m_truthfulqa) plus the English original (truthfulqa_en/mc_task.json).

Neither has ids, so ids come from content:
1. The Okapi languages share one item order with a few items dropped. Each language is aligned to
   a reference language (Spanish where present: it has the most items) by a banded sequence
   alignment whose matches need the same signature (number of mc1 choices, of mc2 choices and of
   true mc2 choices) and prefer similar choice-length profiles. An aligned item gets the
   reference item's id `tqa-NNNN` (its position in the reference file).
2. English is in another order, so each English question is matched to one aligned group by an
   optimal assignment over content similarity (signature, choice-length profile, shared character
   trigrams such as names and numbers, averaged over the group's languages). Matches below a
   similarity floor are left out: such an English item keeps an English-only id `tqa-en-NNNN`.
Items that match nothing keep a language-only id and simply never enter a parallel split.

From `data.sources` (the reference's hub datasets alexandrainst/m_truthfulqa and, for English,
Dr4kl3s/truthfulqa_en_aligned, or local copies in their layouts) ids are the reference's
`truth_id`: the row's 0-based position in the dataset (counted over its splits in order). That
is how the reference pairs languages; whether a row index is one question in every language is
what `transfergrid data audit` measures (it is not, for most rows: see docs/data.md).

Upstream the correct mc1 choice is always first; choices are shuffled by a permutation seeded
from the id, the same in every language, so that a listed format cannot learn "always A".
Every item's meta holds its `shape` (mc1 choices, mc2 choices, true mc2 choices) for the audit."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
from functools import lru_cache
from pathlib import Path

from transfergrid.cache import cache_dir
from transfergrid.data.base import (
    Benchmark,
    Row,
    RowReader,
    _key,
    make_items,
    read_json,
)
from transfergrid.data.sources import source_rows
from transfergrid.errors import DataError
from transfergrid.records import Item

NAME = "truthfulqa_mc1"
FOLDER = Path("okapi") / "m_truthfulqa"
ENGLISH = Path("truthfulqa_en") / "mc_task.json"
REFERENCE = "es"
VERSION = "2"  # of the alignment below; part of the disk cache key
MATCH_FLOOR = 2.0  # English matches scoring below this are not trusted
MATCH_MARGIN = 0.3  # ... or not this far ahead of the runner-up


# --- rows ----------------------------------------------------------------------------------------
class Question:
    """One validated raw row: question, mc1 choices with the gold index, mc2 choices and labels."""

    def __init__(self, row: Row, path: object, english: bool = False):
        r = RowReader(row, path)
        self.line = r.line
        self.question = r.get("question")
        if english:
            mc1, mc2 = r.get("mc1_targets", dict), r.get("mc2_targets", dict)
            self.mc1, labels1 = list(mc1), list(mc1.values())
            self.mc2, self.labels2 = list(mc2), list(mc2.values())
        else:
            self.mc1, labels1 = r.get("mc1_targets_choices", list), r.get("mc1_targets_labels", list)
            self.mc2, self.labels2 = r.get("mc2_targets_choices", list), r.get("mc2_targets_labels", list)
        field = "mc1_targets" if english else "mc1_targets_labels"
        if (len(self.mc1) < 2 or len(labels1) != len(self.mc1) or not _labels(labels1)
                or sorted(labels1) != [0] * (len(labels1) - 1) + [1]):
            raise r.error("expected two or more mc1 choices with exactly one label 1", field)
        if not all(isinstance(c, str) and c.strip() for c in self.mc1):
            raise r.error("expected non-empty choice strings", "mc1_targets_choices")
        if not all(isinstance(c, str) for c in self.mc2) or len(self.labels2) != len(self.mc2) or not _labels(self.labels2):
            raise r.error("expected mc2 choice strings, each with a label 0 or 1", "mc2_targets" if english else "mc2_targets_labels")
        self.gold = labels1.index(1)
        self.signature = (len(self.mc1), len(self.mc2), sum(int(x) for x in self.labels2))

    def profile(self) -> list[float]:
        lengths = [len(c) for c in self.mc1]
        total = sum(lengths) or 1
        return [n / total for n in lengths]

    def text(self) -> str:
        return " ".join([self.question, *self.mc2, *self.mc1]).lower()


def _labels(labels: list) -> bool:
    return all(type(x) is int and x in (0, 1) for x in labels)


def _profile_similarity(a: Question, b: Question) -> float:
    if a.signature[0] != b.signature[0]:
        return 0.0
    return 1.0 - 0.5 * sum(abs(x - y) for x, y in zip(a.profile(), b.profile()))


@lru_cache(maxsize=64)
def _okapi_questions(path: Path, _stamp: tuple) -> tuple[Question, ...]:
    return tuple(Question(row, path) for row in read_json(path))


def _questions(path: Path, english: bool = False) -> tuple[Question, ...]:
    if english:
        return _english_questions(*_key(path))
    return _okapi_questions(*_key(path))


@lru_cache(maxsize=4)
def _english_questions(path: Path, _stamp: tuple) -> tuple[Question, ...]:
    return tuple(Question(row, path, english=True) for row in read_json(path))


# --- alignment ------------------------------------------------------------------------------
def align_sequences(ref: tuple[Question, ...], other: tuple[Question, ...], slack: int = 40) -> dict[int, int]:
    """Order-preserving alignment {other index: ref index}: the most matches of equal signature,
    ties broken by similar choice-length profiles. Banded, since only a few items are dropped."""
    n, m = len(ref), len(other)
    lo, hi = -slack, max(n - m, 0) + slack  # allowed i - j

    def inside(i: int, j: int) -> bool:
        return lo <= i - j <= hi

    score: dict[tuple[int, int], float] = {}

    def get(i: int, j: int) -> float:
        return score.get((i, j), 0.0) if i < n and j < m else 0.0

    def pair(i: int, j: int) -> float | None:
        if ref[i].signature != other[j].signature:
            return None
        return 1.0 + 0.5 * _profile_similarity(ref[i], other[j])

    for i in range(n - 1, -1, -1):
        for j in range(min(m - 1, i - lo), max(-1, i - hi - 1), -1):
            best = max(get(i + 1, j) if inside(i + 1, j) else 0.0, get(i, j + 1) if inside(i, j + 1) else 0.0)
            p = pair(i, j)
            if p is not None:
                best = max(best, p + (get(i + 1, j + 1) if inside(i + 1, j + 1) else 0.0))
            score[(i, j)] = best
    out, i, j = {}, 0, 0
    while i < n and j < m and inside(i, j):
        p = pair(i, j)
        diag = get(i + 1, j + 1) if inside(i + 1, j + 1) else 0.0
        if p is not None and abs(score[(i, j)] - (p + diag)) < 1e-9:
            out[j] = i
            i, j = i + 1, j + 1
        elif inside(i + 1, j) and abs(score[(i, j)] - get(i + 1, j)) < 1e-9:
            i += 1
        else:
            j += 1
    return out


def _trigram_matrix(texts: list[str], vocab: dict[str, int]):
    from scipy.sparse import csr_matrix

    rows, cols, norms = [], [], []
    for r, text in enumerate(texts):
        grams = {text[k:k + 3] for k in range(len(text) - 2)}
        norms.append(max(len(grams), 1) ** 0.5)
        for g in grams:
            c = vocab.get(g)
            if c is not None:
                rows.append(r)
                cols.append(c)
    import numpy as np

    m = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))
    return m, np.array(norms)


def match_english(groups: list[dict[str, Question]], english: tuple[Question, ...]) -> dict[int, int]:
    """{group index: English index} by optimal assignment over content similarity."""
    import numpy as np

    vocab: dict[str, int] = {}
    en_texts = [q.text() for q in english]
    for text in en_texts:
        for k in range(len(text) - 2):
            vocab.setdefault(text[k:k + 3], len(vocab))
    en_m, en_norm = _trigram_matrix(en_texts, vocab)
    langs = sorted({lang for g in groups for lang in g})
    text = np.zeros((len(groups), len(english)))
    shape = np.zeros((len(groups), len(english)))
    count = np.zeros((len(groups), 1))
    en_sig = np.array([q.signature for q in english])
    en_n1 = en_sig[:, 0]
    for lang in langs:
        idx = [gi for gi, g in enumerate(groups) if lang in g]
        qs = [groups[gi][lang] for gi in idx]
        m, norm = _trigram_matrix([q.text() for q in qs], vocab)
        text_sim = (m @ en_m.T).toarray() / np.outer(norm, en_norm)
        sig = np.array([q.signature for q in qs])
        same_sig = (sig[:, None, :] == en_sig[None, :, :]).all(axis=2)
        prof = np.zeros_like(text_sim)
        for k in set(sig[:, 0]):  # length profiles only compare with the same number of choices
            a = np.nonzero(sig[:, 0] == k)[0]
            b = np.nonzero(en_n1 == k)[0]
            if len(a) and len(b):
                pa = np.array([qs[i].profile() for i in a])
                pb = np.array([english[i].profile() for i in b])
                prof[np.ix_(a, b)] = 1.0 - 0.5 * np.abs(pa[:, None, :] - pb[None, :, :]).sum(axis=2)
        text[idx] += text_sim
        shape[idx] += same_sig + prof
        count[idx] += 1
    # Text overlap counts in full (it is near zero for other scripts, high for shared names and
    # numbers); the structural terms are averaged over the group's languages.
    sim = text + shape / np.maximum(count, 1)
    # A different number of mc1 choices means a different (or re-edited) question: never a match.
    group_n1 = np.array([next(iter(g.values())).signature[0] for g in groups])
    sim[group_n1[:, None] != en_n1[None, :]] = -np.inf
    return _mutual_matches(sim)


def _mutual_matches(sim) -> dict[int, int]:
    """Pairs that are each other's clear best match: best in their row and column by at least
    MATCH_MARGIN over the runner-up in both. Anything less stays unmatched (precision over coverage)."""
    import numpy as np

    best_col, best_row = sim.argmax(1), sim.argmax(0)
    top2_row = np.sort(sim, axis=1)[:, -2:]
    top2_col = np.sort(sim, axis=0)[-2:, :]
    out = {}
    for r, c in enumerate(best_col):
        if best_row[c] != r or sim[r, c] < MATCH_FLOOR:
            continue
        if top2_row[r, 1] - top2_row[r, 0] >= MATCH_MARGIN and top2_col[1, c] - top2_col[0, c] >= MATCH_MARGIN:
            out[r] = int(c)
    return out


@lru_cache(maxsize=8)
def _ids(root: Path, stamp: tuple) -> dict[str, list[str]]:
    """Per language, the id of each raw row (in file order). The alignment takes seconds, so its
    result is also kept on disk, keyed by the content of the files it was computed from."""
    paths = sorted((root / FOLDER).glob("*_validation.json")) + [root / ENGLISH]
    digest = hashlib.sha256(VERSION.encode())
    for p in paths:
        if p.is_file():
            digest.update(p.name.encode() + hashlib.sha256(p.read_bytes()).digest())
    cache = cache_dir("data") / f"truthfulqa-ids-{digest.hexdigest()[:20]}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    ids = _compute_ids(root)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(ids), encoding="utf-8")
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs the recomputation
    return ids


def _compute_ids(root: Path) -> dict[str, list[str]]:
    files = {p.name.split("_", 1)[0]: p for p in sorted((root / FOLDER).glob("*_validation.json"))}
    okapi = {lang: _questions(p) for lang, p in files.items()}
    ids: dict[str, list[str]] = {}
    groups: list[dict[str, Question]] = []
    if okapi:
        ref = REFERENCE if REFERENCE in okapi else max(sorted(okapi), key=lambda lang: len(okapi[lang]))
        groups = [{ref: q} for q in okapi[ref]]
        ids[ref] = [f"tqa-{i:04d}" for i in range(len(okapi[ref]))]
        for lang, qs in okapi.items():
            if lang == ref:
                continue
            mapping = align_sequences(okapi[ref], qs)
            ids[lang] = [ids[ref][mapping[j]] if j in mapping else f"tqa-{lang}-{j:04d}" for j in range(len(qs))]
            for j, i in mapping.items():
                groups[i][lang] = qs[j]
    english_path = root / ENGLISH
    if english_path.is_file():
        english = _questions(english_path, english=True)
        matched = {e: g for g, e in match_english(groups, english).items()} if groups and english else {}
        first = next(iter(ids.values()), [])
        ids["en"] = [first[matched[e]] if e in matched else f"tqa-en-{e:04d}" for e in range(len(english))]
    return ids


def _stamp(root: Path) -> tuple:
    paths = sorted((root / FOLDER).glob("*_validation.json")) + [root / ENGLISH]
    return tuple(_key(p)[1] for p in paths)


def shuffled(item_id: str, choices: list[str], gold: int) -> tuple[tuple[str, ...], int]:
    """Choices in an order fixed by the id (the same permutation in every language)."""
    order = list(range(len(choices)))
    random.Random(int(hashlib.sha256(item_id.encode()).hexdigest()[:16], 16)).shuffle(order)
    return tuple(choices[k] for k in order), order.index(gold)


def _items(questions, ids: list[str], lang: str, where: object) -> list[Item]:
    items = []
    for q, item_id in zip(questions, ids):
        choices, gold = shuffled(item_id, q.mc1, q.gold)
        items.append(Item(item_id, NAME, lang, q.question, choices, gold, {"shape": list(q.signature)}))
    return make_items(items, where)


# --- the hub layouts ------------------------------------------------------------------------
# truthfulqa_en_aligned keeps mc1_targets / mc2_targets as {choices, labels}, as a struct or as
# the text pandas wrote for it, with NumPy arrays: "{'choices': array(['a', 'b'], dtype=object), ...}"
_ARRAY = re.compile(r"array\((\[.*?\])(?:\s*,\s*dtype=[^)]*)?\)", re.DOTALL)


def _targets(value, r: RowReader, field: str) -> tuple[list, list]:
    """(choices, labels) of one mc1_targets / mc2_targets value in any of its stored forms."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(_ARRAY.sub(r"\1", value.strip()))
        except (ValueError, SyntaxError):
            raise r.error("expected a {choices, labels} mapping (unparseable text)", field) from None
    if isinstance(value, dict) and set(value) >= {"choices", "labels"}:
        choices, labels = list(value["choices"]), list(value["labels"])
    elif isinstance(value, dict):  # the original mc_task.json: {choice text: label}
        choices, labels = list(value), list(value.values())
    else:
        raise r.error(f"expected a {{choices, labels}} mapping, got {type(value).__name__}", field)
    try:
        return [str(c) for c in choices], [int(x) for x in labels]
    except (TypeError, ValueError):
        raise r.error("labels must be 0 or 1", field) from None


def hub_question(row: Row, where: object) -> Question:
    """One row of m_truthfulqa (`mc1_targets_choices`, ...) or of truthfulqa_en_aligned (`mc1_targets`)."""
    if "mc1_targets_choices" in row:
        return Question(row, where)
    r = RowReader(row, where)
    flat = {"question": row.get("question"), "_line": r.line}
    for name in ("mc1", "mc2"):
        field = f"{name}_targets"
        if row.get(field) is None:
            raise r.error("missing (expected the m_truthfulqa or truthfulqa_en_aligned layout)", field)
        flat[f"{field}_choices"], flat[f"{field}_labels"] = _targets(row[field], r, field)
    return Question(flat, where)


# --- benchmark ------------------------------------------------------------------------------
def languages(root: Path) -> list[str]:
    langs = [p.name.split("_", 1)[0] for p in (root / FOLDER).glob("*_validation.json")]
    return langs + (["en"] if (root / ENGLISH).is_file() else [])


def splits(lang: str, root: Path) -> list[str]:
    return ["validation"]


def load(lang: str, split: str, root: Path, source: str | None) -> list[Item]:
    if source is not None:  # the reference's truth_id: the row's position
        rows, where = source_rows(source, lang, ("val", "validation"), root)
        questions = [hub_question(row, where) for row in rows]
        return _items(questions, [str(row["_row"]) for row in rows], lang, where)
    path = root / ENGLISH if lang == "en" else root / FOLDER / f"{lang}_validation.json"
    if not path.is_file():
        raise DataError("file not found", file=path)
    ids = _ids(root, _stamp(root))[lang]
    return _items(_questions(path, english=lang == "en"), ids, lang, path)


BENCHMARK = Benchmark(NAME, has_norm=False, construction="translated", generative=False,
                      _languages=languages, _splits=splits, _load=load, hf_layout="alexandrainst/m_truthfulqa")
