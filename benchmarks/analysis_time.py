"""Study-1 analysis time: transfergrid's whole `analyze` vs the reference's variance step alone.

Input: the released results of "Donors and Recipients" (../shared/data/dnr_release/
transfer_results.csv, found by the project's data-dir resolution; `--results` for another file,
`--simulate` for a simulated full-size grid).

* transfergrid: `transfergrid analyze --results FILE --out TMP` as a user runs it, in a fresh
  process (imports, reading, all tables, every figure as PNG + SVG, report.html), timed twice:
  before and after the reference, so that load from other processes hits both sides.
* the reference: its variance step (analysis/analysis.py → chapters/variance_decomposition.py),
  reimplemented as it calls statsmodels: for the transfer cells, the Global-MMLU subset (source or
  target task global_mmlu) and the translated subset (neither), one fit "Overall" and one per
  regime with >= 50 rows: `MixedLM.from_formula("delta ~ 1", groups="model_id", re_formula="1",
  vc_formula={"source": "0 + C(source_id)", "target": "0 + C(target_id)"}, use_sparse=True)
  .fit(reml=True, method="lbfgs", maxiter=1000)`: 12 fits on the release.

It also prints how far our nested variance shares are from statsmodels' (same model and likelihood;
where they differ, statsmodels' own REML log-likelihood says which estimate is better).

    .venv/bin/python benchmarks/analysis_time.py [--results FILE | --simulate]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REGIMES = ("MT-CL", "CT-ML", "CT-CL")
MIN_ROWS = 50  # the reference's min_rows per regime


def reference_variance_step(frame: pd.DataFrame) -> tuple[dict, dict]:
    """The reference's 12 fits, as it calls them: {(subset, scope): (shares %, model, fit)}, seconds."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    transfer = frame[frame["regime"] != "MT-ML"]
    gm = (transfer["fine_tuned_dataset"] == "global_mmlu") | (transfer["eval_dataset"] == "global_mmlu")
    subsets = {"all": transfer, "curated": transfer[gm], "translated": transfer[~gm]}
    fits, seconds = {}, {}
    for subset, sub in subsets.items():
        for scope in ("transfer", *REGIMES):
            part = sub if scope == "transfer" else sub[sub["regime"] == scope]
            if scope != "transfer" and len(part) < MIN_ROWS:
                continue
            start, cpu = time.perf_counter(), time.process_time()
            work = part.copy()
            work["delta"] = pd.to_numeric(work["delta_score_norm_mean"], errors="coerce")
            work = work.dropna(subset=["delta"])
            work["model_id"] = work["model_name"].astype(str).astype("category")
            work["source_id"] = (work["fine_tuned_dataset"] + "⟂" + work["fine_tuned_language"]).astype("category")
            work["target_id"] = (work["eval_dataset"] + "⟂" + work["eval_language"]).astype("category")
            model = MixedLM.from_formula("delta ~ 1", groups="model_id", re_formula="1", data=work, use_sparse=True,
                                         vc_formula={"source": "0 + C(source_id)", "target": "0 + C(target_id)"})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the reference silences these too
                fit = model.fit(reml=True, method="lbfgs", maxiter=1000, disp=False)
            comps = {"model": float(fit.cov_re.iloc[0, 0]), **dict(zip(("source", "target"), map(float, fit.vcomp))),
                     "residual": float(fit.scale)}
            seconds[(subset, scope)] = (time.perf_counter() - start, time.process_time() - cpu)
            fits[(subset, scope)] = (comps, model, fit, work)
    return fits, seconds


def reml_loglike(model, work, comps) -> float:
    """statsmodels' REML log-likelihood of `model` at the given variance components."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    scale = comps["residual"]
    # statsmodels takes log(variance): a component estimated at 0 is evaluated at 1e-10 of the residual.
    ratio = {k: max(comps[k] / scale, 1e-10) for k in ("model", "source", "target")}
    params = MixedLMParams.from_components(
        fe_params=np.array([work["delta"].mean()]), cov_re=np.array([[ratio["model"]]]),
        vcomp=np.array([ratio["source"], ratio["target"]]))
    return float(model.loglike(params, profile_fe=True))


def run_ours(results: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of `transfergrid analyze` in a fresh process."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "transfergrid", "analyze", "--results", str(results), "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    np.seterr(all="ignore")  # statsmodels' log(0) at a zero component is handled above
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="a results CSV (default: the released results)")
    parser.add_argument("--simulate", action="store_true", help="a simulated 9-model full grid instead")
    args = parser.parse_args()

    import statsmodels

    from transfergrid.analysis.frame import write_results

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.simulate:
            from transfergrid.analysis.simulate import simulate_results

            results = write_results(simulate_results(seed=0), tmp / "simulated.csv")
        elif args.results is not None:
            results = args.results
        else:
            from transfergrid.data import resolve_data_dir

            results = resolve_data_dir() / "dnr_release" / "transfer_results.csv"
        frame = pd.read_csv(results)
        print(f"input: {results} ({len(frame):,} rows); python {platform.python_version()}, pandas "
              f"{pd.__version__}, statsmodels {statsmodels.__version__}, {os.cpu_count()} CPUs")

        ours_1 = run_ours(results, tmp / "analysis")
        print(f"transfergrid analyze (whole analysis, fresh process): {ours_1[0]:.1f} s wall, {ours_1[1]:.1f} s CPU")
        fits, seconds = reference_variance_step(frame)
        for key, (wall, cpu) in seconds.items():
            print(f"  reference fit {key[0]:>10} / {key[1]:<8} n={len(fits[key][3]):>6,}: {wall:6.1f} s wall, "
                  f"{cpu:6.1f} s CPU")
        reference = tuple(sum(v[i] for v in seconds.values()) for i in (0, 1))
        print(f"reference variance step ({len(seconds)} statsmodels fits): {reference[0]:.1f} s wall, "
              f"{reference[1]:.1f} s CPU")
        ours_2 = run_ours(results, tmp / "analysis")
        print(f"transfergrid analyze again: {ours_2[0]:.1f} s wall, {ours_2[1]:.1f} s CPU")

        ours_table = pd.read_csv(tmp / "analysis" / "tables" / "variance_decomposition.csv")
        nested = ours_table[ours_table["spec"] == "nested"].set_index(["subset", "scope", "component"])["variance"]
        agree, better, total = 0, 0, 0
        for (subset, scope), (comps, model, fit, work) in fits.items():
            if (subset, scope, "model") not in nested.index:
                print(f"  {subset}/{scope}: not fitted by transfergrid")
                continue
            total += 1
            mine = {c: float(nested[(subset, scope, c)]) for c in comps}
            s_ref, s_mine = sum(comps.values()), sum(mine.values())
            gap = max(abs(100 * mine[c] / s_mine - 100 * comps[c] / s_ref) for c in comps)
            if gap <= 0.05:
                agree += 1
                continue
            llf = reml_loglike(model, work, mine)
            better += llf >= fit.llf - 1e-6
            print(f"  {subset}/{scope}: shares differ by up to {gap:.2f} points; REML log-likelihood "
                  f"ours {llf:.3f} vs statsmodels {fit.llf:.3f}")
        print(f"nested shares: {agree} of {total} fits agree with statsmodels to 0.05 percentage points; where "
              f"not, ours has the higher REML log-likelihood in {better} of {total - agree}")
        for i, what in enumerate(("wall", "CPU")):
            ours = (ours_1[i] + ours_2[i]) / 2
            print(f"ratio ({what} time): reference variance step alone / transfergrid whole analysis (mean of "
                  f"both runs) = {reference[i] / ours:.1f}x")


if __name__ == "__main__":
    main()
