"""Are parallel ids parallel? For every id of a manifest, whether the items of the different
languages are the same question, as far as their structure tells: the number of choices, the
gold position, and what a benchmark records in `meta["shape"]` (TruthfulQA: the number of mc1
choices, of mc2 choices and of true mc2 choices). Each language is compared with one pivot
language. Equal structure is necessary for "the same question", not sufficient: a count of
differing items is a lower bound on the misaligned ones.

`audit_study` / `audit_manifest` return one `AuditRow` per (task, language); `audit_warnings`
turns them into one warning line per task, for callers that only want to say so."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from transfergrid.data import manifests as files
from transfergrid.data.registry import get_benchmark, load_items
from transfergrid.errors import UserError
from transfergrid.records import Item


@dataclass(frozen=True)
class AuditRow:
    task: str
    lang: str
    pivot: str
    ids: int  # ids audited
    missing: int  # of those, absent in this language (or in the pivot)
    differ: int  # present in both, with a structure that differs from the pivot's item
    examples: tuple[str, ...] = ()  # up to three differing ids

    @property
    def compared(self) -> int:
        return self.ids - self.missing


def item_shape(item: Item) -> tuple:
    """What must agree between two translations of one question."""
    return (len(item.choices), item.gold, *tuple((item.meta or {}).get("shape", ())))


def audit_ids(task: str, ids: Iterable[str], pools: dict[str, dict[str, Item]], pivot: str) -> list[AuditRow]:
    """Compare every language's item of each id with the pivot language's item."""
    ids = list(dict.fromkeys(ids))
    if pivot not in pools:
        raise UserError(f"audit: pivot language {pivot!r} is not among {', '.join(pools)}")
    base = pools[pivot]
    rows = []
    for lang, pool in pools.items():
        if lang == pivot:
            continue
        missing = differ = 0
        examples: list[str] = []
        for i in ids:
            if i not in pool or i not in base:
                missing += 1
            elif item_shape(pool[i]) != item_shape(base[i]):
                differ += 1
                if len(examples) < 3:
                    examples.append(i)
        rows.append(AuditRow(task, lang, pivot, len(ids), missing, differ, tuple(examples)))
    return rows


def _pools(task: str, langs: list[str], load: Callable[[str], dict[str, Item]]) -> dict[str, dict[str, Item]]:
    return {lang: load(lang) for lang in langs}


def _pool(task: str, lang: str, root: Path, source: str | None) -> dict[str, Item]:
    bench = get_benchmark(task)
    out: dict[str, Item] = {}
    for split in bench.splits(lang, root):
        for item in load_items(task, lang, split, root, source):
            out.setdefault(item.id, item)
    return out


def manifest_ids(path: str | Path, task: str) -> list[str]:
    """Our item ids of a `split,id` manifest file (train, then test)."""
    m = files.read_manifest_csv(path)
    return [files.item_id(task, i) for i in (*m.train, *m.test)]


def audit_manifest(path: str | Path, task: str, data_dir: str | Path, languages: list[str] | None = None,
                   source: str | None = None, pivot: str | None = None) -> list[AuditRow]:
    """Audit a manifest file's ids for `task` in `languages` (default: every language of the
    benchmark in `data_dir`; a benchmark that only loads from a source needs them named)."""
    root = Path(data_dir)
    bench = get_benchmark(task)
    langs = list(languages or bench.languages(root))
    if len(langs) < 2:
        raise UserError(f"audit: {task} needs two or more languages (got {', '.join(langs) or 'none'}; "
                        f"name them with --languages)")
    pivot = pivot or ("en" if "en" in langs else langs[0])
    pools = _pools(task, langs, lambda lang: _pool(task, lang, root, source))
    return audit_ids(task, manifest_ids(path, task), pools, pivot)


def audit_study(study, data_dir: str | Path, pivot: str | None = None,
                tasks: list[str] | None = None) -> list[AuditRow]:
    """Audit every task of a transfer study on its manifest ids (a manifest file's, or the drawn
    manifest's train, validation and test) in every language of the grid."""
    from transfergrid.data.splits import StudyData

    if study.kind != "transfer":
        raise UserError("audit: a relatedness study has no parallel train ids to audit (its test ids are "
                        "Belebele's shared ids)")
    data = StudyData(study, data_dir)
    langs = study.languages
    pivot = pivot or ("en" if "en" in langs else langs[0])
    rows = []
    for task in tasks or study.tasks:
        if data.manifest_files is not None:
            ids = manifest_ids(files.manifest_path(data.manifest_files, task), task)
        else:
            m = data.manifest(task)
            ids = [*m["train"], *m["validation"], *m["test"]]
        rows += audit_ids(task, ids, _pools(task, langs, lambda lang, t=task: data.pool(t, lang)), pivot)
    return rows


def summarize(rows: list[AuditRow]) -> list[str]:
    """One line per task whose items differ from the pivot in some language."""
    lines = []
    for task in dict.fromkeys(r.task for r in rows):
        bad = sorted((r for r in rows if r.task == task and r.differ), key=lambda r: -r.differ)
        if bad:
            per_lang = ", ".join(f"{r.lang} {r.differ}" for r in bad)
            lines.append(f"{task}: the same id is not the same question in every language: of {bad[0].ids} "
                         f"ids, the item's structure differs from the {bad[0].pivot} item's in {per_lang} "
                         f"(transfergrid data audit)")
    return lines


def audit_warnings(study, data_dir: str | Path, pivot: str | None = None) -> list[str]:
    """Warning lines for a study whose parallel ids do not pair the same questions (empty when
    they do); data that cannot be read gives a line saying it could not be checked."""
    lines = []
    for task in study.tasks:
        try:
            lines += summarize(audit_study(study, data_dir, pivot=pivot, tasks=[task]))
        except UserError as exc:
            lines.append(f"{task}: could not audit the parallel ids: {exc}")
    return lines
