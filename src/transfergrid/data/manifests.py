"""Split manifests as files, in the format of the "Donors and Recipients" reference: one CSV per
benchmark with a header `split,id` and one row per item (`train` or `test`); the same ids serve
every language. Validation is not stored: it is drawn from train by the reference's rule
(`reference_validation_split`), so a file fixes all three splits.

Ids in a file are the reference's: ARC's are the Okapi / m_arc ids (`ARC-Challenge/train/X`),
whose last part is our item id (`X`, the AI2 id); every other benchmark's id is our item id.
Files are found as `<task>.csv`, or under the reference's name for the task (`global_mmlu.csv`
for global_mmlu_lite, `truthfulqa.csv` for truthfulqa_mc1)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from math import ceil
from pathlib import Path

from transfergrid.data.reference import NAMES as REFERENCE_NAMES
from transfergrid.errors import DataError, UserError

CSV_SPLITS = ("train", "test")
# benchmarks whose file ids carry the raw split in front of our item id
SPLIT_PREFIXED = {"arc_challenge": "ARC-Challenge"}


@dataclass(frozen=True)
class ManifestFile:
    """One manifest file: its train and test ids (as written, file order)."""

    path: Path
    train: tuple[str, ...]
    test: tuple[str, ...]


def manifest_path(directory: str | Path, task: str) -> Path:
    """The manifest file of `task` in `directory`: `<task>.csv`, else the reference's name."""
    directory = Path(directory)
    names = list(dict.fromkeys([f"{task}.csv", f"{REFERENCE_NAMES.get(task, task)}.csv"]))
    for name in names:
        if (directory / name).is_file():
            return directory / name
    if not directory.is_dir():
        raise UserError(f"splits.manifests: no such directory {directory}")
    raise UserError(f"splits.manifests: no manifest for {task} in {directory} (expected {' or '.join(names)})")


def read_manifest_csv(path: str | Path) -> ManifestFile:
    """A `split,id` file, checked: the header, known splits, no empty or repeated id, train and
    test disjoint, both present."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("manifest file not found", file=path) from None
    except UnicodeDecodeError:
        raise DataError("manifest is not UTF-8 text", file=path) from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header != ["split", "id"]:
        raise DataError(f"expected the header 'split,id', got {','.join(header or [])!r}", file=path, line=1)
    ids: dict[str, list[str]] = {s: [] for s in CSV_SPLITS}
    where: dict[str, tuple[str, int]] = {}
    for n, row in enumerate(rows, 2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(f"expected 2 comma-separated columns, got {len(row)}", file=path, line=n)
        split, item_id = row[0].strip(), row[1].strip()
        if split not in ids:
            raise DataError(f"split {split!r} is not one of {', '.join(CSV_SPLITS)}", file=path, line=n, field="split")
        if not item_id:
            raise DataError("empty id", file=path, line=n, field="id")
        if item_id in where:
            first_split, first_line = where[item_id]
            what = "repeated" if first_split == split else f"in both {first_split} (line {first_line}) and"
            raise DataError(f"id {what} {split}", file=path, line=n, item=item_id, field="id")
        where[item_id] = (split, n)
        ids[split].append(item_id)
    for split in CSV_SPLITS:
        if not ids[split]:
            raise DataError(f"no {split} ids", file=path)
    return ManifestFile(path, tuple(ids["train"]), tuple(ids["test"]))


def write_manifest_csv(path: str | Path, train: list[str], test: list[str]) -> Path:
    """Write a `split,id` file atomically (train rows, then test rows)."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["split", "id"])
    writer.writerows([("train", i) for i in train] + [("test", i) for i in test])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return path


# --- ids ---------------------------------------------------------------------------------------
def item_id(task: str, file_id: str) -> str:
    """Our item id for a manifest file's id."""
    return file_id.rsplit("/", 1)[-1] if task in SPLIT_PREFIXED else file_id


def file_id(task: str, item: str, raw_split: str | None) -> str:
    """The reference's id for our item id (ARC: with the raw split it comes from)."""
    if task in SPLIT_PREFIXED and raw_split:
        return f"{SPLIT_PREFIXED[task]}/{raw_split}/{item}"
    return item


def reference_order(ids) -> list[str]:
    """The order `datasets.Dataset.sort(id_column)` gives the reference's split: TruthfulQA's
    `truth_id` is an integer column (numeric order), every other id a string (code-point order)."""
    ids = list(ids)
    if ids and all(i.isdigit() for i in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def reference_validation_split(ids, fraction: float = 0.1, seed: int = 42) -> tuple[list[str], list[str]]:
    """(train, validation) exactly as the reference's `ds.train_test_split(test_size=fraction,
    seed=seed)` on its train split sorted by id: a NumPy PCG64 permutation of the rows; the first
    ceil(fraction * n) rows are validation, the rest train, both in permutation order.
    For 300 ids that is 270 / 30, for 215 it is 193 / 22 (validation rounds up)."""
    import numpy as np

    order = reference_order(ids)
    if not order:
        return [], []
    n_val = ceil(fraction * len(order)) if fraction > 0 else 0
    permutation = np.random.default_rng(seed).permutation(len(order))
    validation = [order[k] for k in permutation[:n_val]]
    train = [order[k] for k in permutation[n_val:]]
    return train, validation


def split_ids(manifest: ManifestFile, task: str, fraction: float = 0.1, seed: int = 42) -> dict[str, list[str]]:
    """Our item ids of a manifest file by split (train, validation, test), without reading any
    data: validation by the reference's rule, test in the reference's order."""
    train, validation = reference_validation_split(manifest.train, fraction, seed)
    return {"train": [item_id(task, i) for i in train], "validation": [item_id(task, i) for i in validation],
            "test": [item_id(task, i) for i in reference_order(manifest.test)]}
