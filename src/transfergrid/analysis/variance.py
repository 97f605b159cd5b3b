"""Variance decomposition of Δ into model, source, target and residual (MISSION.md).

crossed (default): Δ ~ 1 + (1|model) + (1|source) + (1|target), the model lme4 fits with that
    formula. Source and target cells are the same cells for every model, so they are crossed with
    model, not nested in it.
nested (the reference): statsmodels `MixedLM(groups=model, vc_formula={source, target})`, which
    draws fresh source and target effects inside every model: Δ ~ 1 + (1|model) + (1|model:source)
    + (1|model:target). It is the same likelihood as a crossed fit with those three factors, so
    `reml_random_intercepts` fits both; `nested_statsmodels` runs the reference's own fit (used by
    the tests and the benchmark to show the numbers agree).

`reml_random_intercepts` is REML for any set of random intercepts, in lme4's profiled form
(Bates et al. 2015, "Fitting Linear Mixed-Effects Models Using lme4", section 3): with relative
scales θ_k = σ_k / σ and Λ = diag(θ), for a fixed intercept X = 1,

    M(θ) = [[Λ Z'Z Λ + I, Λ Z'X], [X'Z Λ, X'X]],   r²(θ) = y'y - c' M⁻¹ c,   c = [Λ Z'y; X'y]
    -2 REML(θ) = log det M + (n - p) (1 + log(2π r² / (n - p))),   σ² = r² / (n - p).

Everything depends on the data only through Z'Z, Z'y, y'y (q × q with q = the number of levels),
so one evaluation costs a q × q Cholesky, whatever n is; less for nested factors, whose levels in
different groups never meet and so factorise block by block.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from transfergrid.analysis.frame import construction, ensure_prepared
from transfergrid.analysis.regimes import CT_CL, CT_ML, MT_CL, TRANSFER

log = logging.getLogger(__name__)

COMPONENTS = ("model", "source", "target", "residual")
VARIANCE_COLUMNS = ["subset", "scope", "spec", "component", "variance", "share"]
SCOPES = {"transfer": TRANSFER, MT_CL: (MT_CL,), CT_ML: (CT_ML,), CT_CL: (CT_CL,)}
SUBSETS = ("all", "curated", "translated")
SPECS = ("crossed", "nested")
# The reference fits "Overall" (all transfer cells) whatever its size and skips a regime with fewer
# than 50 rows; below 3 rows no REML fit is defined at all.
MIN_ROWS = 50
MIN_ROWS_OVERALL = 3


def reml_random_intercepts(y, factors: Mapping[str, np.ndarray]) -> dict[str, float]:
    """REML variance of each random-intercept factor and of the residual ("residual").

    `factors` maps a name to one label per observation. A factor with fewer than 2 levels has no
    identifiable variance and is reported as NaN.
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    names = list(factors)
    usable = [k for k in names if len(pd.unique(np.asarray(factors[k]))) >= 2]
    blocks, owner = [], []
    for j, name in enumerate(usable):
        codes, levels = pd.factorize(np.asarray(factors[name]), sort=False)
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, len(levels))))
        owner += [j] * len(levels)
    owner = np.asarray(owner, dtype=int)
    out = {k: np.nan for k in names}
    if n < 3:
        out["residual"] = np.nan
        return out
    if not usable:
        out["residual"] = float(np.var(y, ddof=1))
        return out
    Z = sp.hstack(blocks, format="csr")
    p = 1
    # Sufficient statistics. Random effects that never share an observation (levels of nested
    # factors in different groups) form separate diagonal blocks of Z'Z: factorise block by block.
    ZtZ = (Z.T @ Z).tocsr()
    zx = np.asarray(Z.sum(axis=0)).ravel()  # Z'X with X = 1
    zy = Z.T @ y
    xx, xy, yy = float(n), float(y.sum()), float(y @ y)
    _, component = connected_components(ZtZ, directed=False)
    parts = [np.flatnonzero(component == b) for b in range(component.max() + 1)]
    parts = [(idx, ZtZ[idx][:, idx].toarray(), zx[idx], zy[idx], owner[idx]) for idx in parts]

    def profile(theta: np.ndarray) -> tuple[float, float]:
        """(log det M, r²) at θ."""
        logdet, quad, schur, t = 0.0, 0.0, xx, xy
        for _, A0, bx, by, own in parts:
            lam = theta[own]
            A = A0 * lam[:, None] * lam[None, :]
            A[np.diag_indices_from(A)] += 1.0
            chol = scipy.linalg.cho_factor(A, lower=True, check_finite=False)
            b, c = bx * lam, by * lam
            sol = scipy.linalg.cho_solve(chol, np.column_stack([b, c]), check_finite=False)
            logdet += 2.0 * np.log(np.diag(chol[0])).sum()
            quad += c @ sol[:, 1]
            schur -= b @ sol[:, 0]
            t -= b @ sol[:, 1]
        return logdet + np.log(schur), yy - quad - t * t / schur

    def deviance(theta: np.ndarray) -> float:
        # At an extreme θ the +1 on the diagonal of Λ Z'Z Λ + I is lost to rounding and the Cholesky
        # fails although the matrix is positive definite in exact arithmetic: a point the optimiser
        # must leave, not an error. It gets +inf, and L-BFGS-B's line search steps back from it.
        try:
            logdet, r2 = profile(theta)
        except (np.linalg.LinAlgError, ValueError):
            walls.append(theta.copy())
            return np.inf
        if not (r2 > 0 and np.isfinite(logdet)):
            return np.inf
        return logdet + (n - p) * (1.0 + np.log(2.0 * np.pi * r2 / (n - p)))

    k = len(usable)
    walls: list[np.ndarray] = []  # θs where the factorisation failed
    best = (np.zeros(k), deviance(np.zeros(k)))  # θ = 0 (no random effects) is always defined
    for start in (np.ones(k), np.full(k, 0.2)):  # lme4 starts at θ = 1; a second start guards boundaries
        if start[0] != 1.0 and not walls and np.all(best[0] > 1e-3):
            break  # the first fit ended inside the domain, unhindered: no boundary to guard
        walls.clear()
        if not np.isfinite(deviance(start)):
            continue
        with np.errstate(all="ignore"):
            res = scipy.optimize.minimize(deviance, start, method="L-BFGS-B", bounds=[(0.0, None)] * k,
                                          options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000})
        x = np.clip(res.x, 0.0, None)
        fx = deviance(x)
        if walls and not res.success:  # stopped at a wall of +inf: finish derivative-free, around it
            with np.errstate(all="ignore"):
                res = scipy.optimize.minimize(deviance, x, method="Nelder-Mead", bounds=[(0.0, None)] * k,
                                              options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
            if res.fun < fx:
                x, fx = np.clip(res.x, 0.0, None), deviance(np.clip(res.x, 0.0, None))
        if fx < best[1]:
            best = (x, fx)
    theta = best[0]
    sigma2 = profile(theta)[1] / (n - p)
    for j, name in enumerate(usable):
        out[name] = float(theta[j] ** 2 * sigma2)
    out["residual"] = float(sigma2)
    return out


def crossed_components(frame: pd.DataFrame) -> dict[str, float]:
    """Δ ~ 1 + (1|model) + (1|source) + (1|target) on a prepared frame."""
    return reml_random_intercepts(frame["delta"].to_numpy(), {
        "model": frame["model_name"].to_numpy(), "source": frame["source"].to_numpy(),
        "target": frame["target"].to_numpy()})


def nested_components(frame: pd.DataFrame) -> dict[str, float]:
    """The reference's nested model, fitted by our REML (same likelihood as statsmodels')."""
    m = frame["model_name"].astype(str).to_numpy()
    return reml_random_intercepts(frame["delta"].to_numpy(), {
        "model": m, "source": m + "|" + frame["source"].astype(str).to_numpy(),
        "target": m + "|" + frame["target"].astype(str).to_numpy()})


def nested_statsmodels(frame: pd.DataFrame) -> dict[str, float]:
    """The reference's own fit: statsmodels MixedLM(groups=model, vc_formula={source, target}), REML."""
    import statsmodels.formula.api as smf

    data = pd.DataFrame({"delta": frame["delta"].to_numpy(), "model": frame["model_name"].to_numpy(),
                         "source": frame["source"].to_numpy(), "target": frame["target"].to_numpy()})
    model = smf.mixedlm("delta ~ 1", data, groups="model", re_formula="1", use_sparse=True,
                        vc_formula={"source": "0 + C(source)", "target": "0 + C(target)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference silenced its convergence warnings too
        fit = model.fit(reml=True, method="lbfgs", maxiter=1000)
    comps = dict(zip(model.exog_vc.names, np.asarray(fit.vcomp, dtype=float)))
    return {"model": float(fit.cov_re.iloc[0, 0]), "source": float(comps["source"]),
            "target": float(comps["target"]), "residual": float(fit.scale)}


def subset_mask(frame: pd.DataFrame, subset: str) -> pd.Series:
    """The reference's subsets of the transfer cells: "curated" = every cell whose source or target
    task is a curated set (Global-MMLU in the release), "translated" = every cell where neither is."""
    if subset == "all":
        return pd.Series(True, index=frame.index)
    curated = (frame["source_task"].map(construction) == "curated") | (frame["construction"] == "curated")
    return curated if subset == "curated" else ~curated


def variance_decomposition(frame: pd.DataFrame, specs=SPECS) -> pd.DataFrame:
    """Variance and % share of each component, per subset (`subset_mask`), scope (all transfer
    cells, each regime) and spec. nested = the reference's model; crossed = what we recommend."""
    df = ensure_prepared(frame)
    df = df.loc[df["regime"].isin(TRANSFER)]
    fitters = {"crossed": crossed_components, "nested": nested_components}
    rows = []
    for subset in SUBSETS:
        sub = df.loc[subset_mask(df, subset)]
        for scope, regimes in SCOPES.items():
            part = sub.loc[sub["regime"].isin(regimes)]
            least = MIN_ROWS_OVERALL if scope == "transfer" else MIN_ROWS
            if len(part) < least:
                if len(sub):
                    log.info("variance: %s/%s has %d cells (< %d): skipped", subset, scope, len(part), least)
                continue
            for spec in specs:
                comps = fitters[spec](part)
                total = sum(v for v in comps.values() if np.isfinite(v))
                for comp in COMPONENTS:
                    v = comps.get(comp, np.nan)
                    rows.append({"subset": subset, "scope": scope, "spec": spec, "component": comp,
                                 "variance": v, "share": 100.0 * v / total if total > 0 else np.nan})
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)
