"""Study 2 (relatedness vs task alignment): the store → relatedness_items.parquet (every per-item
record) → the per-item frame (`analysis.relatedness.ITEM_COLUMNS`) → `report.relatedness_html`
(tables, figures, report.html). The analysis and figures live there; this module only composes.

Every evaluation job of a relatedness study names its `variant` in its spec: "base" (the base
model, numbered prompt), "ft" (the adapter trained on the pooled source languages, one per seed)
or "cot" (the base model scoring its answer after its own reasoning). Each job stores one Parquet
of per-item records per target language (`records.ItemScore` / `cot.CotItemScore` dicts; the CoT
ones carry the reasoning text). The variant is read off the job, not off the store's cell row, so
the base and CoT evaluations of one model (both without an adapter) never mix.

`item_records` keeps every stored column (reasoning included) for `relatedness_items.parquet`;
`item_frame` is the narrow frame the analysis reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from transfergrid.analysis.relatedness import ITEM_COLUMNS, resolve_groups
from transfergrid.errors import UserError
from transfergrid.itemfiles import read_cell
from transfergrid.plan import EVAL, Job
from transfergrid.studies.base import REPORT_DIR, Analysis, Exported
from transfergrid.studies.publish import moved, staged, write_csv, write_parquet

ITEMS_FILE = "relatedness_items.parquet"  # in the study's output dir: what `analyze` reads
LEAD_COLUMNS = ["model", "language", "group", "item", "variant", "seed", "correct"]


def variant_of(job: Job) -> str:
    """'base', 'ft' or 'cot' of an evaluation job (an adapter evaluation without a name is 'ft')."""
    variant = job.spec.get("variant")
    if variant is None:
        return "base" if job.adapter_key is None else "ft"
    return str(variant)


def group_of(study) -> dict[str, str]:
    """language -> its target group (explicit groups, or 'auto' by language family)."""
    return {lang: group for group, langs in resolve_groups(study.relatedness).items() for lang in langs}


def item_records(study, store, jobs: Sequence[Job]) -> pd.DataFrame:
    """Every stored per-item record of the study's evaluation jobs: the ITEM_COLUMNS first, then
    the stored fields (id, task, gold, loglik, pred, reasoning, ...) and the job key."""
    evals = {j.key: j for j in jobs if j.kind == EVAL}
    groups = group_of(study)
    frames = []
    for _, row in store.cell_scores(evals).iterrows():
        job = evals[row["job_key"]]
        variant = variant_of(job)
        stored = read_cell(store.root, row["items_path"], row["cell"]).to_pandas()
        frame = pd.DataFrame({
            "model": job.model,
            "language": row["lang"],
            "group": groups.get(row["lang"]),
            "item": stored["id"].astype(str),
            "variant": variant,
            "seed": job.spec.get("seed") if variant == "ft" else None,
            "correct": stored["correct"].astype(bool),
        })
        extra = stored.drop(columns=[c for c in ("correct", "lang") if c in stored.columns])
        frames.append(pd.concat([frame, extra.reset_index(drop=True)], axis=1).assign(job_key=job.key))
    if not frames:
        return pd.DataFrame(columns=LEAD_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["seed"] = out["seed"].astype("Int64")  # None for base / cot rows
    return out


def item_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The analysis frame (ITEM_COLUMNS) of `item_records` output or a file written from it."""
    missing = [c for c in ITEM_COLUMNS if c not in records.columns]
    if missing:
        raise UserError(f"per-item records: missing column(s) {', '.join(missing)}; expected {', '.join(ITEM_COLUMNS)}")
    frame = records[list(ITEM_COLUMNS)].copy()
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def read_item_frame(path) -> pd.DataFrame:
    """The analysis frame from an exported `relatedness_items.parquet`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no exported per-item results")
    try:
        records = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    frame = item_frame(records)
    if frame.empty or not (frame["variant"] == "base").any():
        raise UserError(f"{path}: no base-model results to compare against; run the study first")
    return frame


def write_analysis(study, frame: pd.DataFrame, out: Path) -> Analysis:
    """Every study-2 table, figure and report.html of the per-item `frame` into `out` (built aside
    and moved into place)."""
    from transfergrid.report.relatedness_html import write_relatedness_analysis

    with staged(out) as staging:
        tables, figures, _ = write_relatedness_analysis(study, frame, staging)
    return Analysis(Path(out), tables, moved(figures, staging, out), Path(out) / "report.html")


# --- the study kind -----------------------------------------------------------------------------------
class RelatednessStudy:
    name = "relatedness"
    title = "Relatedness"

    def export(self, study, store, jobs: Sequence[Job], out_dir: Path) -> Exported:
        records = item_records(study, store, jobs)
        path = Path(out_dir) / ITEMS_FILE
        write_parquet(records, path)
        return Exported(path, len(records), "item records")

    def export_csv(self, study, store, jobs: Sequence[Job], path: Path, *, with_items: bool = True) -> Exported:
        records = item_records(study, store, jobs)
        write_csv(item_frame(records), path)
        write_parquet(records, path.with_name(path.stem + ".items.parquet"))
        return Exported(path, len(records), "item rows")

    def results_file(self, results_dir: Path) -> Path:
        return Path(results_dir) / ITEMS_FILE

    def analyze(self, study, results_dir: Path, out: Path, *, tolerance: float = 0.0,
                study_file: Path | None = None) -> Analysis:
        """`tolerance` is study 1's win / harm rule; study 2 has none (ignored)."""
        path = self.results_file(results_dir)
        if not path.is_file():
            run = f"transfergrid run {study_file}" if study_file else "transfergrid run"
            raise UserError(f"{path}: no exported per-item results for study {study.name!r}; run `{run}` first")
        return write_analysis(study, read_item_frame(path), out)

    def report(self, study, results_dir: Path) -> Analysis | None:
        frame = item_frame(pd.read_parquet(self.results_file(results_dir)))
        if not (frame["variant"] == "base").any():  # nothing to compare against yet
            return None
        return write_analysis(study, frame, Path(results_dir) / REPORT_DIR)


KIND = RelatednessStudy()
