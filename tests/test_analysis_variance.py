"""Variance decomposition: our REML against statsmodels and lme4, and known simulated components."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest

from transfergrid.analysis.frame import prepare
from transfergrid.analysis.simulate import simulate_results
from transfergrid.analysis.variance import (
    COMPONENTS,
    crossed_components,
    nested_components,
    nested_statsmodels,
    variance_decomposition,
)

SD = {"model": 1.5, "source": 1.5, "target": 1.5, "cell": 1.0, "seed": 0.5}


def small(seed: int):
    df = prepare(simulate_results(["arc_challenge", "global_mmlu"], ["en", "de", "fr", "es"], 5, 1, seed=seed, sd=SD))
    return df[df["regime"] == "CT-CL"]


@pytest.mark.parametrize("seed", [1, 4])
def test_crossed_equals_statsmodels_single_group_variance_components(seed):
    import statsmodels.api as sm

    part = small(seed)
    model = sm.MixedLM.from_formula(
        "delta ~ 1", part.assign(g=1), groups="g", re_formula="0",
        vc_formula={"model": "0 + C(model_name)", "source": "0 + C(source)", "target": "0 + C(target)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, method="lbfgs", maxiter=2000)
    assert fit.converged
    expect = {**dict(zip(model.exog_vc.names, fit.vcomp)), "residual": fit.scale}
    assert crossed_components(part) == pytest.approx(expect, rel=1e-3)


@pytest.mark.parametrize("seed", [2, 3])
def test_nested_equals_the_reference_statsmodels_fit(seed):
    part = small(seed)
    assert nested_components(part) == pytest.approx(nested_statsmodels(part), rel=2e-3)


def test_recovers_known_components_on_a_large_simulated_grid():
    sd = {"model": 2.0, "source": 1.0, "target": 1.5, "cell": 1.0, "seed": 0.0}
    df = prepare(simulate_results(["arc_challenge", "global_mmlu", "hellaswag", "truthfulqa"],
                                  ["ar", "bn", "de", "en", "es", "fr", "hi", "id"], 30, 1, seed=7, sd=sd))
    est = crossed_components(df[df["regime"] == "CT-CL"])
    assert est["residual"] == pytest.approx(1.0, rel=0.05)
    assert est["model"] == pytest.approx(4.0, rel=0.5)  # 30 levels: sampling error is large
    assert est["source"] == pytest.approx(1.0, rel=0.5)
    assert est["target"] == pytest.approx(2.25, rel=0.5)


def test_decomposition_table_shape_shares_and_single_model():
    df = prepare(simulate_results(["arc_challenge", "global_mmlu"], ["en", "de", "fr"], 3, 2, seed=1))
    table = variance_decomposition(df)
    assert set(table["subset"]) == {"all", "curated", "translated"}
    assert set(table["spec"]) == {"crossed", "nested"} and set(table["component"]) == set(COMPONENTS)
    sums = table.groupby(["subset", "scope", "spec"])["share"].sum()
    assert np.allclose(sums, 100.0)
    one = variance_decomposition(df[df["model_name"] == df["model_name"].iloc[0]])
    assert one.loc[one["component"] == "model", "variance"].isna().all()  # one model: not identifiable


def _has_lme4() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _has_lme4(), reason="needs Rscript with lme4 (Debian r-cran-lme4)")
def test_crossed_equals_lme4(tmp_path):
    part = small(5)
    path = tmp_path / "d.csv"
    part[["delta", "model_name", "source", "target"]].to_csv(path, index=False)
    script = (f"suppressMessages(library(lme4)); d <- read.csv('{path}'); "
              "f <- lmer(delta ~ 1 + (1|model_name) + (1|source) + (1|target), data=d, REML=TRUE); "
              "v <- as.data.frame(VarCorr(f)); cat(paste(v$grp, v$vcov, sep='=', collapse=';'))")
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True).stdout
    lme4 = {k: float(v) for k, v in (kv.split("=") for kv in out.strip().split(";"))}
    expect = {"model": lme4["model_name"], "source": lme4["source"], "target": lme4["target"],
              "residual": lme4["Residual"]}
    assert crossed_components(part) == pytest.approx(expect, rel=1e-3)


def test_a_failed_cholesky_at_an_extreme_theta_is_rejected_not_raised(monkeypatch):
    """Issue 11: at a huge θ the factorisation of Λ Z'Z Λ + I can fail in floating point. That θ
    must be a point the optimiser leaves (deviance +inf), and the fit must land where it would."""
    import numpy as np
    import scipy.linalg

    from transfergrid.analysis import variance

    part = small(5)
    real = scipy.linalg.cho_factor
    seen = []

    def recording(a, *args, **kwargs):
        seen.append(np.max(np.abs(a)))
        return real(a, *args, **kwargs)

    monkeypatch.setattr(variance.scipy.linalg, "cho_factor", recording)
    expect = crossed_components(part)
    limit = 1.03 * seen[-1]  # the last factorisation is at the optimum

    def fragile(a, *args, **kwargs):  # the factorisation fails a little past the optimum's θ
        if np.max(np.abs(a)) > limit:
            raise np.linalg.LinAlgError("36-th leading minor of the array is not positive definite")
        return real(a, *args, **kwargs)

    monkeypatch.setattr(variance.scipy.linalg, "cho_factor", fragile)
    got = crossed_components(part)
    assert got == pytest.approx(expect, rel=1e-4)
