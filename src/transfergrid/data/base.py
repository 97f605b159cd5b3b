"""What every benchmark loader shares: the Benchmark record and file readers that fail with a
located DataError. Sources other than the data root (a local copy of a Hugging Face dataset in
its column layout, or `hf:owner/name` through `datasets`) are in `sources.py`."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from transfergrid.errors import DataError, UserError
from transfergrid.records import Item

Row = dict[str, Any]
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark family. `files` finds the raw files under the data root; `load` turns one
    (language, split) into Items from the root, or from `source` (a local copy or `hf:` dataset)."""

    name: str
    has_norm: bool
    construction: str  # "curated" (human-translated) or "translated" (machine-translated)
    generative: bool
    _languages: Callable[[Path], list[str]]
    _splits: Callable[[str, Path], list[str]]
    _load: Callable[[str, str, Path, str | None], list[Item]]
    hf_layout: str | None = None  # the Hugging Face dataset whose column layout `source` may use

    def languages(self, root: Path) -> list[str]:
        return sorted(self._languages(Path(root)))

    def splits(self, lang: str, root: Path) -> list[str]:
        return list(self._splits(lang, Path(root)))

    def load(self, lang: str, split: str, root: Path, source: str | None = None) -> list[Item]:
        return self._load(lang, split, Path(root), source)


# --- readers ---------------------------------------------------------------------------------
# Parsed files are cached per process (the runner asks for the same cells many times); the key
# includes size and mtime so that a file rewritten in place is read again.
def _key(path: Path) -> tuple[Path, tuple]:
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return path, ()
    return path, (st.st_size, st.st_mtime_ns)


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", file=path) from None


def read_json(path: Path) -> list[Row]:
    return _read_json(*_key(path))


@lru_cache(maxsize=512)
def _read_json(path: Path, _stamp: tuple) -> list[Row]:
    """A JSON file holding a list of objects."""
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON: {exc.msg}", file=path, line=exc.lineno) from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError("expected a JSON list of objects", file=path)
    return data


def read_jsonl(path: Path) -> list[Row]:
    return _read_jsonl(*_key(path))


@lru_cache(maxsize=512)
def _read_jsonl(path: Path, _stamp: tuple) -> list[Row]:
    """A JSON Lines file; each row remembers its line number in `_line`."""
    rows = []
    text = _read_text(path)
    # split on \n only: splitlines() would also break at U+2028 inside JSON strings
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed JSON: {exc.msg}", file=path, line=n) from None
        if not isinstance(row, dict):
            raise DataError("expected a JSON object", file=path, line=n)
        row["_line"] = n
        rows.append(row)
    return rows


def read_tsv(path: Path, header: bool) -> list[Row]:
    return _read_tsv(*_key(path), header)


@lru_cache(maxsize=512)
def _read_tsv(path: Path, _stamp: tuple, header: bool) -> list[Row]:
    """Tab-separated rows (as dicts by header, or by column number without one), `_line` kept."""
    text = _read_text(path)
    lines = list(csv.reader([x.rstrip("\r") for x in text.split("\n")], delimiter="\t", quoting=csv.QUOTE_NONE))
    names = lines[0] if header and lines else None
    rows = []
    for n, cols in enumerate(lines[1:] if header else lines, 2 if header else 1):
        if not any(c.strip() for c in cols):
            continue
        if names is not None:
            if len(cols) != len(names):
                raise DataError(f"expected {len(names)} tab-separated columns, got {len(cols)}", file=path, line=n)
            row = dict(zip(names, cols))
        else:
            row = {i: c for i, c in enumerate(cols)}
        row["_line"] = n
        rows.append(row)
    return rows


def read_parquet(path: Path) -> list[Row]:
    return _read_parquet(*_key(path))


@lru_cache(maxsize=128)
def _read_parquet(path: Path, _stamp: tuple) -> list[Row]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DataError(f"cannot read Parquet: {exc}", file=path) from None
    rows = frame.to_dict(orient="records")
    for n, row in enumerate(rows, 1):
        row["_line"] = n
        for key, value in row.items():
            if hasattr(value, "tolist"):  # numpy arrays from list columns
                row[key] = value.tolist()
    return rows


def read_table(path: Path) -> list[Row]:
    """A local copy of a dataset split: .json (list), .jsonl or .parquet."""
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".parquet":
        return read_parquet(path)
    raise DataError("expected a .json, .jsonl or .parquet file", file=path)


# --- field access ------------------------------------------------------------------------------
class RowReader:
    """Reads one raw row; every problem names the file, line, item and field."""

    def __init__(self, row: Row, path: object, item: str | None = None):
        self.row, self.path, self.item = row, path, item
        self.line = row.get("_line") if isinstance(row, dict) else None

    def error(self, message: str, field: str | None = None) -> DataError:
        return DataError(message, file=self.path, line=self.line, item=self.item, field=field)

    def get(self, key: str, kind: type | tuple = str, *, optional: bool = False) -> Any:
        value = self.row.get(key)
        if value is None or (isinstance(value, str) and kind is str and not value.strip() and not optional):
            if optional:
                return None
            raise self.error("missing or empty", key)
        if kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(f"expected {expected}, got {type(value).__name__} {value!r}", key)
        return value

    def gold(self, value: Any, n_choices: int, field: str, *, letters: bool = False) -> int:
        """A gold answer as an index into the choices (a letter when `letters`, else an int)."""
        if letters:
            text = str(value).strip().upper()
            index = LETTERS.find(text) if len(text) == 1 else -1
        else:
            try:  # 1.5, inf or True are not choice indices
                number = float(value)
                index = int(number) if number.is_integer() and not isinstance(value, bool) else -1
            except (TypeError, ValueError):
                index = -1
        if not 0 <= index < n_choices:
            raise self.error(f"answer {value!r} is not one of the {n_choices} choices", field)
        return index


def make_items(rows: Iterable[Item], path: object) -> list[Item]:
    """Checks what holds for every split: not empty, ids unique."""
    items = list(rows)
    if not items:
        raise DataError("empty split: no items", file=path)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError("duplicate id", file=path, item=item.id, field="id")
        seen.add(item.id)
    return items


# --- sources -----------------------------------------------------------------------------------
def unknown(kind: str, value: str, known: Iterable[str], what: str) -> UserError:
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"{what}: unknown {kind} {value!r}{hint}; available: {', '.join(known) or 'none'}")
