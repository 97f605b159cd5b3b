"""Study 2 analysis: paired tests, intervals, bootstrap, regression, correlations, groups."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from transfergrid.analysis import paired_table as pt
from transfergrid.analysis import relatedness as rel
from transfergrid.analysis import relatedness_fits as fits
from transfergrid.errors import UserError

# --- McNemar -----------------------------------------------------------------------------------

def test_mcnemar_exact_by_hand_and_statsmodels():
    # b=3, c=9: 12 discordant pairs < 25 -> exact; P[X<=3], X~Bin(12, .5) = (1+12+66+220)/4096
    method, stat, p = pt.mcnemar(3, 9)
    assert method == "exact" and stat == 3
    assert p == pytest.approx(2 * 299 / 4096, abs=1e-15)
    ref = sm_mcnemar([[10, 3], [9, 5]], exact=True)
    assert p == pytest.approx(ref.pvalue, abs=1e-12) and stat == ref.statistic
    assert pt.mcnemar(0, 0) == ("exact", 0.0, 1.0)
    assert pt.mcnemar(12, 12)[2] == 1.0  # 2 * P[X <= 12] > 1 is capped


def test_mcnemar_chi2_by_hand_and_statsmodels():
    # b=10, c=25: 35 >= 25 -> (|10-25|-1)^2 / 35 = 196/35 = 5.6, 1 df
    method, stat, p = pt.mcnemar(10, 25)
    assert method == "chi2"
    assert stat == pytest.approx(5.6, abs=1e-12)
    assert p == pytest.approx(math.erfc(math.sqrt(5.6 / 2)), abs=1e-12)  # chi2(1) survival function
    ref = sm_mcnemar([[30, 10], [25, 35]], exact=False, correction=True)
    assert stat == pytest.approx(ref.statistic, abs=1e-12) and p == pytest.approx(ref.pvalue, abs=1e-12)


def test_mcnemar_switches_at_25_discordant_pairs():
    assert pt.mcnemar(12, 12)[0] == "exact"
    assert pt.mcnemar(12, 13)[0] == "chi2"


# --- Newcombe's paired interval --------------------------------------------------------------

def _wilson_by_hand(p: float, n: int, z: float) -> tuple[float, float]:
    # the textbook form (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_newcombe_interval_by_hand_with_phi_correction():
    # 40 right both times, 10 only after, 5 only before, 45 neither (n = 100)
    z = 1.959963984540054
    p_after, p_before = 0.50, 0.45
    l1, u1 = _wilson_by_hand(p_after, 100, z)
    l2, u2 = _wilson_by_hand(p_before, 100, z)
    phi = (40 * 45 - 10 * 5 - 100 / 2) / math.sqrt(50 * 50 * 45 * 55)  # AD - BC > 0: shrunk by n/2
    d = 0.05
    lower = d - math.sqrt((p_after - l1) ** 2 - 2 * phi * (p_after - l1) * (u2 - p_before) + (u2 - p_before) ** 2)
    upper = d + math.sqrt((u1 - p_after) ** 2 - 2 * phi * (u1 - p_after) * (p_before - l2) + (p_before - l2) ** 2)
    got = pt.newcombe_paired_interval(40, 10, 5, 45)
    assert got == pytest.approx((lower, upper), abs=1e-12)
    assert got == pytest.approx((-0.0270836, 0.1256311), abs=1e-7)


def test_newcombe_interval_negative_phi_and_bounds():
    # AD - BC = 36*0 - 12*2 < 0: no shrinkage; values from an independent computation
    assert pt.newcombe_paired_interval(36, 12, 2, 0) == pytest.approx((0.0569296, 0.3404276), abs=1e-7)
    lo, hi = pt.newcombe_paired_interval(30, 2, 8, 10)
    assert lo < (2 - 8) / 50 < hi
    assert -1 <= lo and hi <= 1
    assert all(math.isnan(x) for x in pt.newcombe_paired_interval(0, 0, 0, 0))


# --- fixed per-item frame ---------------------------------------------------------------------

def _rows(model, lang, group, variant, outcomes, seed=None):
    return [{"model": model, "language": lang, "group": group, "item": f"i{k}", "variant": variant,
             "seed": seed, "correct": bool(v)} for k, v in enumerate(outcomes)]


def _small_frame() -> pd.DataFrame:
    base = [1, 1, 1, 0, 0, 0, 0, 0, 1, 0]
    ft = [1, 1, 0, 1, 1, 1, 0, 0, 1, 1]  # harmed: i2; improved: i3 i4 i5 i9
    cot = [1, 0, 1, 1, 0, 0, 0, 0, 1, 0]
    rows = (_rows("m", "he", "related", "base", base) + _rows("m", "he", "related", "ft", ft, 42)
            + _rows("m", "he", "related", "cot", cot)
            + _rows("m", "ja", "control", "base", [0] * 10) + _rows("m", "ja", "control", "ft", [1] * 5 + [0] * 5, 42))
    return pd.DataFrame(rows)


def test_gains_table_by_hand():
    t = rel.gains_table(_small_frame()).set_index("language")
    he = t.loc["he"]
    assert he["baseline_acc"] == pytest.approx(40.0) and he["ft_acc"] == pytest.approx(70.0)
    assert he["gain"] == pytest.approx(30.0)
    assert (he["n_improved"], he["n_harmed"], he["n_items"], he["n_seeds"]) == (4, 1, 10, 1)
    assert he["mcnemar_method"] == "exact"
    assert he["mcnemar_p"] == pytest.approx(2 * (1 + 5) / 32)  # 2 P[X<=1], X~Bin(5, .5)
    lo, hi = pt.newcombe_paired_interval(3, 4, 1, 2)
    assert (he["gain_ci_low"], he["gain_ci_high"]) == pytest.approx((100 * lo, 100 * hi))
    assert he["gain_ci_low"] < he["gain"] < he["gain_ci_high"]
    assert he["cot_acc"] == pytest.approx(40.0) and he["cot_gain"] == pytest.approx(0.0)
    ja = t.loc["ja"]
    assert ja["gain"] == pytest.approx(50.0) and ja["n_improved"] == 5 and ja["n_harmed"] == 0
    assert math.isnan(ja["cot_acc"])
    assert list(rel.gains_table(_small_frame()).columns) == rel.GAIN_COLUMNS


def test_several_seeds_mean_gain_and_majority_test():
    base = [0, 0, 0, 0, 1, 1]
    s1 = [1, 1, 1, 0, 1, 0]
    s2 = [1, 1, 0, 0, 1, 0]
    frame = pd.DataFrame(_rows("m", "he", "related", "base", base) + _rows("m", "he", "related", "ft", s1, 1)
                         + _rows("m", "he", "related", "ft", s2, 2))
    row = rel.gains_table(frame).iloc[0]
    assert row["n_seeds"] == 2
    assert row["ft_acc"] == pytest.approx(100 * (4 / 6 + 3 / 6) / 2)
    assert row["gain"] == pytest.approx(row["ft_acc"] - 100 * 2 / 6)
    # majority: i0, i1 improved (2/2); i2 is a 1-1 tie -> keeps base (0); i5 harmed (0/2)
    assert (row["n_improved"], row["n_harmed"]) == (2, 1)


def test_frame_errors_are_user_errors():
    frame = _small_frame()
    with pytest.raises(UserError, match="missing column"):
        rel.gains_table(frame.drop(columns=["variant"]))
    with pytest.raises(UserError, match="'variant' has"):
        rel.gains_table(frame.assign(variant="tuned"))
    with pytest.raises(UserError, match="appears twice"):
        rel.gains_table(pd.concat([frame, frame.iloc[:1]]))


# --- synthetic study: bootstrap, regression, correlations ------------------------------------

def _synthetic(n_items=60, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = {"he": "related", "am": "related", "mt": "related", "ja": "control", "ko": "control", "fr": "control"}
    rows = []
    for m, (p_base, lift, cot_lift) in {"weak": (0.3, 0.35, 0.25), "mid": (0.5, 0.15, 0.1),
                                        "strong": (0.8, 0.03, 0.02), "strong2": (0.75, 0.05, 0.0)}.items():
        for lang, group in groups.items():
            base = rng.random(n_items) < p_base
            ft = base | (rng.random(n_items) < lift)
            cot = base | (rng.random(n_items) < cot_lift)
            rows += _rows(m, lang, group, "base", base) + _rows(m, lang, group, "ft", ft, 42)
            rows += _rows(m, lang, group, "cot", cot)
    return pd.DataFrame(rows)


def test_group_summary_point_estimates_and_determinism():
    frame = _synthetic()
    gains = rel.gains_table(frame)
    a = rel.group_summary(frame, n_boot=300, seed=7)
    b = rel.group_summary(frame, n_boot=300, seed=7)
    c = rel.group_summary(frame, n_boot=300, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    ft = a[a["metric"] == "ft"].set_index(["model", "group"])
    for model in ("weak", "strong"):
        g = gains[gains["model"] == model].groupby("group")["gain"].mean()
        assert ft.loc[(model, "related"), "mean_gain"] == pytest.approx(g["related"])
        assert ft.loc[(model, "control"), "mean_gain"] == pytest.approx(g["control"])
        assert ft.loc[(model, "related-minus-control"), "mean_gain"] == pytest.approx(g["related"] - g["control"])
    overall = gains.groupby(["model", "group"])["gain"].mean().groupby("group").mean()
    assert ft.loc[("all", "related"), "mean_gain"] == pytest.approx(overall["related"])
    assert (a["ci_low"] <= a["mean_gain"]).all() and (a["mean_gain"] <= a["ci_high"]).all()
    cot = a[a["metric"] == "cot"].set_index(["model", "group"])
    g = gains[gains["model"] == "weak"].groupby("group")["cot_gain"].mean()
    assert cot.loc[("weak", "control"), "mean_gain"] == pytest.approx(g["control"])


def test_group_summary_interval_matches_a_plain_bootstrap():
    frame = _synthetic(n_items=30)
    got = rel.group_summary(frame[frame["model"] == "weak"], n_boot=200, seed=11)
    row = got[(got["metric"] == "ft") & (got["group"] == "related")].iloc[0]
    items = rel.item_outcomes(frame[frame["model"] == "weak"])
    ids = sorted(items["item"].unique())
    idx = np.random.default_rng(11).integers(0, len(ids), size=(200, len(ids)))
    draws = []
    for draw in idx:
        chosen = [ids[k] for k in draw]
        per_lang = []
        for lang in ("he", "am", "mt"):
            d = items[items["language"] == lang].set_index("item")
            per_lang.append(100 * np.mean([d.loc[i, "ft"] - d.loc[i, "base"] for i in chosen]))
        draws.append(np.mean(per_lang))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])), abs=1e-9)


def test_regression_matches_lstsq_and_hand_standard_errors():
    gains = rel.gains_table(_synthetic())
    table = fits.regression_table(gains).set_index("term")
    assert list(table.index) == ["Intercept", "baseline_acc", "related"]
    X = np.column_stack([np.ones(len(gains)), gains["baseline_acc"], (gains["group"] == "related").astype(float)])
    y = gains["gain"].to_numpy()
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    sigma2 = resid @ resid / (len(y) - 3)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(X.T @ X)))
    assert table["coef"].to_numpy() == pytest.approx(beta, abs=1e-9)
    assert table["se"].to_numpy() == pytest.approx(se, abs=1e-9)
    tcrit = stats.t.ppf(0.975, len(y) - 3)
    assert table["ci_low"].to_numpy() == pytest.approx(beta - tcrit * se, abs=1e-9)
    assert table["p"].to_numpy() == pytest.approx(2 * stats.t.sf(np.abs(beta / se), len(y) - 3), abs=1e-12)
    assert table.loc["baseline_acc", "coef"] < 0  # weak baselines gain more (by construction)


def test_regression_with_script_and_its_fallback():
    gains = rel.gains_table(_synthetic())
    scripts = {"he": "Hebr", "am": "Ethi", "mt": "Latn", "ja": "Jpan", "ko": "Hang", "fr": "Latn"}
    with_script = fits.regression_table(gains, scripts=scripts)
    assert "script[T.Latn]" in set(with_script["term"]) and with_script["n"].iloc[0] == 24
    # a script per language is collinear with the related indicator: dropped, plain model kept
    unique = {lang: lang.upper() for lang in scripts}
    assert list(fits.regression_table(gains, scripts=unique)["term"]) == ["Intercept", "baseline_acc", "related"]


def test_cot_correlation_levels():
    gains = rel.gains_table(_synthetic())
    table = fits.cot_correlation(gains).set_index("level")
    per_model = gains.groupby("model")[["gain", "cot_gain"]].mean()
    r = stats.pearsonr(per_model["gain"], per_model["cot_gain"])
    rho = stats.spearmanr(per_model["gain"], per_model["cot_gain"])
    assert table.loc["model", "n"] == 4
    assert table.loc["model", "pearson_r"] == pytest.approx(r.statistic)
    assert table.loc["model", "spearman_p"] == pytest.approx(rho.pvalue)
    assert table.loc["model_language", "n"] == 24
    assert table.loc["model_language", "pearson_r"] == pytest.approx(stats.pearsonr(gains["gain"], gains["cot_gain"]).statistic)
    two = fits.cot_correlation(gains[gains["model"].isin(["weak", "mid"])]).set_index("level")
    assert two.loc["model", "n"] == 2 and math.isnan(two.loc["model", "pearson_r"])


def test_weak_strong_split():
    gains = rel.gains_table(_synthetic())
    table = rel.weak_strong(gains, 0.6).set_index("class")
    assert table.loc["weak", "models"] == "weak;mid" and table.loc["strong", "n_models"] == 2
    strong = gains[gains["model"].isin(["strong", "strong2"])]
    assert table.loc["strong", "mean_gain"] == pytest.approx(strong["gain"].mean())
    rel_minus = strong[strong["group"] == "related"]["gain"].mean() - strong[strong["group"] == "control"]["gain"].mean()
    assert table.loc["strong", "related_minus_control"] == pytest.approx(rel_minus)
    assert table.loc["weak", "mean_gain"] > table.loc["strong", "mean_gain"]


# --- groups by family ---------------------------------------------------------------------------

def test_auto_groups_paper_setup():
    groups = rel.auto_groups(["arb_Arab", "ary_Arab"], ["heb_Hebr", "amh_Ethi", "mlt_Latn", "jpn_Jpan",
                                                        "kor_Hang", "fra_Latn"])
    assert groups == {"related": ["heb_Hebr", "amh_Ethi", "mlt_Latn"], "control": ["jpn_Jpan", "kor_Hang", "fra_Latn"]}


def test_auto_groups_fallback_table_warns(monkeypatch, caplog):
    monkeypatch.setattr(rel, "_lang2vec_dir", lambda: None)
    groups = rel.auto_groups(["id"], ["ms", "tl", "vi", "zh-s", "en"])
    assert groups == {"related": ["ms", "tl"], "control": ["vi", "zh-s", "en"]}
    assert "built-in table" in caplog.text
    with pytest.raises(UserError, match="no language family known for xx"):
        rel.auto_groups(["id"], ["ms", "xx"])


def test_lang2vec_families_when_installed():
    if rel._lang2vec_dir() is None:
        pytest.skip("lang2vec not installed")
    fam = rel.language_families(["id", "ms", "heb_Hebr", "kor_Hang", "zh-s"])
    assert fam == {"id": "Austronesian", "ms": "Austronesian", "heb_Hebr": "Afro-Asiatic",
                   "kor_Hang": "Koreanic", "zh-s": "Sino-Tibetan"}


def test_item_rows_from_score_records():
    from transfergrid.cot import CotItemScore
    from transfergrid.records import ItemScore

    base = [ItemScore("i0", "belebele", "he", 1, (-1.0, -0.5), 1, 1, 1, True, True, True),
            ItemScore("i1", "belebele", "he", 0, (-1.0, -0.5), 1, 1, 1, False, False, False)]
    cot = [CotItemScore("i0", "belebele", "he", 1, (-2.0, -1.0), 1, True, "r", "r"),
           CotItemScore("i1", "belebele", "he", 0, (-2.0, -1.0), 1, False, "r", "r")]
    ft = [s.to_dict() | {"correct": True} for s in base]
    frame = pd.concat([rel.item_rows(base, model="m", variant="base", seed=7, group="related"),
                       rel.item_rows(ft, model="m", variant="ft", seed=7, group="related"),
                       rel.item_rows(cot, model="m", variant="cot", group="related")])
    assert list(frame.columns) == list(rel.ITEM_COLUMNS)
    assert frame.loc[frame["variant"] == "base", "seed"].isna().all()
    row = rel.gains_table(frame).iloc[0]
    assert (row["baseline_acc"], row["ft_acc"], row["cot_acc"], row["n_improved"]) == (50.0, 100.0, 50.0, 1)
