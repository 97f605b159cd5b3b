"""Atomic outputs: files replaced in one rename, analysis folders built aside and moved into place.

Concurrent runs of one study export too, so a reader never sees half a file; a failed analysis
leaves the previous output folder as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transfergrid.errors import UserError


def write_csv(frame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_parquet(frame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A hidden sibling folder of `out` to write into; on success its entries replace those of
    `out` (tables/, figures/, report.html; other files in `out` are left alone)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        yield staging
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.exists():
            old = staging / f".old-{entry.name}"
            target.rename(old)
            entry.rename(target)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            entry.rename(target)


def moved(paths, staging: Path, out: Path) -> list[Path]:
    """`paths` under `staging` as they are named once published into `out`."""
    return [Path(out) / Path(p).relative_to(staging) for p in paths]
