"""Consistency Index: Kendall τ-b against scipy, the per-source index, the summary."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau

from transfergrid.analysis.consistency import (
    consistency,
    consistency_summary,
    pairwise_tau_b,
)
from transfergrid.analysis.frame import prepare
from transfergrid.analysis.simulate import simulate_results


def test_pairwise_tau_b_equals_scipy_with_ties_and_missing_values():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(9, 5)).astype(float)  # many ties
    x[2, 1] = x[5, 3] = np.nan
    tau = pairwise_tau_b(x)
    for a, b in itertools.combinations(range(5), 2):
        ok = np.isfinite(x[:, a]) & np.isfinite(x[:, b])
        expect = kendalltau(x[ok, a], x[ok, b], variant="b").statistic
        assert tau[a, b] == pytest.approx(expect, abs=1e-12), (a, b)


def test_constant_column_and_too_few_recipients_give_nan():
    x = np.array([[1.0, 5.0, 2.0], [1.0, 6.0, np.nan], [1.0, 7.0, np.nan], [1.0, 8.0, 3.0]])
    tau = pairwise_tau_b(x)
    assert np.isnan(tau[0, 1])  # column 0 is constant
    assert np.isnan(tau[1, 2])  # only 2 shared recipients


@pytest.fixture(scope="module")
def grid():
    return prepare(simulate_results(["arc_challenge", "global_mmlu", "truthfulqa"], ["en", "de", "fr", "es"],
                                    ["Qwen2.5-0.5B-Instruct", "Qwen2.5-7B-Instruct", "Llama-3.2-1B-Instruct",
                                     "Llama-3.1-8B-Instruct"], 1, seed=5))


def test_index_is_mean_pairwise_tau_over_models(grid):
    table = consistency(grid)
    row = table[(table["variant"] == "model") & (table["regime"] == "MT-CL")
                & (table["source"] == "global_mmlu:de")].iloc[0]
    cells = grid[(grid["regime"] == "MT-CL") & (grid["source"] == "global_mmlu:de")]
    m = cells.pivot(index="target_lang", columns="model_name", values="delta")
    taus = [kendalltau(m[a], m[b], variant="b").statistic for a, b in itertools.combinations(m.columns, 2)]
    assert row["index"] == pytest.approx(np.mean(taus), abs=1e-12)
    assert (row["n_models"], row["n_recipients"]) == (4, 3)
    # CT-ML has 2 recipient tasks (< 3): no rows; CT-CL recipients are cells (2 tasks × 3 languages).
    assert not (table["regime"] == "CT-ML").any()
    assert set(table.loc[table["regime"] == "CT-CL", "n_recipients"]) == {6}


def test_family_variant_averages_sizes(grid):
    table = consistency(grid)
    fam = table[(table["variant"] == "family") & (table["regime"] == "MT-CL") & (table["source"] == "arc_challenge:en")]
    cells = grid[(grid["regime"] == "MT-CL") & (grid["source"] == "arc_challenge:en")]
    m = cells.groupby(["target_lang", "family"])["delta"].mean().unstack()
    assert fam["index"].iloc[0] == pytest.approx(kendalltau(m["llama"], m["qwen"], variant="b").statistic)
    assert set(table["variant"]) == {"model", "family", "size", "size_bucket"}


def test_size_variant_uses_exact_sizes_as_the_reference(grid):
    """Sizes 0.5, 7, 1, 8 B: four columns (the reference's exact sizes), where the S/M/L buckets
    give two (S = 0.5 and 1, L = 7 and 8)."""
    table = consistency(grid).set_index(["variant", "regime", "source"])
    exact = table.loc[("size", "MT-CL", "arc_challenge:en")]
    bucket = table.loc[("size_bucket", "MT-CL", "arc_challenge:en")]
    assert (exact["n_models"], bucket["n_models"]) == (4, 2)
    cells = grid[(grid["regime"] == "MT-CL") & (grid["source"] == "arc_challenge:en")]
    m = cells.pivot(index="target_lang", columns="size_b", values="delta")
    taus = [kendalltau(m[a], m[b], variant="b").statistic for a, b in itertools.combinations(m.columns, 2)]
    assert exact["index"] == pytest.approx(np.mean(taus), abs=1e-12)


def test_summary_quartiles(grid):
    table = consistency(grid)
    summary = consistency_summary(table).set_index(["variant", "regime"])
    values = table[(table["variant"] == "model") & (table["regime"] == "CT-CL")]["index"]
    row = summary.loc[("model", "CT-CL")]
    assert row["median"] == pytest.approx(values.median())
    assert (row["q1"], row["q3"]) == pytest.approx(tuple(np.percentile(values, [25, 75])))
    assert row["n_sources"] == 12
