"""Per-cell uncertainty (analysis/uncertainty.py, intervals.py) against statsmodels / scipy on fixed
item tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from transfergrid.analysis import intervals as I
from transfergrid.analysis import uncertainty as U
from transfergrid.analysis.frame import prepare
from transfergrid.errors import DataError

TASKS = ("arc_challenge", "truthfulqa_mc1")
LANGS = ("en", "es")
SOURCES = ("arc_challenge:en", "truthfulqa_mc1:es")


def item_table(models=("m1", "m2"), seeds=(1, 2), n=30, gain=0.1, seed=3) -> pd.DataFrame:
    """Random per-item results in export_items' layout; fine-tuned items are right more often."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        for task in TASKS:
            for lang in LANGS:
                ids = [f"{task[:3]}-{i}" for i in range(n)]  # parallel: the same ids in every language
                for variant, seed_list, p in (("base", (None,), 0.4), *((s, seeds, 0.4 + gain) for s in SOURCES)):
                    for s in seed_list:
                        for i in ids:
                            rows.append((model, variant, s, task, lang, i, bool(rng.random() < p),
                                         bool(rng.random() < p)))
    frame = pd.DataFrame(rows, columns=["model", "variant", "seed", "task", "lang", "id", "correct", "correct_norm"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # order must not matter


def direct(items: pd.DataFrame, row) -> pd.Series:
    """Seed-averaged item differences of one cell, computed plainly with pandas."""
    hit = np.where(items["task"] == "arc_challenge", items["correct_norm"], items["correct"]).astype(float)
    df = items.assign(hit=hit)
    cell = df[(df.model == row.model_name) & (df.task == row.eval_dataset) & (df.lang == row.eval_language)]
    base = cell[cell.variant == "base"].set_index("id")["hit"]
    ft = cell[cell.variant == f"{row.fine_tuned_dataset}:{row.fine_tuned_language}"].groupby("id")["hit"].mean()
    return ft - base.reindex(ft.index)


def test_mcnemar_and_bh_match_statsmodels():
    b = np.array([0, 3, 7, 12, 1, 30, 5])
    c = np.array([0, 9, 7, 2, 0, 11, 40])
    expected = [mcnemar([[10, x], [y, 10]], exact=True).pvalue for x, y in zip(b, c)]
    np.testing.assert_allclose(U.mcnemar_exact(b, c), expected, rtol=1e-12)
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.04, 0.9, 0.0001, 1.0, 0.5, 0.04])
    np.testing.assert_allclose(U.bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with_nan = U.bh_qvalues(np.r_[p, np.nan])
    assert np.isnan(with_nan[-1])
    np.testing.assert_allclose(with_nan[:-1], multipletests(p, method="fdr_bh")[1], rtol=1e-12)


def test_wilson_matches_statsmodels():
    count, n = np.array([0, 1, 5, 12, 20]), np.array([20, 20, 20, 13, 20])
    low, high = I.wilson_interval(count, n)
    ref_low, ref_high = proportion_confint(count, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-12, atol=1e-15)


def test_cell_uncertainty_against_a_plain_computation():
    items = item_table()
    cells = U.cell_uncertainty(items, n_boot=500)
    assert len(cells) == 2 * 2 * 4 and list(cells.columns) == U.CELL_COLUMNS
    assert (cells.n_seeds == 2).all() and (cells.delta_n_items == 30).all()
    for row in cells.itertuples():
        d = direct(items, row)
        assert row.delta_items == pytest.approx(100 * d.mean(), abs=1e-9)
        b, c = int((d > 0).sum()), int((d < 0).sum())
        assert (row.delta_n_improved, row.delta_n_harmed) == (b, c)
        assert row.delta_p_value == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue, rel=1e-12)
        assert row.delta_ci_low <= row.delta_items <= row.delta_ci_high
    np.testing.assert_allclose(cells.delta_q_value, multipletests(cells.delta_p_value, method="fdr_bh")[1])


def test_one_seed_is_the_exact_mcnemar_of_the_two_by_two_table():
    items = item_table(models=("m1",), seeds=(7,), n=80, gain=0.3)
    cells = U.cell_uncertainty(items, n_boot=200)
    for row in cells.itertuples():
        hit = np.where(items["task"] == "arc_challenge", items["correct_norm"], items["correct"])
        df = items.assign(hit=hit)
        sel = df[(df.task == row.eval_dataset) & (df.lang == row.eval_language)]
        base = sel[sel.variant == "base"].set_index("id")["hit"]
        ft = sel[sel.variant == f"{row.fine_tuned_dataset}:{row.fine_tuned_language}"].set_index("id")["hit"]
        table = pd.crosstab(base, ft.reindex(base.index)).reindex(index=[True, False], columns=[True, False],
                                                                  fill_value=0)
        assert row.delta_p_value == pytest.approx(mcnemar(table.to_numpy(), exact=True).pvalue, rel=1e-12)
    assert (cells.delta_q_value < 0.05).any()  # a 30 pp gain on 80 items is found


def test_bootstrap_interval_matches_a_plain_bootstrap_and_is_reproducible():
    items = item_table(models=("m1",), seeds=(1, 2, 3), n=40)
    paired = U.paired_items(items)
    sums = U.bootstrap_sums(paired, n_boot=4000, seed=5)
    # a plain loop over draws with numpy's own resampling agrees in distribution
    row = paired.cells.iloc[0]
    d = direct(items, row).to_numpy()
    rng = np.random.default_rng(0)
    plain = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(4000)]) * 100
    mine = sums[0] * 100 / (row.n_items * row.n_seeds)
    assert abs(mine.std() - plain.std()) < 0.1 * plain.std()
    assert abs(np.quantile(mine, 0.025) - np.quantile(plain, 0.025)) < 0.5 * plain.std()
    # draws are exact sums of item differences, seeded, and the same for parallel languages
    again = U.bootstrap_sums(U.paired_items(items.sample(frac=1.0, random_state=1)), n_boot=4000, seed=5)
    np.testing.assert_array_equal(np.sort(sums, axis=0), np.sort(again, axis=0))
    assert np.array_equal(sums, np.round(sums))
    w_en = U.item_weights(paired.groups[0], 10, 5)
    assert w_en.sum(axis=1).tolist() == [40.0] * 10
    assert {g.task for g in paired.groups} == set(TASKS) and len(paired.groups) == 2


def test_cells_do_not_depend_on_the_rest_of_the_grid():
    items = item_table()
    alone = U.cell_uncertainty(items[items.model == "m1"], n_boot=300)
    both = U.cell_uncertainty(items, n_boot=300)
    cols = ["delta_items", "delta_p_value", "delta_ci_low", "delta_ci_high"]
    merged = alone.merge(both, on=U.KEYS, suffixes=("", "_grid"))
    for c in cols:
        np.testing.assert_allclose(merged[c], merged[f"{c}_grid"])


def test_mismatched_items_are_a_data_error():
    items = item_table(models=("m1",), seeds=(1, 2), n=5)
    drop = items.index[(items.variant == SOURCES[0]) & (items.seed == 2) & (items.lang == "es")][0]
    with pytest.raises(DataError, match="did not score the same items"):
        U.paired_items(items.drop(index=drop))
    extra = items.iloc[[0]].assign(variant=SOURCES[0], seed=1, id="unknown")
    with pytest.raises(DataError, match="has no base-model score"):
        U.paired_items(pd.concat([items, extra]))
    # a running study: adapter scores of a target whose base model is not evaluated yet are skipped
    running = items[~((items.variant == "base") & (items.lang == "es"))]
    cells = U.cell_uncertainty(running, strict=False, n_boot=50)
    assert set(cells.eval_language) == {"en"} and len(cells) == 2 * 2
    with pytest.raises(DataError, match="lack column"):
        U.paired_items(items.drop(columns="correct"))


def results_from(cells: pd.DataFrame) -> pd.DataFrame:
    """A released-schema frame from the cells (Δ as the headline column) with the extra columns."""
    return cells.rename(columns={"delta_items": "delta_score_norm_mean"}).assign(delta_score_mean=lambda f: f[
        "delta_score_norm_mean"])


def test_rates_roles_and_grid_marks():
    items = item_table(n=60, gain=0.25)
    paired = U.paired_items(items)
    cells = U.cell_uncertainty(paired, n_boot=400)
    frame = prepare(results_from(cells))
    rates = I.uplift_intervals(frame)
    transfer = rates.set_index("scope").loc["transfer"]
    wins = int((frame.loc[frame.regime != "MT-ML", "delta"] > 0).sum())
    low, high = proportion_confint(wins, int(transfer.n), method="wilson")
    assert transfer.win_ci_low == pytest.approx(100 * low) and transfer.win_ci_high == pytest.approx(100 * high)

    summary = I.significance_summary(frame)
    row = summary.set_index("scope").loc["transfer"]
    transfer_cells = frame[frame.regime != "MT-ML"]
    assert row.n_significant == int((transfer_cells.delta_q_value <= 0.05).sum()) > 0
    k, n, h = int(row.n_significant), int(row.n_tested), int(row.n_significant_harm)
    assert I.significance_line(summary) == (f"{k} of {n} transfer cells changed significantly (FDR 5 %), "
                                            f"of which {h} harmful")

    roles = I.role_intervals(frame, paired, n_boot=400)
    assert set(roles.basis) == {"items and models"}
    assert (roles.donor_ci_low <= roles.donor + 1e-9).all() and (roles.donor <= roles.donor_ci_high + 1e-9).all()
    plain = I.role_intervals(frame, None, n_boot=400)
    assert set(plain.basis) == {"models"}
    np.testing.assert_allclose(plain.donor, roles.donor)
    # two models and 60 items: the item draws widen the interval beyond the models' spread alone
    assert ((roles.donor_ci_high - roles.donor_ci_low) >= (plain.donor_ci_high - plain.donor_ci_low) - 1e-9).all()

    # per-item results of another headline metric (acc for ARC) are not mixed with the frame's Δ
    other = U.paired_items(items, lambda task: False)
    assert set(I.role_intervals(frame, other, n_boot=50).basis) == {"models"}
    assert I.grid_significance(frame, other).empty

    grid = I.grid_significance(frame, paired)
    assert len(grid) == 2 * 4 and (grid.n_models == 2).all()
    # the grid cell's test pools the models' item differences: recompute one by hand
    one = grid.iloc[0]
    src, tgt = one.source.split(":"), one.target.split(":")
    rows = cells[(cells.fine_tuned_dataset == src[0]) & (cells.fine_tuned_language == src[1])
                 & (cells.eval_dataset == tgt[0]) & (cells.eval_language == tgt[1])]
    pooled = sum(direct(items, r) for r in rows.itertuples())
    b, c = int((pooled > 1e-9).sum()), int((pooled < -1e-9).sum())
    assert one.p_value == pytest.approx(mcnemar([[0, b], [c, 0]], exact=True).pvalue)


def test_without_uncertainty_columns_the_tables_say_so():
    frame = prepare(pd.DataFrame({"model_name": ["m"] * 4, "fine_tuned_dataset": ["arc_challenge"] * 4,
                                  "fine_tuned_language": ["en", "en", "es", "es"],
                                  "eval_dataset": ["arc_challenge"] * 4, "eval_language": ["en", "es", "en", "es"],
                                  "delta_score_norm_mean": [1.0, -2.0, 0.5, 3.0]}))
    assert I.significance_summary(frame).empty and I.significance_line(I.significance_summary(frame)) is None
    assert I.grid_significance(frame).empty
    assert set(I.role_intervals(frame).basis) == {"none"}  # one model, no items: no interval
    assert not I.uplift_intervals(frame).empty


def test_tables_figure_and_report_show_the_uncertainty(tmp_path):
    from transfergrid.analysis.tables import compute_tables
    from transfergrid.report import figures as F
    from transfergrid.report import heatmaps, style
    from transfergrid.report.html import build_report

    items = item_table(models=("m1",), n=60, gain=0.2)
    frame = prepare(results_from(U.cell_uncertainty(items, n_boot=300)))
    tables = compute_tables(frame, variance=False, distance=False, items=items)
    grid, marks = tables["grid_matrix"], tables["grid_significance"]
    k = int(marks.significant.sum())
    assert 0 < k < len(marks)
    fig = heatmaps.grid_heatmap(grid)
    assert heatmaps.mark_significant(fig.axes[0], grid, marks) == k
    assert len(fig.axes[0].collections[-1].get_offsets()) == k
    style.pyplot().close(fig)
    figures = F.write_figures(tables, tmp_path / "figures")
    assert tmp_path / "figures" / "grid_heatmap.png" in figures
    html = build_report(tables, figures, title="t")
    assert I.significance_line(tables["significance_summary"]) in html
    transfer = tables["uplift_intervals"].set_index("scope").loc["transfer"]
    assert f"[{transfer.win_ci_low:.1f}, {transfer.win_ci_high:.1f}]" in html
