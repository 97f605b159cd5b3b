"""Parallel splits of a study: which item ids are train / validation / test, fixed by manifests.

Transfer study, per task: test and train ids are drawn (seed `splits.seed`) from the ids present
in every language of the study, disjoint, so every language has the same items; train is then
split into train / validation (`validation_fraction`, seed `validation_seed`).

Relatedness study: test = `test_items` Belebele ids shared by every source and target language,
chosen passage by passage so that no passage of a test question appears in training; train = all
other questions of every source language, pooled (optionally `train_items_per_language` each);
validation is split from it by question id, so one question never sits on both sides.

Manifest files (`[splits] manifests = "DIR"`, see `manifests.py`): a transfer study may instead
take its train and test ids from `DIR/<task>.csv` in the reference's `split,id` format; every id
must then exist in every language of the study. Validation always comes from train by the
reference's rule (`reference_validation_split`: NumPy permutation, seed `validation_seed`).

A manifest is a small JSON object of ids; its hash goes into job keys. A transfer manifest is
written as `<task>.csv` (`split,id`), a relatedness one as `<task>.json`. A manifest stored with
a run is used as it is (results were computed on it) after checking it against the data."""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from transfergrid.data import manifests as files
from transfergrid.data.belebele import passage_key
from transfergrid.data.registry import get_benchmark, load_items
from transfergrid.errors import DataError, UserError
from transfergrid.records import Cell, Item

SPLITS = ("train", "validation", "test")


def manifest_hash(manifest: dict) -> str:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _shuffled(ids, seed: str) -> list:
    out = sorted(ids)
    random.Random(seed).shuffle(out)  # str seeds are hashed with SHA-512: stable across runs
    return out


def _split_validation(ids: list, fraction: float, seed: str) -> tuple[list, list]:
    order = _shuffled(ids, seed)
    n_val = round(len(order) * fraction)
    return order[n_val:], order[:n_val]


@dataclass(frozen=True)
class CellCheck:
    cell: Cell
    train: int
    validation: int
    test: int
    problem: str | None = None


class StudyData:
    """The items of every cell of `study` under `data_dir`, by parallel split manifests."""

    def __init__(self, study, data_dir: str | Path, manifest_dir: str | Path | None = None):
        self.study = study
        self.root = Path(data_dir)
        self.manifest_dir = Path(manifest_dir) if manifest_dir is not None else None
        self._manifests: dict[str, dict] = {}
        self._origin: dict[str, dict[str, str]] = {}  # task -> item id -> raw split (first language)
        manifests = getattr(study.splits, "manifests", None)
        if manifests and study.kind != "transfer":
            raise UserError("splits.manifests: manifest files fix a transfer study's items; a relatedness "
                            "study draws its own (remove the field)")
        self.manifest_files = Path(manifests) if manifests else None
        if self.manifest_files is not None and not self.manifest_files.is_absolute():
            # a study file's path is made absolute by load_study; a profile's is relative to the data root
            self.manifest_files = self.root / self.manifest_files

    # --- raw items --------------------------------------------------------------------------
    def pool(self, task: str, lang: str) -> dict[str, Item]:
        """Every labelled item of one language, over all of the benchmark's raw splits."""
        source = self.study.data.sources.get(task)
        bench = get_benchmark(task)
        out: dict[str, Item] = {}
        for split in bench.splits(lang, self.root):
            for item in load_items(task, lang, split, self.root, source):
                if item.id in out:
                    raise DataError(f"id appears in two raw splits of {task}:{lang}", item=item.id, field="id")
                out[item.id] = item
                self._origin.setdefault(task, {}).setdefault(item.id, split)
        return out

    # --- manifests ----------------------------------------------------------------------------
    def manifest(self, task: str) -> dict:
        if task not in self._manifests:
            if task in self.study.target_only_tasks():
                fresh = self._target_only_manifest(task)
            else:
                fresh = self._relatedness_manifest(task) if self.study.kind == "relatedness" else self._transfer_manifest(task)
            path = self._manifest_path(task)
            if path is not None and path.is_file() and not self._same(task, path, fresh):
                raise DataError("stored manifest does not match the manifest the data and study give now "
                                "(data files or split settings changed?); restore them or start a new output "
                                "directory", file=path)
            self._manifests[task] = fresh
        return self._manifests[task]

    def manifest_hash(self, task: str) -> str:
        return manifest_hash(self.manifest(task))

    def write_manifests(self, directory: str | Path) -> list[Path]:
        """Write one manifest per task (atomically): `{task}.csv` in the reference's `split,id`
        format for a transfer study (train = train + validation), `{task}.json` for a relatedness
        study. An existing file must agree."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for task in [*self.study.tasks, *self.study.target_only_tasks()]:
            manifest = self.manifest(task)
            path = self._manifest_path(task, directory)
            if path.is_file():
                if not self._same(task, path, manifest):
                    raise DataError("stored manifest does not match the manifest the data and study give now "
                                    "(data files or split settings changed?)", file=path)
                continue
            if manifest["kind"] == "transfer":
                train, test = self.file_ids(task)
                files.write_manifest_csv(path, train, test)
            else:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
                tmp.replace(path)
            written.append(path)
        return written

    def file_ids(self, task: str) -> tuple[list[str], list[str]]:
        """(train, test) of a transfer manifest as the reference writes them: its ids (ARC with
        the raw split in front), train including validation, each in the reference's order."""
        return self._file_ids(task, self.manifest(task))

    def _file_ids(self, task: str, m: dict) -> tuple[list[str], list[str]]:
        origin = self._origin.get(task, {})
        train = [files.file_id(task, i, origin.get(i)) for i in (*m["train"], *m["validation"])]
        test = [files.file_id(task, i, origin.get(i)) for i in m["test"]]
        return files.reference_order(train), files.reference_order(test)

    def _manifest_path(self, task: str, directory: Path | None = None) -> Path | None:
        directory = directory if directory is not None else self.manifest_dir
        if directory is None:
            return None
        return directory / (f"{task}.json" if self.study.kind == "relatedness" else f"{task}.csv")

    def _same(self, task: str, path: Path, manifest: dict) -> bool:
        """Whether the stored file at `path` holds `manifest` (a CSV: the same train and test ids)."""
        if path.suffix == ".json":
            return _read_manifest(path) == manifest
        stored = files.read_manifest_csv(path)
        train, test = self._file_ids(task, manifest)
        return sorted(stored.train) == sorted(train) and sorted(stored.test) == sorted(test)

    def _from_file(self, task: str, manifest: files.ManifestFile) -> dict:
        """A transfer manifest from a `split,id` file; every id must exist in every language."""
        sp = self.study.splits
        ids = files.split_ids(manifest, task, sp.validation_fraction, sp.validation_seed)
        train, validation, test = ids["train"], ids["validation"], ids["test"]
        wanted = [*train, *validation, *test]
        missing = {}
        for lang in self.study.languages:
            pool = self.pool(task, lang)
            gone = [i for i in wanted if i not in pool]
            if gone:
                missing[lang] = gone
        if missing:
            detail = ", ".join(f"{lang} {len(ids)} (e.g. {ids[0]})" for lang, ids in missing.items())
            raise UserError(f"{task}: manifest {manifest.path}: ids missing from the data "
                            f"(of {len(wanted)}, per language): {detail}")
        return {"kind": "transfer", "task": task, "from": "file", "validation_fraction": sp.validation_fraction,
                "validation_seed": sp.validation_seed, "train": train, "validation": validation, "test": test}

    def _transfer_manifest(self, task: str) -> dict:
        if self.manifest_files is not None:
            return self._from_file(task, files.read_manifest_csv(files.manifest_path(self.manifest_files, task)))
        sp = self.study.splits
        langs = self.study.languages
        n_train, n_test = sp.sizes(task)
        pools = {lang: set(self.pool(task, lang)) for lang in langs}
        shared = set.intersection(*pools.values())
        if len(shared) < n_train + n_test:
            counts = _overlap_counts(pools)
            raise UserError(f"{task}: {len(shared)} item ids are shared by all of {', '.join(langs)} "
                            f"(items per language, and shared with {langs[0]}: {counts}), fewer than the {n_train} train + {n_test} test "
                            f"needed; lower splits.train / splits.test or drop a language")
        order = _shuffled(shared, f"{sp.seed}/{task}")
        test, train_all = order[:n_test], order[n_test:n_test + n_train]
        # validation as the reference draws it, over the ids a written manifest file would hold
        origin = self._origin.get(task, {})
        back = {files.file_id(task, i, origin.get(i)): i for i in (*train_all, *test)}
        train_file, val_file = files.reference_validation_split(
            [files.file_id(task, i, origin.get(i)) for i in train_all], sp.validation_fraction, sp.validation_seed)
        test_file = files.reference_order(files.file_id(task, i, origin.get(i)) for i in test)
        return {"kind": "transfer", "task": task, "languages": sorted(langs), "seed": sp.seed,
                "train": [back[i] for i in train_file], "validation": [back[i] for i in val_file],
                "test": [back[i] for i in test_file]}

    def _target_only_manifest(self, task: str) -> dict:
        """An extra target's manifest (`grid.extra_targets`): test ids only, shared by its target
        languages; `splits.per_task[task].test` items if set, else up to `splits.test` (all of MGSM's
        250 by default). Drawn as a grid task's test ids; `splits.manifests` does not cover it."""
        sp = self.study.splits
        langs = [c.lang for c in self.study.target_cells() if c.task == task]
        pools = {lang: set(self.pool(task, lang)) for lang in langs}
        shared = set.intersection(*pools.values())
        override = sp.per_task.get(task)
        n_test = override.test if override and override.test else min(sp.test, len(shared))
        if len(shared) < n_test:
            raise UserError(f"{task}: {len(shared)} item ids are shared by all of {', '.join(langs)} "
                            f"({_overlap_counts(pools)}), fewer than splits.per_task.{task}.test = {n_test}")
        origin = self._origin.get(task, {})
        test = _shuffled(shared, f"{sp.seed}/{task}")[:n_test]
        back = {files.file_id(task, i, origin.get(i)): i for i in test}
        test_file = files.reference_order(files.file_id(task, i, origin.get(i)) for i in test)
        return {"kind": "transfer", "task": task, "languages": sorted(langs), "seed": sp.seed,
                "target_only": True, "train": [], "validation": [], "test": [back[i] for i in test_file]}

    def _relatedness_manifest(self, task: str) -> dict:
        r, sp = self.study.relatedness, self.study.splits
        sources, langs = list(r.source_languages), self.study.languages
        pools = {lang: self.pool(task, lang) for lang in langs}
        shared = set.intersection(*(set(p) for p in pools.values()))
        passages = _passage_groups(pools)
        # Whole passages go to test, in a seeded order, until test_items shared questions are in.
        test: list[str] = []
        held_out: set[str] = set()
        for group in _shuffled_groups(passages, f"{sp.seed}/{task}/passages"):
            if len(test) >= r.test_items:
                break
            held_out |= group
            test += sorted(group & shared)[: r.test_items - len(test)]
        if len(test) < r.test_items:
            counts = _overlap_counts({lang: set(p) for lang, p in pools.items()})
            raise UserError(f"{task}: only {len(test)} question ids are shared by all of {', '.join(langs)} "
                            f"(items per language, and shared with {langs[0]}: {counts}), fewer than test_items = {r.test_items}")
        train_ids: dict[str, list[str]] = {}
        for lang in sources:
            ids = _shuffled(set(pools[lang]) - held_out, f"{sp.seed}/{task}/{lang}")
            if r.train_items_per_language is not None:
                if len(ids) < r.train_items_per_language:
                    raise UserError(f"{task}:{lang}: {len(ids)} questions outside the test passages, fewer than "
                                    f"train_items_per_language = {r.train_items_per_language}")
                ids = ids[: r.train_items_per_language]
            train_ids[lang] = ids
        distinct = sorted({i for ids in train_ids.values() for i in ids})
        _, val_ids = _split_validation(distinct, sp.validation_fraction, f"{sp.validation_seed}/{task}")
        val_set = set(val_ids)
        return {"kind": "relatedness", "task": task, "languages": sorted(langs), "seed": sp.seed,
                "test": sorted(test),
                "train": [[lang, i] for lang in sources for i in sorted(train_ids[lang]) if i not in val_set],
                "validation": [[lang, i] for lang in sources for i in sorted(train_ids[lang]) if i in val_set]}

    # --- items ----------------------------------------------------------------------------
    def items(self, cell: Cell, split: str) -> list[Item]:
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
        if cell.task not in self.study.tasks and cell.task not in self.study.target_only_tasks():
            raise UserError(f"{cell}: task {cell.task!r} is not in the study (tasks: {', '.join(self.study.tasks)})")
        manifest = self.manifest(cell.task)
        if manifest["kind"] == "relatedness" and split != "test":
            ids = [i for lang, i in manifest[split] if lang == cell.lang]
        else:
            ids = manifest[split]
        pool = self.pool(cell.task, cell.lang)
        missing = [i for i in ids if i not in pool]
        if missing:
            raise DataError(f"{len(missing)} of the {len(ids)} {split} ids of the manifest are missing from "
                            f"{cell} (first: {missing[0]})", item=missing[0])
        return [pool[i] for i in ids]

    def relatedness_train(self) -> list[Item]:
        return self._pooled("train")

    def relatedness_validation(self) -> list[Item]:
        return self._pooled("validation")

    def _pooled(self, split: str) -> list[Item]:
        if self.study.kind != "relatedness":
            raise UserError("relatedness_train / relatedness_validation need a relatedness study")
        task = self.study.relatedness.benchmark
        pools = {lang: self.pool(task, lang) for lang in self.study.relatedness.source_languages}
        return [pools[lang][i] for lang, i in self.manifest(task)[split]]

    # --- checking -----------------------------------------------------------------------------
    def check(self) -> list[CellCheck]:
        """Every cell's split sizes; a cell that cannot be built carries its problem."""
        from transfergrid.prompts import render

        fmt = self.study.evaluation.format
        rows = []
        for cell in dict.fromkeys([*self.study.cells(), *self.study.target_cells()]):  # + extra targets
            try:
                sizes = [len(self.items(cell, split)) if self._has_split(cell, split) else 0 for split in SPLITS]
                for item in self.items(cell, "test"):
                    render(item, "cloze" if get_benchmark(cell.task).generative else fmt)
                rows.append(CellCheck(cell, *sizes))
            except UserError as exc:
                rows.append(CellCheck(cell, 0, 0, 0, str(exc)))
        return rows

    def _has_split(self, cell: Cell, split: str) -> bool:
        if self.study.kind != "relatedness" or split == "test":
            return True
        return cell.lang in self.study.relatedness.source_languages


def _overlap_counts(pools: dict[str, set[str]]) -> str:
    first = next(iter(pools.values()))
    return ", ".join(f"{lang} {len(ids)}/{len(ids & first)}" for lang, ids in pools.items())


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable manifest: {exc}", file=path) from None
    if not isinstance(data, dict) or not all(isinstance(data.get(s), list) for s in SPLITS):
        raise DataError("a manifest is a JSON object with train, validation and test id lists", file=path)
    return data


def _passage_groups(pools: dict[str, dict[str, Item]]) -> list[set[str]]:
    """Question ids grouped by passage: ids that share a passage in any language are one group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pool in pools.values():
        first: dict[str, str] = {}
        for item_id, item in pool.items():
            key = passage_key(item)
            if key in first:
                parent[find(item_id)] = find(first[key])
            else:
                first[key] = item_id
                find(item_id)
    groups: dict[str, set[str]] = {}
    for item_id in parent:
        groups.setdefault(find(item_id), set()).add(item_id)
    return list(groups.values())


def _shuffled_groups(groups: list[set[str]], seed: str) -> list[set[str]]:
    by_key = {min(g): g for g in groups}
    return [by_key[k] for k in _shuffled(by_key, seed)]
