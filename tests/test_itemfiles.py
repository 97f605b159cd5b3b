"""The per-item file layout (itemfiles.py): one file per commit batch, gathered into one per
finished evaluation; cells with their own columns; stores of the earlier one-file-per-cell layout
still read, checked and cleaned."""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq

from transfergrid import itemfiles
from transfergrid.plan import EVAL, Job
from transfergrid.records import Cell
from transfergrid.store import Store

CELLS = ["arc_challenge:en", "arc_challenge:es", "truthfulqa_mc1:en"]
M = {"n": 2, "acc": 0.5, "acc_norm": 1.0, "acc_bytes": 0.5}


def _eval(key="e1"):
    return Job(EVAL, key, {"model": "m", "model_source": "s", "seed": None, "source_cell": None,
                           "adapter_key": None, "targets": CELLS})


def _items(cell: str, extra: bool = False):
    rows = [{"id": f"{cell}-{i}", "correct": i % 2 == 0} for i in range(3)]
    return [{**r, "reasoning": "because"} for r in rows] if extra else rows


def test_batches_are_gathered_into_one_file_when_the_job_is_done(tmp_path):
    store = Store(tmp_path)
    job = _eval()
    assert store.claim(job)
    store.commit_cells(job, [(Cell.parse(CELLS[0]), M, _items(CELLS[0]), 0.0)])
    store.commit_cells(job, [(Cell.parse(CELLS[2]), M, _items(CELLS[2], extra=True), 0.0)])
    folder = itemfiles.items_dir(tmp_path, job.key)
    assert len(list(folder.iterdir())) == 2  # one file per commit
    store.commit_cells(job, [(Cell.parse(CELLS[1]), M, _items(CELLS[1]), 0.0)], finish=True)
    (only,) = folder.iterdir()  # gathered; the batch files are gone
    paths = {store.items_path(job.key, Cell.parse(c)) for c in CELLS}
    assert paths == {only} and store.statuses()[job.key]["status"] == "done"
    for cell in CELLS:  # each cell reads back with exactly its own columns and rows
        table = itemfiles.read_cell(tmp_path, str(only.relative_to(tmp_path)), cell)
        assert table.to_pylist() == _items(cell, extra=cell == CELLS[2])
    assert store.missing([job]) == [] and store.clean_leftovers() == []


def test_finish_after_an_interrupted_attempt_gathers_too(tmp_path):
    store = Store(tmp_path)
    job = _eval()
    assert store.claim(job)
    for cell in CELLS:
        store.commit_cell(job, Cell.parse(cell), M, _items(cell))
    store.finish(job)  # every cell was committed before: just the gathering and the done mark
    assert len(list(itemfiles.items_dir(tmp_path, job.key).iterdir())) == 1
    assert store.done_cells(job.key) == {Cell.parse(c) for c in CELLS}


def test_a_store_of_the_one_file_per_cell_layout(tmp_path):
    """Rows naming <key>/<task>/<lang>.parquet (no cell list in the file): read, checked, kept."""
    store = Store(tmp_path)
    job = _eval()
    assert store.claim(job)
    store.commit_cells(job, [(Cell.parse(c), M, _items(c), 0.0) for c in CELLS], finish=True)
    for cell in CELLS:  # rewrite it as the earlier layout did
        task, lang = cell.split(":")
        path = itemfiles.items_dir(tmp_path, job.key) / task / f"{lang}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(_items(cell)), path)
        store._db.execute("UPDATE cell_scores SET items_path = ? WHERE cell = ?", (str(path.relative_to(tmp_path)), cell))
    next(p for p in itemfiles.items_dir(tmp_path, job.key).iterdir() if p.is_file()).unlink()
    orphan = itemfiles.items_dir(tmp_path, job.key) / "truthfulqa_mc1" / "es.parquet"  # a cell with no row
    pq.write_table(pa.Table.from_pylist(_items("x")), orphan)
    os.utime(orphan, (time.time() - 60, time.time() - 60))
    fresh = Store(tmp_path)
    assert fresh.clean_leftovers() == [orphan]
    assert fresh.missing([job]) == [] and fresh.done_cells(job.key) == {Cell.parse(c) for c in CELLS}
    rows = fresh.cell_scores()
    table, counts = itemfiles.read_blocks(tmp_path, list(zip(rows["items_path"], rows["cell"])))
    assert list(counts) == [3, 3, 3]
    assert table.to_pylist() == [r for c in sorted(CELLS) for r in _items(c)]
    (tmp_path / rows["items_path"][1]).unlink()  # a lost per-cell file sends that cell back alone
    assert fresh.missing([job]) == [job]
    assert fresh.done_cells(job.key) == {Cell.parse(CELLS[0]), Cell.parse(CELLS[2])}
