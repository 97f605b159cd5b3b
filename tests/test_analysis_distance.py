"""Linguistic distance: lang2vec features of the reference languages, the Mantel/QAP test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from transfergrid.analysis.distance import (
    LANG2VEC_FEATURES,
    cosine_distances,
    iso639_3,
    lang2vec_vectors,
    ling_correlation,
    mantel,
)
from transfergrid.analysis.simulate import REFERENCE_LANGUAGES, simulate_results

pytest.importorskip("lang2vec")


def test_reference_languages_have_lang2vec_knn_vectors():
    assert [iso639_3(x) for x in REFERENCE_LANGUAGES] == ["ara", "ben", "deu", "eng", "spa", "fra", "hin",
                                                          "ind", "ita", "por", "zho"]
    sizes = {"syntax_knn": 103, "phonology_knn": 28, "inventory_knn": 158}
    for feature_set in LANG2VEC_FEATURES:
        vectors = lang2vec_vectors(tuple(REFERENCE_LANGUAGES), feature_set)
        assert set(vectors) == set(REFERENCE_LANGUAGES)
        assert all(v.shape == (sizes[feature_set],) and np.isfinite(v).all() for v in vectors.values())
    d = cosine_distances(lang2vec_vectors(tuple(REFERENCE_LANGUAGES), "syntax_knn"), REFERENCE_LANGUAGES)
    assert np.allclose(np.diag(d), 0) and np.allclose(d, d.T)
    # Typology, sanity: Spanish is syntactically closer to Italian than to Bengali.
    assert d.loc["es", "it"] < d.loc["es", "bn"]
    assert "xx" not in lang2vec_vectors(("en", "xx"), "syntax_knn")


def test_same_vectors_as_lang2vec_itself():
    import importlib.util
    import os
    import sys
    import types

    if importlib.util.find_spec("pkg_resources") is None:  # lang2vec only uses it to find its files
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda p, path: os.path.join(os.path.dirname(importlib.util.find_spec(p).origin), path)
        sys.modules.setdefault("pkg_resources", shim)
    import lang2vec.lang2vec as l2v

    ref = l2v.get_features(["ara", "deu", "zho", "cmn"], "phonology_knn")
    # Default codes are the reference's (zh -> cmn); "iso639-3" gives lang2vec's letter code zho.
    for codes, zh in (("reference", "cmn"), ("iso639-3", "zho")):
        ours = lang2vec_vectors(("ar", "de", "zh"), "phonology_knn", codes)
        for lang, code in [("ar", "ara"), ("de", "deu"), ("zh", zh)]:
            assert np.array_equal(ours[lang], np.array([np.nan if v == "--" else float(v) for v in ref[code]]),
                                  equal_nan=True)
    assert not np.array_equal(ours["zh"], lang2vec_vectors(("zh",), "phonology_knn")["zh"])


def test_mantel_correlations_and_permutation_p():
    langs = list("abcdefg")
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(7, 2))
    dist = pd.DataFrame(np.linalg.norm(pts[:, None] - pts[None], axis=-1), index=langs, columns=langs)
    delta = -2.0 * dist + rng.normal(0, 0.01, dist.shape)  # Δ falls with distance
    res = mantel(delta, dist, permutations=999, seed=0)
    off = ~np.eye(7, dtype=bool)
    assert res["n"] == 42
    assert res["spearman_rho"] == pytest.approx(spearmanr(delta.to_numpy()[off], dist.to_numpy()[off]).statistic)
    assert res["pearson_r"] == pytest.approx(pearsonr(delta.to_numpy()[off], dist.to_numpy()[off]).statistic)
    assert res["permutation_p"] <= 0.01
    unrelated = pd.DataFrame(rng.normal(size=(7, 7)), index=langs, columns=langs)
    assert mantel(unrelated, dist, permutations=999, seed=0)["permutation_p"] > 0.05
    assert mantel(delta, dist, permutations=99, seed=3) == mantel(delta, dist, permutations=99, seed=3)


def test_ling_correlation_table():
    sim = simulate_results(["arc_challenge"], ["ar", "de", "en", "es", "zh"], 2, 1, seed=0)
    table = ling_correlation(sim, permutations=199, urielplus=False)
    # zh maps to cmn (the reference) by default; the ISO 639-3 (zho) rows follow, as zh is in the grid.
    assert list(table["distance"]) == [*LANG2VEC_FEATURES, *(f"{f} (iso639-3)" for f in LANG2VEC_FEATURES)]
    assert list(table["codes"]) == ["reference"] * 3 + ["iso639-3"] * 3
    assert (table["n"] == 20).all()
    no_zh = ling_correlation(sim[(sim["eval_language"] != "zh") & (sim["fine_tuned_language"] != "zh")],
                             permutations=19, urielplus=False)
    assert list(no_zh["distance"]) == list(LANG2VEC_FEATURES)  # same codes either way: no extra rows
    assert table["permutation_p"].between(1 / 200, 1).all()
    assert ling_correlation(sim[sim["eval_language"].isin(["ar", "de"])
                                & sim["fine_tuned_language"].isin(["ar", "de"])], urielplus=False).empty


def test_urielplus_matrix_equals_urielplus_new_distance():
    """Our vectorised URIEL+ distances are URIEL+'s own numbers (its new_distance), exactly."""
    import logging

    pytest.importorskip("urielplus")
    from urielplus import urielplus

    from transfergrid.analysis.distance import URIELPLUS_DISTANCES, urielplus_matrix

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        uriel = urielplus.URIELPlus()
        codes = ["ara", "deu", "eng", "zho", "hin"]
        for name in URIELPLUS_DISTANCES:
            expect = np.asarray(uriel.new_distance(name, codes), dtype=float)
            assert np.array_equal(urielplus_matrix(uriel, name, codes), expect), name
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
