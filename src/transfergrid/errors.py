"""User-facing errors: one clear line, exit status 2, no traceback (see cli.main)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Something the user can fix: a bad study file, a bad data row, a missing model."""

    exit_code = 2


class DataError(UserError):
    """A problem in a benchmark file, located by file, line or item, and field."""

    def __init__(self, message: str, *, file: object = None, line: int | None = None,
                 item: str | None = None, field: str | None = None):
        where = []
        if file is not None:
            where.append(f"{file}" + (f":{line}" if line is not None else ""))
        if item is not None:
            where.append(f"item {item}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.file, self.line, self.item, self.field = file, line, item, field


class StudyError(UserError):
    """An invalid study file."""


class ModelError(UserError):
    """A model or adapter that cannot be resolved or does not fit its base model."""


class DivergenceError(Exception):
    """Training produced a NaN or inf loss (a job failure, not a user error)."""


# --- a pydantic validation error as one line ---------------------------------------------------------
def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validation_line(err: dict, root: type, hint: Callable[[tuple], str | None] | None = None) -> str:
    """One pydantic error of validating `root` as "field.path: what was expected". `hint(loc)` may
    name where an unknown field belongs; else the closest allowed name is suggested."""
    loc = tuple(err.get("loc", ()))
    path = ".".join(str(p) for p in loc) or "(top level)"
    if err.get("type") == "extra_forbidden":
        allowed = _allowed_fields(root, loc[:-1])
        home = hint(loc) if hint else None
        suggestion = f" (did you mean {home!r}?)" if home else did_you_mean(str(loc[-1]), allowed)
        return f"{path}: unknown field{suggestion}; allowed: {', '.join(allowed)}"
    if err.get("type") == "missing":
        return f"{path}: required field is missing"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    return f"{path}: {msg}" + (f" (got {err['input']!r})" if err.get("type") != "value_error"
                               and not isinstance(err.get("input"), dict) else "")


def _allowed_fields(model: type, loc: tuple) -> list[str]:
    """The keys allowed at `loc` (the parent of an unknown key): a model's fields, or its
    `allowed_keys()` where it takes more spellings."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int) or cur is None:
            continue
        field = cur.model_fields.get(part) if _is_model(cur) else None
        if field is None:
            return []
        cur = _first_model(field.annotation)
    if not _is_model(cur):
        return []
    return cur.allowed_keys() if hasattr(cur, "allowed_keys") else sorted(cur.model_fields)


def _is_model(cls: Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "model_fields")


def _first_model(ann: Any) -> type | None:
    if _is_model(ann):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None
