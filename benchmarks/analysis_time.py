"""Study-1 analysis time: every transfergrid table vs the reference's variance decomposition alone.

Both sides run in this process on one simulated full-size grid (9 models × 44 sources × 44 targets,
3 seeds: 17,424 cells, `analysis.simulate.simulate_results`):

* transfergrid: the whole analysis: `tables.compute_tables` (prepare + all 14 tables, including the crossed and nested
  variance decompositions — 24 REML fits — consistency, lang2vec and URIEL+ distances with 9,999
  permutations), then every figure (PNG + SVG) and the HTML report;
* the reference: its variance decomposition method, statsmodels `MixedLM(groups=model,
  vc_formula={source, target}, re_formula="1", use_sparse=True).fit(reml=True, method="lbfgs")`,
  once per subset (all, curated, translated) × scope (transfer, MT-CL, CT-ML, CT-CL) = 12 fits.

It also prints how far our nested estimates are from statsmodels' (same model, same likelihood).

    .venv/bin/python benchmarks/analysis_time.py [--models 9] [--seeds 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def reference_fit(part):
    """The reference's call (its analysis/variance_decomposition.py), timed as it runs there."""
    import warnings

    import pandas as pd
    import statsmodels.formula.api as smf

    data = pd.DataFrame({"delta": part["delta"].to_numpy(), "model": part["model_name"].to_numpy(),
                         "source": part["source"].to_numpy(), "target": part["target"].to_numpy()})
    model = smf.mixedlm("delta ~ 1", data, groups="model", re_formula="1", use_sparse=True,
                        vc_formula={"source": "0 + C(source)", "target": "0 + C(target)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, method="lbfgs", maxiter=1000)
    comps = dict(zip(model.exog_vc.names, np.asarray(fit.vcomp, dtype=float)))
    out = {"model": float(fit.cov_re.iloc[0, 0]), "source": comps["source"], "target": comps["target"],
           "residual": float(fit.scale)}
    return out, model, fit


def reml_loglike(model, part, comps) -> float:
    """statsmodels' REML log-likelihood of `model` at the given variance components."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    scale = comps["residual"]
    names = list(model.exog_vc.names)
    params = MixedLMParams.from_components(
        fe_params=np.array([part["delta"].mean()]), cov_re=np.array([[comps["model"] / scale]]),
        vcomp=np.array([comps[n] / scale for n in names]))
    return float(model.loglike(params, profile_fe=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=9, help="first N of the reference's 9 models")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-urielplus", action="store_true", help="lang2vec distances only")
    args = parser.parse_args()

    import pandas as pd
    import statsmodels

    from transfergrid.analysis.frame import prepare
    from transfergrid.analysis.simulate import REFERENCE_MODELS, simulate_results
    from transfergrid.analysis.tables import compute_tables
    from transfergrid.analysis.variance import SCOPES, SUBSETS
    from transfergrid.report.figures import write_figures
    from transfergrid.report.html import write_report

    frame = simulate_results(models=REFERENCE_MODELS[: args.models], seeds=args.seeds, seed=0)
    print(f"grid: {len(frame):,} cells, {args.models} models, {args.seeds} seeds; "
          f"python {platform.python_version()}, pandas {pd.__version__}, statsmodels {statsmodels.__version__}")

    start = time.perf_counter()
    tables = compute_tables(frame, urielplus=not args.no_urielplus)
    t_tables = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        figures = write_figures(tables, Path(out) / "figures")
        write_report(Path(out), tables, figures, title="analysis benchmark")
    ours = time.perf_counter() - start
    print(f"transfergrid whole analysis: {ours:.1f} s (all {len(tables)} tables {t_tables:.1f} s, "
          f"{len(figures)} figure files + report.html {ours - t_tables:.1f} s)")

    df = prepare(frame)
    ref_times, diffs, better = [], [], []
    ours_nested = tables["variance_decomposition"].query("spec == 'nested'").set_index(
        ["subset", "scope", "component"])["variance"]
    for subset in SUBSETS:
        sub = df if subset == "all" else df[df["construction"] == subset]
        for scope, regimes in SCOPES.items():
            part = sub[sub["regime"].isin(regimes)]
            t0 = time.perf_counter()
            ref, model, fit = reference_fit(part)
            ref_times.append(time.perf_counter() - t0)
            mine = {comp: ours_nested[(subset, scope, comp)] for comp in ref}
            diff = max(abs(mine[c] - ref[c]) / max(abs(ref[c]), 1e-3) for c in ref)
            diffs.append(diff)
            note = ""
            if diff > 1e-3:  # judge by statsmodels' own REML log-likelihood at both estimates
                llf_ours = reml_loglike(model, part, mine)
                better.append(llf_ours >= fit.llf - 1e-6)
                note = f"  differs by {diff:.1e}: REML loglik ours {llf_ours:.3f} vs statsmodels {fit.llf:.3f}"
            print(f"  reference nested fit {subset:>10} / {scope:<8} n={len(part):>6,}: {ref_times[-1]:6.1f} s{note}")
    reference = sum(ref_times)
    print(f"reference variance decomposition (12 statsmodels fits): {reference:.1f} s")
    agree = sum(d <= 1e-3 for d in diffs)
    print(f"nested variances: {agree} of {len(diffs)} fits agree with statsmodels to 1e-3 (relative); "
          f"where not, ours has the higher REML log-likelihood in {sum(better)} of {len(better)}")
    print(f"ratio: reference variance alone / transfergrid whole analysis = {reference / ours:.1f}x")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
