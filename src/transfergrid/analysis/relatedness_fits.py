"""Study 2 across models x languages, from the gains table (`relatedness.gains_table`): the
regression of gain on baseline accuracy and relatedness, and the fine-tuning vs CoT gain correlation."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def regression_table(gains: pd.DataFrame, related_group: str = "related",
                     scripts: Mapping[str, str] | None = None, level: float = 0.95) -> pd.DataFrame:
    """relatedness_regression.csv: OLS of gain (pp) ~ baseline_acc (%) + related (0/1) [+ C(script)]
    over models x languages. The script term is dropped (with a warning) when it makes the design
    singular or leaves no residual degree of freedom."""
    import statsmodels.formula.api as smf

    data = gains.dropna(subset=["gain", "baseline_acc"]).copy()
    data["related"] = (data["group"] == related_group).astype(float)
    formulas = ["gain ~ baseline_acc + related"]
    if scripts:
        unlabeled = sorted(set(data["language"]) - set(scripts))
        if unlabeled:
            log.warning("no script label for %s: regression without the script term", ", ".join(unlabeled))
        else:
            data["script"] = data["language"].map(scripts)
            if data["script"].nunique() > 1:
                formulas.insert(0, "gain ~ baseline_acc + related + C(script)")
    cols = ["term", "coef", "se", "ci_low", "ci_high", "p", "n", "r2"]
    for formula in formulas:
        model = smf.ols(formula, data=data)
        k = model.exog.shape[1]
        if len(data) <= k or np.linalg.matrix_rank(model.exog) < k:
            log.warning("regression %r is not identified on %d rows; trying a smaller one", formula, len(data))
            continue
        fit = model.fit()
        ci = fit.conf_int(alpha=1 - level)
        out = pd.DataFrame({"term": [t.replace("C(script)", "script") for t in fit.params.index],
                            "coef": fit.params.to_numpy(), "se": fit.bse.to_numpy(),
                            "ci_low": ci[0].to_numpy(), "ci_high": ci[1].to_numpy(),
                            "p": fit.pvalues.to_numpy()})
        out["n"], out["r2"] = int(fit.nobs), float(fit.rsquared)
        first = {"Intercept": 0, "baseline_acc": 1, "related": 2}
        out = out.sort_values("term", key=lambda t, order=first: t.map(lambda x: order.get(x, 3)), kind="stable")
        return out[cols].reset_index(drop=True)
    return pd.DataFrame(columns=cols)


def _correlate(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy import stats

    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    out = {"n": len(x), "pearson_r": math.nan, "pearson_p": math.nan,
           "spearman_rho": math.nan, "spearman_p": math.nan}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    r = stats.pearsonr(x, y)
    rho = stats.spearmanr(x, y)
    out.update(pearson_r=float(r.statistic), pearson_p=float(r.pvalue),
               spearman_rho=float(rho.statistic), spearman_p=float(rho.pvalue))
    return out


def cot_correlation(gains: pd.DataFrame) -> pd.DataFrame:
    """cot_correlation.csv: fine-tuning gain vs CoT gain, over models (each model's mean gains
    over its target languages) and over model x language cells."""
    cols = ["level", "n", "pearson_r", "pearson_p", "spearman_rho", "spearman_p"]
    data = gains.dropna(subset=["gain", "cot_gain"])
    per_model = data.groupby("model", sort=False)[["gain", "cot_gain"]].mean()
    rows = [{"level": "model", **_correlate(per_model["gain"].to_numpy(float), per_model["cot_gain"].to_numpy(float))},
            {"level": "model_language", **_correlate(data["gain"].to_numpy(float), data["cot_gain"].to_numpy(float))}]
    return pd.DataFrame(rows, columns=cols)
