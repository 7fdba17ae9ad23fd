"""A/B experiment statistics: hand-computed values, edge cases, and simulations with known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import binom

from recommender.stats import (
    Interval,
    RatioComparison,
    RatioSums,
    proportion_ci,
    ratio_delta_test,
    sample_ratio_mismatch,
    two_proportion_z_test,
    z_for,
)

Z95 = 1.959963984540054  # Φ⁻¹(0.975)


# --- z_for -------------------------------------------------------------------------------


def test_z_for_known_critical_values():
    assert z_for(0.95) == pytest.approx(Z95, abs=1e-9)
    assert z_for(0.90) == pytest.approx(1.644853627, abs=1e-6)
    assert z_for(0.99) == pytest.approx(2.575829304, abs=1e-6)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_z_for_rejects_confidence_outside_open_unit_interval(confidence):
    with pytest.raises(ValueError):
        z_for(confidence)


# --- Wilson interval ---------------------------------------------------------------------


def test_wilson_interval_for_50_of_1000():
    # p̂ = 0.05, n = 1000, z = 1.959964, z² = 3.841459, z²/n = 0.003841459
    # centre = (p̂ + z²/2n) / (1 + z²/n) = (0.05 + 0.001920730) / 1.003841459 = 0.05172225
    # half   = z·sqrt(p̂(1-p̂)/n + z²/4n²) / (1 + z²/n)
    #        = 1.959964 · sqrt(4.75e-5 + 9.603648e-7) / 1.003841459
    #        = 1.959964 · 0.006961348 / 1.003841459 = 0.01359178
    # interval = (0.05172225 - 0.01359178, 0.05172225 + 0.01359178) = (0.03813047, 0.06531403)
    ci = proportion_ci(50, 1000)
    assert ci.low == pytest.approx(0.03813, abs=1e-4)
    assert ci.high == pytest.approx(0.06531, abs=1e-4)


def test_wilson_interval_edges():
    # Nothing observed: nothing known.
    assert proportion_ci(0, 0) == Interval(0.0, 1.0)
    # 0 successes: Wilson still gives a useful upper bound, z²/(n + z²) (Wald would give [0, 0]).
    n = 100
    zero = proportion_ci(0, n)
    assert zero.low == 0.0
    assert zero.high == pytest.approx(Z95**2 / (n + Z95**2), rel=1e-9)
    # All successes mirror it: lower bound n/(n + z²).
    full = proportion_ci(n, n)
    assert full.high == 1.0
    assert full.low == pytest.approx(n / (n + Z95**2), rel=1e-9)
    # Higher confidence, wider interval.
    assert proportion_ci(5, 100, 0.99).low < proportion_ci(5, 100, 0.90).low


def test_wilson_keeps_coverage_where_wald_fails_small_n_and_low_rate():
    # Exact coverage: sum the binomial pmf over outcomes whose interval contains the truth.
    n, p = 50, 0.02
    ks = np.arange(n + 1)
    pmf = binom.pmf(ks, n, p)
    wilson = sum(pmf[k] for k in ks if proportion_ci(int(k), n).contains(p))
    wald = 0.0
    for k in ks:
        rate = k / n
        half = Z95 * math.sqrt(rate * (1 - rate) / n)
        wald += pmf[k] if rate - half <= p <= rate + half else 0.0
    assert wilson > 0.90  # exact value 0.9216
    assert wald < 0.70  # exact value 0.6354: 0 clicks gives the zero-width interval [0, 0]


@pytest.mark.parametrize(("successes", "trials"), [(-1, 10), (11, 10), (0, -1)])
def test_proportion_ci_rejects_impossible_counts(successes, trials):
    with pytest.raises(ValueError):
        proportion_ci(successes, trials)


# --- two-proportion z-test ---------------------------------------------------------------


def test_two_proportion_z_test_hand_computed():
    # control 200/10,000 = 0.02, treatment 250/10,000 = 0.025
    # pooled p = 450/20,000 = 0.0225; p(1-p) = 0.0225 · 0.9775 = 0.02199375
    # pooled SE = sqrt(0.02199375 · (1/10,000 + 1/10,000)) = sqrt(4.39875e-6) = 0.00209732
    # z = 0.005 / 0.00209732 = 2.38400
    # p = 2·(1 - Φ(2.38400)) = 2 · 0.0085629 = 0.017126
    # unpooled SE = sqrt(0.02·0.98/1e4 + 0.025·0.975/1e4) = sqrt(4.3975e-6) = 0.00209702
    # difference CI = 0.005 ± 1.959964 · 0.00209702 = (0.000890, 0.009110)
    # log lift = ln(1.25) = 0.223144; SE = sqrt(0.98/200 + 0.975/250) = sqrt(0.0088) = 0.093808
    # lift CI = exp(0.223144 ± 1.959964 · 0.093808) - 1 = exp(0.039284), exp(0.407003) - 1
    #         = (0.040064, 0.502311)
    r = two_proportion_z_test(200, 10_000, 250, 10_000)
    assert r.control_rate == pytest.approx(0.02)
    assert r.treatment_rate == pytest.approx(0.025)
    assert r.difference == pytest.approx(0.005)
    assert r.relative_lift == pytest.approx(0.25)
    assert r.z == pytest.approx(2.3840, abs=1e-3)
    assert r.p_value == pytest.approx(0.017126, abs=1e-3)
    assert r.difference_ci is not None
    assert r.difference_ci.low == pytest.approx(0.000890, abs=1e-5)
    assert r.difference_ci.high == pytest.approx(0.009110, abs=1e-5)
    assert r.relative_lift_ci is not None
    assert r.relative_lift_ci.low == pytest.approx(0.040064, abs=1e-4)
    assert r.relative_lift_ci.high == pytest.approx(0.502311, abs=1e-4)


def test_two_proportion_z_test_swapping_arms_flips_the_sign_only():
    ab = two_proportion_z_test(200, 10_000, 250, 12_000)
    ba = two_proportion_z_test(250, 12_000, 200, 10_000)
    assert ba.z == pytest.approx(-ab.z)
    assert ba.p_value == pytest.approx(ab.p_value)
    assert ba.difference == pytest.approx(-ab.difference)


def test_two_proportion_z_test_without_data_or_variance_gives_no_evidence():
    for args in [(0, 0, 0, 0), (0, 0, 5, 100), (5, 100, 0, 0)]:
        r = two_proportion_z_test(*args)
        assert (r.z, r.p_value) == (0.0, 1.0)
        assert r.difference_ci is None and r.relative_lift_ci is None
    # Pooled rate 0 or 1: zero variance, nothing divides by it.
    for args in [(0, 100, 0, 100), (100, 100, 100, 100)]:
        r = two_proportion_z_test(*args)
        assert (r.z, r.p_value) == (0.0, 1.0)
    # Control rate 0: the relative lift is undefined, the test itself is not.
    r = two_proportion_z_test(0, 1000, 10, 1000)
    assert r.relative_lift is None and r.relative_lift_ci is None
    assert r.z > 3 and r.p_value < 0.01


# --- sample ratio mismatch ---------------------------------------------------------------


def test_srm_balanced_5050_is_fine():
    srm = sample_ratio_mismatch([5000, 5000], [0.5, 0.5])
    assert (srm.chi2, srm.dof, srm.p_value, srm.mismatch) == (0.0, 1, 1.0, False)


def test_srm_5000_vs_5300_is_suspicious_but_not_flagged():
    # expected 5150 each; chi2 = 2 · 150²/5150 = 45,000/5,150 = 8.73786
    # p = P(χ²₁ > 8.73786) = erfc(sqrt(8.73786/2)) = 0.003117 > 0.001
    srm = sample_ratio_mismatch([5000, 5300], [0.5, 0.5])
    assert srm.chi2 == pytest.approx(8.73786, abs=1e-4)
    assert srm.p_value == pytest.approx(0.003117, abs=1e-5)
    assert srm.expected == (5150.0, 5150.0)
    assert not srm.mismatch
    assert sample_ratio_mismatch([5000, 5300], [0.5, 0.5], alpha=0.01).mismatch


def test_srm_5000_vs_5600_is_flagged():
    # expected 5300 each; chi2 = 2 · 300²/5300 = 33.962, p ≈ 5.6e-9
    srm = sample_ratio_mismatch([5000, 5600], [1, 1])  # weights need not sum to 1
    assert srm.chi2 == pytest.approx(33.9623, abs=1e-3)
    assert srm.p_value < 1e-8
    assert srm.mismatch


def test_srm_three_arms_with_unequal_weights():
    weights = [0.5, 0.25, 0.25]
    assert not sample_ratio_mismatch([5000, 2500, 2500], weights).mismatch
    # expected (5000, 2500, 2500); chi2 = 0 + 100²/2500 + 100²/2500 = 8, dof 2
    # χ²₂ survival is exp(-x/2): p = exp(-4) = 0.018316
    srm = sample_ratio_mismatch([5000, 2600, 2400], weights)
    assert (srm.chi2, srm.dof) == (pytest.approx(8.0), 2)
    assert srm.p_value == pytest.approx(math.exp(-4), abs=1e-6)
    assert not srm.mismatch
    # chi2 = 200²/2500 · 2 = 32, p = exp(-16) = 1.1e-7: flagged. Same with unnormalised weights.
    flagged = sample_ratio_mismatch([5000, 2700, 2300], [2, 1, 1])
    assert flagged.chi2 == pytest.approx(32.0)
    assert flagged.p_value == pytest.approx(math.exp(-16), rel=1e-6)
    assert flagged.mismatch
    # A 50/50 split observed in a 50/25/25 design is badly off.
    assert sample_ratio_mismatch([5000, 5000, 5000], weights).mismatch


def test_srm_with_no_units_reports_no_mismatch():
    srm = sample_ratio_mismatch([0, 0], [0.5, 0.5])
    assert (srm.chi2, srm.p_value, srm.mismatch) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    ("observed", "weights"),
    [([1, 2], [1.0]), ([5], [1.0]), ([-1, 2], [1.0, 1.0]), ([1, 2], [1.0, 0.0])],
)
def test_srm_rejects_bad_input(observed, weights):
    with pytest.raises(ValueError):
        sample_ratio_mismatch(observed, weights)


# --- delta method: hand-computed ---------------------------------------------------------

# Four users. x = clicks, y = impressions.
SMALL_X = [1, 0, 2, 1]
SMALL_Y = [10, 5, 20, 5]


def test_ratio_sums_from_arrays():
    s = RatioSums.from_arrays(SMALL_X, SMALL_Y)
    assert s == RatioSums(users=4, sum_x=4, sum_y=40, sum_x2=6, sum_y2=550, sum_xy=55)


def test_delta_method_hand_computed():
    # Control, from SMALL_X/SMALL_Y: n = 4, μx = 1, μy = 10, R = 4/40 = 0.1
    #   σx² = (0 + 1 + 1 + 0)/3 = 2/3
    #   σy² = (0 + 25 + 100 + 25)/3 = 50
    #   σxy = (0·0 + (-1)(-5) + (1)(10) + 0·(-5))/3 = 5
    #   Var(R) = (1/4)(σx²/μy² − 2μxσxy/μy³ + μx²σy²/μy⁴)
    #          = (1/4)(2/300 − 10/1000 + 50/10,000) = (1/4)(1/600) = 1/2400
    # Treatment doubles every x: R = 0.2, and Var(R) scales by 4 to 1/600.
    # Difference 0.1, SE = sqrt(1/2400 + 1/600) = sqrt(1/480) = 0.0456435
    # z = 0.1/0.0456435 = 2.190890, p = 2·(1 − Φ(2.190890)) = 0.028460
    # log lift: ln 2, SE = sqrt((1/2400)/0.1² + (1/600)/0.2²) = sqrt(1/12) = 0.288675
    # lift CI = 2·exp(∓1.959964·0.288675) − 1 = 2·exp(∓0.565793) − 1
    #         = 2·(0.567910, 1.760843) − 1 = (0.135819, 2.521687)
    control = RatioSums.from_arrays(SMALL_X, SMALL_Y)
    treatment = RatioSums.from_arrays([2 * x for x in SMALL_X], SMALL_Y)
    r = ratio_delta_test(control, treatment)
    assert r.control_ratio == pytest.approx(0.1)
    assert r.treatment_ratio == pytest.approx(0.2)
    assert r.control_se == pytest.approx(math.sqrt(1 / 2400))
    assert r.treatment_se == pytest.approx(math.sqrt(1 / 600))
    assert r.relative_lift == pytest.approx(1.0)
    assert r.z == pytest.approx(2.190890, abs=1e-5)
    assert r.p_value == pytest.approx(0.028460, abs=1e-5)
    assert r.relative_lift_ci is not None
    assert r.relative_lift_ci.low == pytest.approx(0.135819, abs=1e-5)
    assert r.relative_lift_ci.high == pytest.approx(2.521687, abs=1e-5)
    assert r.difference_ci is not None
    assert r.difference_ci.low == pytest.approx(0.1 - Z95 * math.sqrt(1 / 480))


def test_delta_method_with_one_impression_per_user_is_the_binomial_variance():
    # y ≡ 1 leaves only the σx² term: Var(R) = σx²/n with σx² = n p(1−p)/(n−1).
    n, k = 1000, 50
    x = np.r_[np.ones(k), np.zeros(n - k)]
    arm = RatioSums.from_arrays(x, np.ones(n))
    r = ratio_delta_test(arm, arm)
    assert r.control_se == pytest.approx(math.sqrt(0.05 * 0.95 / (n - 1)), rel=1e-9)
    assert (r.z, r.p_value) == (0.0, 1.0)


def test_delta_method_without_enough_users_gives_no_evidence():
    one_user = RatioSums.from_arrays([3], [10])
    nobody = RatioSums(users=0, sum_x=0, sum_y=0, sum_x2=0, sum_y2=0, sum_xy=0)
    fine = RatioSums.from_arrays(SMALL_X, SMALL_Y)
    for control, treatment in [(one_user, fine), (fine, nobody), (nobody, nobody)]:
        r = ratio_delta_test(control, treatment)
        assert (r.z, r.p_value) == (0.0, 1.0)
        assert r.difference_ci is None and r.relative_lift_ci is None
    assert ratio_delta_test(one_user, fine).control_ratio == pytest.approx(0.3)
    assert ratio_delta_test(nobody, fine).relative_lift is None
    # Every user with the same x and y: zero variance, no division by it.
    same = RatioSums.from_arrays([1, 1, 1], [10, 10, 10])
    assert ratio_delta_test(same, same).p_value == 1.0


# --- simulations: impression-level A/A and a true +20% lift ------------------------------


def test_aa_false_positive_rate_and_wilson_coverage():
    rng = np.random.default_rng(20240501)
    runs, n, rate = 400, 4000, 0.05
    control = rng.binomial(n, rate, runs)
    treatment = rng.binomial(n, rate, runs)
    results = [
        two_proportion_z_test(int(c), n, int(t), n) for c, t in zip(control, treatment, strict=True)
    ]
    false_positive_rate = np.mean([r.p_value < 0.05 for r in results])
    assert 0.02 <= false_positive_rate <= 0.08
    # Both arms' intervals: 800 draws, so the coverage estimate has an SD of about 0.008.
    coverage = np.mean([proportion_ci(int(k), n).contains(rate) for k in (*control, *treatment)])
    assert 0.93 <= coverage <= 0.97


def test_true_twenty_percent_lift_is_detected_and_estimated():
    rng = np.random.default_rng(7)
    runs, n, base, lift = 200, 20_000, 0.05, 0.20
    control = rng.binomial(n, base, runs)
    treatment = rng.binomial(n, base * (1 + lift), runs)
    results = [
        two_proportion_z_test(int(c), n, int(t), n) for c, t in zip(control, treatment, strict=True)
    ]
    power = np.mean([r.p_value < 0.05 for r in results])
    assert power > 0.8  # expected z ≈ 0.01/0.00228 ≈ 4.4, so power ≈ 0.99
    lifts = [r.relative_lift for r in results]
    assert all(lift_ is not None for lift_ in lifts)
    assert abs(np.mean([lift_ for lift_ in lifts if lift_ is not None]) - lift) < 0.02
    covered = np.mean(
        [r.relative_lift_ci is not None and r.relative_lift_ci.contains(lift) for r in results]
    )
    assert 0.90 <= covered <= 0.99


# --- simulations: users as the randomisation unit ----------------------------------------


def simulate_users(
    rng: np.random.Generator, runs: int, users: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Clicks and impressions, shape (runs, users), for heterogeneous users.

    Impressions per user are geometric with mean 20 (many light users, a few heavy ones); each
    user's CTR is Beta(0.5, 9.5), mean 0.05 but widely spread, so a user's impressions are
    correlated through that user's CTR.
    """
    impressions = rng.geometric(1 / 20, size=(runs, users))
    ctr = rng.beta(0.5, 9.5, size=(runs, users))
    clicks = rng.binomial(impressions, ctr)
    return clicks, impressions


@pytest.fixture(scope="module")
def user_level_aa() -> tuple[list[RatioComparison], list[float]]:
    """400 A/A experiments with 1,000 users per arm: delta-method results and naive p-values."""
    rng = np.random.default_rng(11)
    runs, users = 400, 1000
    c_clicks, c_imps = simulate_users(rng, runs, users)
    t_clicks, t_imps = simulate_users(rng, runs, users)
    delta = [
        ratio_delta_test(
            RatioSums.from_arrays(c_clicks[i], c_imps[i]),
            RatioSums.from_arrays(t_clicks[i], t_imps[i]),
        )
        for i in range(runs)
    ]
    naive = [
        two_proportion_z_test(
            int(c_clicks[i].sum()),
            int(c_imps[i].sum()),
            int(t_clicks[i].sum()),
            int(t_imps[i].sum()),
        ).p_value
        for i in range(runs)
    ]
    return delta, naive


def test_delta_method_se_matches_the_empirical_sd_of_the_ratio(user_level_aa):
    delta, _ = user_level_aa
    # Every arm of every run is an independent draw of the same ratio estimator.
    ratios = np.array([r.control_ratio for r in delta] + [r.treatment_ratio for r in delta])
    ses = np.array([r.control_se for r in delta] + [r.treatment_se for r in delta], dtype=float)
    empirical_sd = ratios.std(ddof=1)
    predicted_sd = math.sqrt(float(np.mean(ses**2)))
    assert predicted_sd == pytest.approx(empirical_sd, rel=0.15)


def test_delta_method_aa_false_positive_rate_is_nominal(user_level_aa):
    delta, _ = user_level_aa
    false_positive_rate = np.mean([r.p_value < 0.05 for r in delta])
    assert 0.02 <= false_positive_rate <= 0.09
    covers_zero = np.mean(
        [r.relative_lift_ci is not None and r.relative_lift_ci.contains(0.0) for r in delta]
    )
    assert 0.90 <= covers_zero <= 0.98


def test_naive_impression_level_test_is_anti_conservative_for_heterogeneous_users(user_level_aa):
    # Pooling impressions treats a heavy user's correlated impressions as independent, so the
    # naive SE is too small (design effect ≈ 4 here) and A/A tests "succeed" far too often.
    # This is why experiment results randomised by user should use ratio_delta_test.
    delta, naive = user_level_aa
    delta_fpr = np.mean([r.p_value < 0.05 for r in delta])
    naive_fpr = np.mean([p < 0.05 for p in naive])
    assert naive_fpr > 0.15
    assert naive_fpr > 3 * delta_fpr
