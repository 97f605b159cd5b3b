"""Crossed variance decomposition: transfergrid's REML against R's lme4 on the same simulated grid.

For each scope of the full-size simulated grid (all transfer cells and each regime), fits
Δ ~ 1 + (1|model) + (1|source) + (1|target) by REML with `analysis.variance.crossed_components`
and with `lme4::lmer` (Rscript; Debian package r-cran-lme4), prints both, each one's time, and
whether they agree to 3 significant digits.

    .venv/bin/python benchmarks/variance_lme4.py [--models 9] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

R_SCRIPT = """
suppressMessages(library(lme4))
d <- read.csv('{path}')
t0 <- proc.time()[['elapsed']]
f <- lmer(delta ~ 1 + (1|model_name) + (1|source) + (1|target), data = d, REML = TRUE)
t1 <- proc.time()[['elapsed']]
v <- as.data.frame(VarCorr(f))
cat(paste(v$grp, sprintf('%.10g', v$vcov), sep = '=', collapse = ';'), sprintf('time=%.3f', t1 - t0), sep = ';')
"""


def lme4_fit(part, workdir: Path) -> tuple[dict[str, float], float]:
    path = workdir / "scope.csv"
    part[["delta", "model_name", "source", "target"]].to_csv(path, index=False)
    out = subprocess.run(["Rscript", "-e", R_SCRIPT.format(path=path)], capture_output=True, text=True, check=True)
    values = dict(kv.split("=") for kv in out.stdout.strip().split(";"))
    names = {"model_name": "model", "source": "source", "target": "target", "Residual": "residual"}
    return {names[k]: float(v) for k, v in values.items() if k in names}, float(values["time"])


def same_3_digits(a: float, b: float) -> bool:
    return float(f"{a:.3g}") == float(f"{b:.3g}") or abs(a - b) <= 5e-4 * max(abs(a), abs(b))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("Rscript") is None:
        print("Rscript not found: install R and lme4 (Debian: apt-get install r-cran-lme4)")
        return 2

    from transfergrid.analysis.frame import prepare
    from transfergrid.analysis.simulate import REFERENCE_MODELS, simulate_results
    from transfergrid.analysis.variance import SCOPES, crossed_components

    version = subprocess.run(["Rscript", "-e", "cat(as.character(packageVersion('lme4')))"],
                             capture_output=True, text=True, check=False).stdout.strip()
    df = prepare(simulate_results(models=REFERENCE_MODELS[: args.models], seed=args.seed))
    print(f"grid: {len(df):,} cells; lme4 {version}")
    print(f"{'scope':<9} {'component':<9} {'transfergrid':>13} {'lme4':>13}  3 digits")
    agree = True
    with tempfile.TemporaryDirectory() as tmp:
        for scope, regimes in SCOPES.items():
            part = df[df["regime"].isin(regimes)]
            t0 = time.perf_counter()
            ours = crossed_components(part)
            ours_s = time.perf_counter() - t0
            theirs, theirs_s = lme4_fit(part, Path(tmp))
            for comp in ("model", "source", "target", "residual"):
                ok = same_3_digits(ours[comp], theirs[comp])
                agree &= ok
                print(f"{scope:<9} {comp:<9} {ours[comp]:13.6g} {theirs[comp]:13.6g}  {'yes' if ok else 'NO'}")
            print(f"{scope:<9} time      {ours_s:12.2f}s {theirs_s:12.2f}s  (n={len(part):,})")
    print("all components agree to 3 significant digits" if agree else "DISAGREEMENT")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
