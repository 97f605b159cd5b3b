"""The benchmark registry, the data root, and `load_items` (cached per process)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from transfergrid.data import (
    arc,
    belebele,
    global_mmlu,
    hellaswag,
    mgsm,
    mmlu,
    truthfulqa,
    xcopa,
    xstorycloze,
)
from transfergrid.data.base import Benchmark, unknown
from transfergrid.errors import UserError
from transfergrid.records import Item

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    arc.BENCHMARK, mmlu.BENCHMARK, truthfulqa.BENCHMARK, hellaswag.BENCHMARK, global_mmlu.BENCHMARK,
    xstorycloze.BENCHMARK, xcopa.BENCHMARK, belebele.BENCHMARK, mgsm.BENCHMARK,
)}
BENCHMARK_NAMES = list(BENCHMARKS)
ENV_VAR = "TRANSFERGRID_DATA"


def benchmark_names() -> list[str]:
    return list(BENCHMARK_NAMES)


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise unknown("benchmark", name, BENCHMARKS, "data")
    return BENCHMARKS[name]


def resolve_data_dir(cli_value: str | Path | None = None, study=None) -> Path:
    """--data-dir, else $TRANSFERGRID_DATA, else the study's data.dir, else ../shared/data
    (relative to the working directory, or to the repository this package lives in)."""
    for value, what in ((cli_value, "--data-dir"), (os.environ.get(ENV_VAR), f"${ENV_VAR}"),
                        (study.data.dir if study is not None else None, "data.dir in the study file")):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise UserError(f"data directory {path} (from {what}) does not exist")
            return path.resolve()
    repo = Path(__file__).resolve().parents[3]
    for candidate in (Path.cwd() / ".." / "shared" / "data", repo / ".." / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    raise UserError(f"no benchmark data found: pass --data-dir, set ${ENV_VAR}, set data.dir in the study "
                    f"file, or place the data in ../shared/data")


def load_items(task: str, lang: str, split: str, data_dir: str | Path, source: str | None = None) -> list[Item]:
    """The items of one (task, language, split), parsed once per process."""
    return list(_load(task, lang, split, Path(data_dir).resolve(), source))


@lru_cache(maxsize=1024)
def _load(task: str, lang: str, split: str, root: Path, source: str | None) -> tuple[Item, ...]:
    bench = get_benchmark(task)
    if source is None:
        langs = bench.languages(root)
        if lang not in langs:
            if not langs and task == "hellaswag":
                return tuple(bench.load(lang, split, root, None))  # explains where hellaswag comes from
            raise unknown("language", lang, langs, f"{task} in {root}")
    splits = bench.splits(lang, root)
    if split not in splits:
        raise unknown("split", split, splits, f"{task}:{lang}")
    return tuple(bench.load(lang, split, root, source))
