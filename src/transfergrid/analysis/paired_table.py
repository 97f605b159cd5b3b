"""Statistics on one paired 2 x 2 table of (before, after) outcomes per item (study 2's gains).

* McNemar: b = items right before and wrong after, c = wrong before and right after. b + c < 25:
  exact two-sided binomial test on the discordant pairs, p = min(1, 2 P[X <= min(b, c)]),
  X ~ Bin(b + c, 1/2); otherwise the chi-square statistic with continuity correction
  (|b - c| - 1)^2 / (b + c), 1 degree of freedom (as statsmodels' `mcnemar(exact=..., correction=True)`).
* Newcombe's hybrid score interval for the paired difference in proportions (method 10 of
  Newcombe, Statistics in Medicine 17 (1998) 2635-2650): Wilson score limits of both margins,
  combined with the table's phi correlation.
"""

from __future__ import annotations

import math

EXACT_BELOW = 25  # discordant pairs below which McNemar uses the exact binomial test


def mcnemar(b: int, c: int, *, exact_below: int = EXACT_BELOW) -> tuple[str, float, float]:
    """(method, statistic, p) of McNemar's test from the discordant counts b and c."""
    from scipy import stats

    n = b + c
    if n == 0:
        return "exact", 0.0, 1.0
    if n < exact_below:
        k = min(b, c)
        return "exact", float(k), float(min(1.0, 2.0 * stats.binom.cdf(k, n, 0.5)))
    stat = (abs(b - c) - 1.0) ** 2 / n
    return "chi2", float(stat), float(stats.chi2.sf(stat, 1))


def wilson_interval(x: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval for the proportion x / n (no continuity correction)."""
    p = x / n
    centre = 2 * x + z * z
    half = z * math.sqrt(z * z + 4 * x * (1 - p))
    denom = 2 * (n + z * z)
    return (centre - half) / denom, (centre + half) / denom


def newcombe_paired_interval(both: int, only_after: int, only_before: int, neither: int,
                             level: float = 0.95) -> tuple[float, float]:
    """Newcombe (1998, paired, method 10) interval for p_after - p_before.

    `both` = right before and after, `only_after` = wrong before, right after (c),
    `only_before` = right before, wrong after (b), `neither` = wrong both times.
    """
    from scipy.stats import norm

    e, f, g, h = both, only_after, only_before, neither
    n = e + f + g + h
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + level / 2))
    p1, p2 = (e + f) / n, (e + g) / n
    l1, u1 = wilson_interval(e + f, n, z)
    l2, u2 = wilson_interval(e + g, n, z)
    margins = (e + f) * (g + h) * (e + g) * (f + h)
    num = e * h - f * g
    if num > 0:
        num = max(num - n / 2, 0.0)
    phi = num / math.sqrt(margins) if margins > 0 else 0.0
    d = p1 - p2
    lower = d - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = d + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return lower, upper
