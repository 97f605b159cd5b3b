"""Store -> the released-CSV frame (MISSION.md): one row per (model, source cell, target cell).

Per seed s: score = acc, score_norm = the headline metric (acc_norm where the task has it, else
acc, as `evaluation.metric = "auto"`), delta = 100 × (fine-tuned − base) in percentage points.
Columns report the mean over seeds, the sample standard deviation (ddof = 1; NaN with one seed)
and the standard error std/√n. The base model is evaluated once per model (evaluation is
deterministic) and counts as the same base score for every seed, so its std and SE are 0.
Only rows of the current study's keys are read, so results of an edited study never mix in.
After the released schema's columns (unchanged, in their order) come the per-cell uncertainty
columns computed from the per-item scores (analysis/uncertainty.py). They need every item (21
million at paper size), so the export reads only the id and correctness columns, each item file
once (itemfiles.py: one file per evaluation job), and pairs them block by block
(analysis/paired_blocks.py: the same numbers as `uncertainty.paired_items`, without factorising
every row); the general path remains for anything that does not pair one to one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from transfergrid import itemfiles
from transfergrid.analysis.regimes import regime as cell_regime
from transfergrid.data.registry import get_benchmark
from transfergrid.plan import EVAL, Job, is_cot
from transfergrid.records import Cell

COLUMNS = [
    "model_name", "model_size", "fine_tuned_dataset", "fine_tuned_language", "eval_dataset", "eval_language",
    "regime", "score_mean", "score_std", "score_base_mean", "score_base_std", "score_norm_mean",
    "score_norm_std", "score_norm_base_mean", "score_norm_base_std", "delta_score_mean", "delta_score_std",
    "delta_score_norm_mean", "delta_score_norm_std", "n_seeds", "score_se", "score_base_se", "score_norm_se",
    "score_norm_base_se", "delta_score_se", "delta_score_norm_se",
]


def regime(source: Cell, target: Cell) -> str:
    """MT-ML (the source cell itself), MT-CL, CT-ML or CT-CL (MISSION.md, Regimes)."""
    return cell_regime(source.task, source.lang, target.task, target.lang)


def headline_uses_norm(study, task: str) -> bool:
    """Whether `task`'s headline score is acc_norm (`evaluation.metric`; "auto": where the task has it)."""
    metric = study.evaluation.metric
    if metric != "auto":
        return metric == "acc_norm"
    return bool(get_benchmark(task).has_norm)


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, sample std, standard error) over seeds; std and SE are NaN for a single seed."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, std / math.sqrt(n)


def export_results(study, store, jobs: Sequence[Job] | None = None, data=None, *, items=None, blocks=None):
    """The released-CSV DataFrame of everything the store holds for this study (complete cells:
    a (model, source, target) row needs the base score and at least one fine-tuned seed), followed
    by the per-cell uncertainty columns (`append_uncertainty`), from `items` (export_items' frame)
    when given, else from `blocks` (`item_blocks`, read from the store when not given)."""
    import pandas as pd

    jobs = _jobs(study, jobs, data)
    evals = [j for j in jobs if j.kind == EVAL]
    scores = store.cell_scores((j.key for j in evals), columns=None if items is not None or blocks is not None
                               else [*SCORE_COLUMNS, *BLOCK_COLUMNS])
    # (job key, cell) -> (acc, acc_norm): plain dict lookups, not DataFrame.loc (52,668 cells at paper size)
    cell = dict(zip(zip(scores["job_key"], scores["cell"]), zip(scores["acc"].astype(float),
                                                                 scores["acc_norm"].astype(float))))
    held = set(scores["job_key"])
    sizes = {m.id: m.size_b for m in study.models}
    norm = {t: headline_uses_norm(study, t) for t in [*study.tasks, *study.target_only_tasks()]}

    # the base evaluation (a relatedness study's CoT evaluation has no adapter either)
    base = {j.model: j.key for j in evals
            if j.adapter_key is None and j.spec.get("variant", "base") == "base" and j.key in held}
    fine: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for j in evals:
        if j.adapter_key is not None and j.key in held:
            fine.setdefault((j.model, j.spec["source_cell"]), []).append((j.spec["seed"], j.key))

    targets = [(str(t), t) for t in study.target_cells()]
    rows = []
    for (model, source_text), seeds in fine.items():
        b = base.get(model)
        if b is None:
            continue
        keys = [k for _, k in sorted(seeds)]
        source = Cell.parse(source_text)
        for t, target in targets:
            if (b, t) not in cell:
                continue
            per_seed = [cell[(k, t)] for k in keys if (k, t) in cell]
            if not per_seed:
                continue
            use_norm = norm.get(target.task, True)
            ft = [acc for acc, _ in per_seed]
            ft_norm = [(acc_norm if use_norm else acc) for acc, acc_norm in per_seed]
            base_acc, base_acc_norm = cell[(b, t)]
            base_norm = base_acc_norm if use_norm else base_acc
            n = len(per_seed)
            row = {"model_name": model, "model_size": sizes.get(model), "fine_tuned_dataset": source.task,
                   "fine_tuned_language": source.lang, "eval_dataset": target.task, "eval_language": target.lang,
                   "regime": regime(source, target), "n_seeds": n}
            for name, values in (("score", ft), ("score_base", [base_acc] * n), ("score_norm", ft_norm),
                                 ("score_norm_base", [base_norm] * n),
                                 ("delta_score", [100 * (v - base_acc) for v in ft]),
                                 ("delta_score_norm", [100 * (v - base_norm) for v in ft_norm])):
                mean, std, se = _stats(values)
                row[f"{name}_mean"], row[f"{name}_std"], row[f"{name}_se"] = mean, std, se
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if items is None:
        if blocks is None:
            blocks = item_blocks(study, store, jobs, columns=PAIRED_COLUMNS, rows=scores)
        frame = append_uncertainty(frame, None, study, blocks=blocks,
                                   items_frame=lambda: export_items(study, store, jobs))
    else:
        frame = append_uncertainty(frame, items, study)
    if study.evaluation.fewshot:  # k-shot scores say so (a column after the released schema's)
        frame["fewshot"] = study.evaluation.fewshot
    return frame


PAIRED_COLUMNS = ("id", "correct", "correct_norm", "task", "lang")  # what the uncertainty columns read
SCORE_COLUMNS = ("cell", "acc", "acc_norm")  # the cell_scores columns of the released-CSV part
BLOCK_COLUMNS = ("cell", "items_path", "model", "variant", "seed", "task", "lang")  # those of `item_blocks`


def append_uncertainty(results, items, study, *, blocks=None, items_frame=None):
    """`results` with the uncertainty columns of analysis/uncertainty.py appended after the released
    schema (whose columns stay as they are): delta_p_value (exact McNemar), delta_ci_low /
    delta_ci_high (paired item bootstrap, pp), delta_q_value (Benjamini-Hochberg over the grid),
    delta_n_items, delta_n_improved, delta_n_harmed; empty where a cell has no per-item results.
    From `items` (export_items' frame) or `blocks` (`item_blocks`: paired block by block; where they
    do not pair one to one, `items_frame()` gives the frame for the general path)."""
    import pandas as pd

    from transfergrid.analysis import paired_blocks as PB
    from transfergrid.analysis import uncertainty as U

    out = results.copy()

    def uses_norm(task):
        return headline_uses_norm(study, task)

    cells = None
    if blocks is not None:
        rows, table = blocks[0], blocks[1]
        if out.empty or table is None or not {"task", "lang", "id", "correct"} <= set(table.column_names):
            items = None
        else:
            frame = pd.DataFrame({"model": rows["model"].to_numpy(), "variant": rows["variant"].to_numpy(),
                                  "task": rows["task"].to_numpy(), "lang": rows["lang"].to_numpy(), "n": blocks[2]})
            # strict=False: a study still running may have adapter scores of a cell whose base is not in yet
            cells = PB.cell_uncertainty(frame, table, uses_norm, strict=False)
            items = items_frame() if cells is None else None
    if cells is None:
        if out.empty or not U.has_item_scores(items):
            for column in U.COLUMNS:
                out[column] = float("nan")
            return out
        cells = U.cell_uncertainty(items, uses_norm, strict=False)
    cells = cells[[*U.KEYS, *U.COLUMNS]].astype({k: object for k in U.KEYS})
    return out.astype({k: object for k in U.KEYS}).merge(cells, on=U.KEYS, how="left")[[*COLUMNS, *U.COLUMNS]]


def export_items(study, store, jobs: Sequence[Job] | None = None, data=None):
    """Every per-item score of the study's current evaluations, with model / variant / seed columns
    (variant 'base' or the adapter's source cell): the input of paired tests and item bootstraps."""
    import pandas as pd

    table = items_table(study, store, jobs, data)
    return pd.DataFrame() if table is None else table.to_pandas()


def item_blocks(study, store, jobs: Sequence[Job] | None = None, data=None, columns=None, rows=None):
    """(cell_scores rows of the study's evaluations in export order, their items as one Arrow table
    or None, rows per cell): `columns` only (all when None; ids, tasks and languages of a column
    subset read dictionary-encoded), every item file read once. `rows`: those rows, if just read."""
    jobs = _jobs(study, jobs, data)
    evals = {j.key for j in jobs if j.kind == EVAL}
    for attempt in range(3):
        if rows is None or attempt:
            rows = store.cell_scores(evals, columns=BLOCK_COLUMNS)
        try:
            table, counts = itemfiles.read_blocks(store.root, list(zip(rows["items_path"], rows["cell"])), columns,
                                                  dictionary=("id", "task", "lang") if columns else ())
            return rows, table, np.asarray(counts, dtype=np.int64)
        except FileNotFoundError:  # a running job gathered its files into one since the query
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def items_table(study, store, jobs: Sequence[Job] | None = None, data=None, blocks=None):
    """`export_items` as one Arrow table (None if nothing is stored): no pandas objects per item,
    so the paper's 21 million simulated item rows fit in a few hundred MB. `blocks`: `item_blocks`
    with every column, when already read."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    rows, table, counts = blocks if blocks is not None else item_blocks(study, store, jobs, data)
    if table is None:
        return None
    row_of_item = pa.array(np.repeat(np.arange(len(counts)), counts))
    seeds = pa.array([None if pd.isna(s) else int(s) for s in rows["seed"]], type=pa.int64())  # NaN: the base model
    front = {"model": pa.array(rows["model"].astype(str)), "variant": pa.array(rows["variant"].astype(str)),
             "seed": seeds}
    for i, (name, values) in enumerate(front.items()):
        table = table.add_column(i, name, pc.take(values, row_of_item))
    return table


def write_items(study, store, path, jobs: Sequence[Job] | None = None, data=None) -> int:
    """Write `items_table` to `path` (Parquet, atomically); returns the number of rows (0: none)."""
    return write_table(items_table(study, store, jobs, data), path)


def write_table(table, path) -> int:
    """An `items_table` as Parquet at `path`, atomically; nothing for an empty one. Returns its rows."""
    import os

    import pyarrow.parquet as pq

    if table is None or table.num_rows == 0:
        return 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return table.num_rows


def _jobs(study, jobs, data):
    """The zero-shot jobs (CoT evaluations are their own variant: cot_export.py)."""
    if jobs is None:
        from transfergrid.plan import study_jobs

        if data is None:
            from transfergrid.data import StudyData, resolve_data_dir

            data = StudyData(study, resolve_data_dir(None, study))
        jobs = study_jobs(study, data)
    return [j for j in jobs if not is_cot(j)]
