"""Statistics of experiment arms, with scipy: per arm the count, mean,
standard deviation and a confidence interval of the quality score; between
two arms Welch's t-test on scores and a two-proportion test (chi-square on
the 2x2 table, no continuity correction, which equals the z-test) on
feedback and error rates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ArmSummary:
    count: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


def summarise(scores: list[float], confidence: float = 0.95) -> ArmSummary:
    """Mean with a t-based confidence interval (sample standard deviation)."""
    n = len(scores)
    if n == 0:
        return ArmSummary(0, math.nan, math.nan, math.nan, math.nan)
    values = np.asarray(scores, dtype=float)
    mean = float(values.mean())
    if n == 1:
        return ArmSummary(1, mean, 0.0, mean, mean)
    std = float(values.std(ddof=1))
    if std == 0.0:
        return ArmSummary(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=std / math.sqrt(n))
    return ArmSummary(n, mean, std, float(low), float(high))


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test; 1.0 when it cannot be computed."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    if np.var(a) < 1e-18 and np.var(b) < 1e-18:
        # Constant scores: rounding noise must not read as a difference.
        return 1.0 if abs(float(np.mean(a)) - float(np.mean(b))) <= 1e-9 else 0.0
    result = stats.ttest_ind(a, b, equal_var=False)
    p = float(result.pvalue)
    return 1.0 if math.isnan(p) else p


def proportion_p_value(successes_a: int, total_a: int, successes_b: int, total_b: int) -> float:
    """Two-sided p of the two-proportion test; 1.0 when a table is degenerate."""
    if total_a == 0 or total_b == 0:
        return 1.0
    table = [[successes_a, total_a - successes_a], [successes_b, total_b - successes_b]]
    if any(sum(column) == 0 for column in zip(*table, strict=True)):
        return 1.0  # nobody, or everybody, in both arms: no difference to test
    return float(stats.chi2_contingency(table, correction=False).pvalue)
