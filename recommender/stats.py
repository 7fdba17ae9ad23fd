"""Statistics for A/B ranking experiments: proportion and ratio-metric tests, SRM checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import chi2 as chi2_dist
from scipy.stats import norm


@dataclass(frozen=True)
class Interval:
    """A closed confidence interval ``[low, high]``."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ProportionComparison:
    """Treatment against control for a per-trial rate such as impression-level CTR."""

    control_rate: float
    treatment_rate: float
    difference: float  # treatment_rate - control_rate (absolute)
    difference_ci: Interval | None  # unpooled Wald interval; None when an arm has no trials
    relative_lift: float | None  # treatment_rate / control_rate - 1; None if control rate is 0
    relative_lift_ci: Interval | None  # delta method on the log ratio; None when undefined
    z: float
    p_value: float  # two-sided


@dataclass(frozen=True)
class RatioSums:
    """Per-user sufficient statistics of a ratio metric for one arm.

    ``x`` is the numerator per user (e.g. clicks) and ``y`` the denominator per user (e.g.
    impressions); the sums run over the arm's users, the unit of randomisation.
    """

    users: int
    sum_x: float
    sum_y: float
    sum_x2: float
    sum_y2: float
    sum_xy: float

    def __post_init__(self) -> None:
        if self.users < 0:
            raise ValueError(f"users must be >= 0, got {self.users}")

    @classmethod
    def from_arrays(cls, x: ArrayLike, y: ArrayLike) -> RatioSums:
        """Sums from per-user numerators ``x`` and denominators ``y`` (same length)."""
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape:
            raise ValueError("x and y must be 1-d arrays of the same length")
        return cls(
            users=int(xs.size),
            sum_x=float(xs.sum()),
            sum_y=float(ys.sum()),
            sum_x2=float(xs @ xs),
            sum_y2=float(ys @ ys),
            sum_xy=float(xs @ ys),
        )


@dataclass(frozen=True)
class RatioComparison:
    """Treatment against control for a per-user ratio metric, by the delta method."""

    control_ratio: float  # sum_x / sum_y; 0.0 when the arm has no denominator
    treatment_ratio: float
    control_se: float | None  # delta-method standard error; None with < 2 users or sum_y == 0
    treatment_se: float | None
    difference: float  # treatment_ratio - control_ratio (absolute)
    difference_ci: Interval | None  # None when either arm's standard error is undefined
    relative_lift: float | None  # treatment_ratio / control_ratio - 1; None if control is 0
    relative_lift_ci: Interval | None  # delta method on the log ratio; None when undefined
    z: float
    p_value: float  # two-sided


@dataclass(frozen=True)
class SrmCheck:
    """Pearson chi-square goodness of fit of units per variant against the design's shares."""

    chi2: float
    dof: int
    p_value: float
    mismatch: bool  # p_value < alpha: assignment is broken, so don't trust the results
    expected: tuple[float, ...]  # expected units per variant under the design


def z_for(confidence: float) -> float:
    """The two-sided standard-normal critical value for ``confidence`` (0.95 -> 1.959964)."""
    _check_confidence(confidence)
    return float(norm.ppf(0.5 + confidence / 2.0))


def proportion_ci(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion.

    Assumes independent trials sharing one success probability. Wilson rather than the Wald
    interval ``p ± z·sqrt(p(1-p)/n)`` because CTRs sit near 0: Wald collapses to a zero-width
    interval at 0 successes and badly under-covers at small n or small p, while Wilson keeps
    close to nominal coverage there and never leaves [0, 1].

    With ``trials == 0`` nothing is known about the rate, so the interval is ``[0, 1]``.
    """
    _check_counts(successes, trials)
    _check_confidence(confidence)
    if trials == 0:
        return Interval(0.0, 1.0)
    z = z_for(confidence)
    n = float(trials)
    p = successes / n
    z2n = z * z / n
    denom = 1.0 + z2n
    center = (p + z2n / 2.0) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1, but centre - half leaves rounding residue
    # (~1e-18) there; elsewhere clamp only rounding error, as the interval lies within [0, 1].
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == trials else min(1.0, center + half)
    return Interval(low, high)


def two_proportion_z_test(
    control_successes: int,
    control_trials: int,
    treatment_successes: int,
    treatment_trials: int,
    confidence: float = 0.95,
) -> ProportionComparison:
    """Two-sided two-proportion z-test of treatment against control.

    Assumes every trial is independent (e.g. impressions, when impressions are the unit of
    randomisation) and both arms are large enough for the normal approximation. When users are
    randomised and contribute many correlated impressions, that assumption fails and this test
    is anti-conservative; use :func:`ratio_delta_test` instead.

    The test statistic uses the pooled standard error, which is the standard error under the
    null hypothesis of equal rates. The difference CI uses the unpooled standard error, since it
    must hold when the rates differ. The relative-lift CI applies the delta method to
    ``log(treatment_rate / control_rate)``, whose sampling distribution is closer to normal
    than the ratio's, and exponentiates back, so it is asymmetric like the ratio itself.

    An arm without trials, or pooled data without variance (all successes or none), gives no
    evidence: ``z = 0`` and ``p_value = 1``.
    """
    _check_counts(control_successes, control_trials)
    _check_counts(treatment_successes, treatment_trials)
    z_crit = z_for(confidence)
    nc, nt = float(control_trials), float(treatment_trials)
    pc = control_successes / nc if control_trials else 0.0
    pt = treatment_successes / nt if treatment_trials else 0.0
    difference = pt - pc
    if control_trials == 0 or treatment_trials == 0:
        return ProportionComparison(pc, pt, difference, None, None, None, 0.0, 1.0)

    pooled = (control_successes + treatment_successes) / (nc + nt)
    pooled_se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt))
    z, p_value = _z_and_p(difference, pooled_se)

    se = math.sqrt(pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt)
    difference_ci = Interval(difference - z_crit * se, difference + z_crit * se)

    relative_lift = pt / pc - 1.0 if pc > 0.0 else None
    lift_ci = None
    if pc > 0.0 and pt > 0.0:
        # Var(log p̂) ≈ Var(p̂)/p² = (1 - p)/(n p) for each arm; the arms are independent.
        log_se = math.sqrt((1.0 - pc) / (nc * pc) + (1.0 - pt) / (nt * pt))
        lift_ci = _lift_interval(pt / pc, log_se, z_crit)
    return ProportionComparison(
        pc, pt, difference, difference_ci, relative_lift, lift_ci, z, p_value
    )


def ratio_delta_test(
    control: RatioSums, treatment: RatioSums, confidence: float = 0.95
) -> RatioComparison:
    """Two-sided z-test of a per-user ratio metric (e.g. CTR = Σclicks / Σimpressions).

    Users are the randomisation unit, so they, not impressions, are the independent
    observations: a user's impressions share that user's click propensity, and treating them
    as independent (as a two-proportion test on pooled impressions does) underestimates the
    variance. The ratio estimate R = X̄/Ȳ is a ratio of means over users; by the delta method

        Var(R) ≈ (1/n) (σx²/μy² − 2 μx σxy/μy³ + μx² σy²/μy⁴)

    with sample means, variances and covariance (n − 1 denominators) plugged in. The arms are
    independent, so Var(R_t − R_c) = Var(R_t) + Var(R_c). The relative-lift CI applies the
    delta method once more, to log(R_t / R_c), with Var(log R) ≈ Var(R)/R².

    Assumes users are independent and identically distributed within an arm and there are
    enough of them (hundreds or more) for the central limit theorem to hold for X̄ and Ȳ.
    Reference: Deng, Knoblich & Lu (2018), "Applying the Delta Method in Metric Analytics:
    A Practical Guide with Novel Ideas", KDD 2018.

    An arm with fewer than two users or no denominator has no variance estimate; the test then
    gives no evidence (``z = 0``, ``p_value = 1``), as it does when the variance is zero.
    """
    z_crit = z_for(confidence)
    rc, var_c = _ratio_and_variance(control)
    rt, var_t = _ratio_and_variance(treatment)
    difference = rt - rc
    relative_lift = rt / rc - 1.0 if rc > 0.0 else None
    se_c = math.sqrt(var_c) if var_c is not None else None
    se_t = math.sqrt(var_t) if var_t is not None else None
    if var_c is None or var_t is None:
        return RatioComparison(rc, rt, se_c, se_t, difference, None, relative_lift, None, 0.0, 1.0)

    se = math.sqrt(var_c + var_t)
    z, p_value = _z_and_p(difference, se)
    difference_ci = Interval(difference - z_crit * se, difference + z_crit * se)
    lift_ci = None
    # rc > 0 and rt > 0 keep the log defined; a negative ratio (possible for signed metrics)
    # has no log either, so the lift interval is left undefined then too.
    if rc > 0.0 and rt > 0.0:
        log_se = math.sqrt(var_c / rc**2 + var_t / rt**2)
        lift_ci = _lift_interval(rt / rc, log_se, z_crit)
    return RatioComparison(
        rc, rt, se_c, se_t, difference, difference_ci, relative_lift, lift_ci, z, p_value
    )


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], alpha: float = 0.001
) -> SrmCheck:
    """Sample-ratio-mismatch check: Pearson chi-square goodness of fit, ``k - 1`` dof.

    ``observed`` is the count of randomisation units (users) per variant and ``weights`` the
    design's traffic split, normalised here so ``[1, 1]`` and ``[0.5, 0.5]`` mean the same.
    Assumes units are assigned independently. The default ``alpha`` is deliberately strict:
    this check runs on every experiment, repeatedly, and a flag means discarding the results,
    so false alarms are costly, while real assignment bugs usually give tiny p-values.

    With no units at all there is nothing to check: no mismatch, ``p_value = 1``.
    """
    if len(observed) != len(weights):
        raise ValueError("observed and weights must have the same length")
    if len(observed) < 2:
        raise ValueError("need at least two variants")
    if any(count < 0 for count in observed):
        raise ValueError("observed counts must be >= 0")
    if not all(math.isfinite(w) and w > 0.0 for w in weights):
        raise ValueError("weights must be positive and finite")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")

    dof = len(observed) - 1
    total = float(sum(observed))
    weight_sum = float(sum(weights))
    expected = tuple(total * w / weight_sum for w in weights)
    if total == 0.0:
        return SrmCheck(0.0, dof, 1.0, False, expected)
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = float(chi2_dist.sf(stat, dof))
    return SrmCheck(float(stat), dof, p_value, p_value < alpha, expected)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")


def _z_and_p(difference: float, se: float) -> tuple[float, float]:
    """z statistic and two-sided p-value; no variance means no evidence rather than z = ±inf."""
    if se <= 0.0:
        return 0.0, 1.0
    z = difference / se
    # sf(|z|) rather than 1 - cdf(|z|): keeps precision for tiny p-values.
    return z, float(2.0 * norm.sf(abs(z)))


def _lift_interval(ratio: float, log_se: float, z_crit: float) -> Interval:
    log_ratio = math.log(ratio)
    return Interval(
        math.exp(log_ratio - z_crit * log_se) - 1.0, math.exp(log_ratio + z_crit * log_se) - 1.0
    )


def _ratio_and_variance(arm: RatioSums) -> tuple[float, float | None]:
    """The arm's ratio and its delta-method variance (None when it cannot be estimated)."""
    if arm.sum_y == 0.0:
        return 0.0, None
    ratio = arm.sum_x / arm.sum_y
    n = arm.users
    if n < 2:
        return ratio, None
    mean_x = arm.sum_x / n
    mean_y = arm.sum_y / n
    var_x = (arm.sum_x2 - n * mean_x * mean_x) / (n - 1)
    var_y = (arm.sum_y2 - n * mean_y * mean_y) / (n - 1)
    cov_xy = (arm.sum_xy - n * mean_x * mean_y) / (n - 1)
    variance = (
        var_x / mean_y**2 - 2.0 * mean_x * cov_xy / mean_y**3 + mean_x**2 * var_y / mean_y**4
    ) / n
    # The bracket is a quadratic form in a covariance matrix, so it is >= 0 up to rounding;
    # clamp so the rounding error can never reach sqrt as a negative number.
    return ratio, max(variance, 0.0)
