"""User-facing errors: one clear line, exit status 2, no traceback (see cli.main)."""

from __future__ import annotations


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
