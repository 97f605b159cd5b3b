"""Store -> the chain-of-thought variant of a transfer grid (`evaluation.cot`), in the released schema.

A CoT study evaluates the base model and every adapter twice on every target cell: zero-shot
(`results.csv`, exactly as without CoT) and with chain-of-thought (`results_cot.csv`: the same
columns, Δ = CoT-fine-tuned − CoT-base). The CoT file is a second file, not rows or a column added
to results.csv, so results.csv keeps reading exactly like the released schema and every analysis
reads either file unchanged.

The CoT jobs are exported by the zero-shot code itself: each is relabelled as its zero-shot twin
("cot" -> "base", "ft-cot" -> "ft"), and in their per-item table the base model's CoT rows (stored
under the variant "cot") become "base", so the uncertainty columns pair CoT-fine-tuned with
CoT-base items.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transfergrid.plan import Job, is_cot

RESULTS_FILE = "results_cot.csv"  # beside results.csv; its per-item table: results_cot.items.parquet


def cot_path(results: Path) -> Path:
    """Where the CoT variant of a results CSV goes: results.csv -> results_cot.csv."""
    return results.with_name(f"{results.stem}_cot{results.suffix}")


def as_zero_shot(jobs: Sequence[Job]) -> list[Job]:
    """The CoT evaluations of `jobs`, each labelled as its zero-shot twin (same key)."""
    return [Job(j.kind, j.key, {**j.spec, "variant": "base" if j.spec["variant"] == "cot" else "ft"})
            for j in jobs if is_cot(j)]


def cot_items_table(study, store, jobs: Sequence[Job]):
    """The per-item table of the CoT evaluations (variant 'base' for the base model's), or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from transfergrid.export import items_table

    table = items_table(study, store, as_zero_shot(jobs))
    if table is None:
        return None
    i = table.schema.get_field_index("variant")
    variant = pc.if_else(pc.equal(table["variant"], "cot"), pa.scalar("base"), table["variant"])
    return table.set_column(i, "variant", variant)


def export_cot_results(study, store, jobs: Sequence[Job], *, table=None):
    """The CoT variant's released-CSV frame (with the uncertainty columns), as `export_results`."""
    import pandas as pd

    from transfergrid.export import export_results

    if table is None:
        table = cot_items_table(study, store, jobs)
    items = pd.DataFrame() if table is None else table.to_pandas()
    return export_results(study, store, as_zero_shot(jobs), items=items)


def write_cot_results(study, store, jobs: Sequence[Job], results: Path, write_csv) -> Path | None:
    """Write the CoT variant beside `results` (<stem>_cot.csv and <stem>_cot.items.parquet);
    None when the study has no CoT variant. `write_csv(frame, path)` writes atomically."""
    if not study.evaluation.cot:  # study.py allows it in transfer studies only
        return None
    from transfergrid.export import write_table

    table = cot_items_table(study, store, jobs)
    frame = export_cot_results(study, store, jobs, table=table)
    path = cot_path(results)
    write_csv(frame, path)
    write_table(table, path.with_name(path.stem + ".items.parquet"))
    return path
