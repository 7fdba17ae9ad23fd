"""Experiment results from per-variant counters: CTR, lift vs. control, SRM (no Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from feed.experiments.assignment import Experiment
from recommender.stats import (
    Interval,
    RatioSums,
    SrmCheck,
    proportion_ci,
    ratio_delta_test,
    sample_ratio_mismatch,
    two_proportion_z_test,
)

CONFIDENCE = 0.95
SRM_ALPHA = 0.001  # strict: a flag means discarding the results, so false alarms are costly
LIFT_METHOD = "delta method on per-user CTR (Deng et al. 2018)"
NAIVE_METHOD = (
    "two-proportion z-test on impressions (treats impressions as independent: "
    "anti-conservative when users are randomised; for reference only)"
)
CTR_CI_METHOD = "Wilson score interval on impressions"
SRM_METHOD = "Pearson chi-square of exposed users per variant against the weights"
_FIELDS = ("users", "pages", "impressions", "clicks", "sx2", "sy2", "sxy")


@dataclass(frozen=True)
class VariantResult:
    name: str
    ranker: str
    params: dict[str, float]
    weight: float  # normalised share of the experiment's traffic
    is_control: bool
    users: int  # exposed users (the randomisation unit)
    pages: int
    impressions: int
    clicks: int
    ctr: float | None  # clicks / impressions; None without impressions
    ctr_ci: Interval | None  # Wilson; None without impressions (or more clicks than them)
    # Against the control (None for the control itself, or when undefined):
    relative_lift: float | None  # treatment CTR / control CTR - 1
    relative_lift_ci: Interval | None
    p_value: float | None  # delta method, two-sided
    significant: bool | None  # p_value < 1 - confidence
    naive_p_value: float | None  # two-proportion z-test on impressions


@dataclass(frozen=True)
class ExperimentResults:
    experiment: Experiment
    variants: tuple[VariantResult, ...]
    srm: SrmCheck
    confidence: float = CONFIDENCE
    method: str = LIFT_METHOD
    naive_method: str = NAIVE_METHOD
    ctr_ci_method: str = CTR_CI_METHOD


def summarise(
    experiment: Experiment,
    counts: Mapping[str, Mapping[str, int]],
    confidence: float = CONFIDENCE,
) -> ExperimentResults:
    """Results from the counters per variant (``{variant: {"users": ..., "clicks": ...}}``).

    Users are the randomisation unit, so the lift's p-value and interval come from the delta
    method on per-user CTR; the two-proportion z-test on impressions is reported beside it
    only as a reference, since it treats a user's impressions as independent.
    """
    arms = [_arm(counts.get(v.name, {})) for v in experiment.variants]
    sums = [
        RatioSums(a["users"], a["clicks"], a["impressions"], a["sx2"], a["sy2"], a["sxy"])
        for a in arms
    ]
    control = arms[0]
    rows: list[VariantResult] = []
    for index, (variant, arm) in enumerate(zip(experiment.variants, arms, strict=True)):
        impressions, clicks = arm["impressions"], arm["clicks"]
        proportion_ok = 0 <= clicks <= impressions
        lift = lift_ci = p_value = naive = None
        significant = None
        if index:
            delta = ratio_delta_test(sums[0], sums[index], confidence)
            lift, lift_ci = delta.relative_lift, delta.relative_lift_ci
            if delta.difference_ci is not None:
                p_value = delta.p_value
                significant = p_value < 1 - confidence
            if proportion_ok and 0 <= control["clicks"] <= control["impressions"]:
                naive = two_proportion_z_test(
                    control["clicks"], control["impressions"], clicks, impressions, confidence
                ).p_value
        rows.append(
            VariantResult(
                name=variant.name,
                ranker=variant.ranker,
                params=dict(variant.params),
                weight=experiment.shares[index],
                is_control=index == 0,
                users=arm["users"],
                pages=arm["pages"],
                impressions=impressions,
                clicks=clicks,
                ctr=clicks / impressions if impressions else None,
                ctr_ci=(
                    proportion_ci(clicks, impressions, confidence)
                    if impressions and proportion_ok
                    else None
                ),
                relative_lift=lift,
                relative_lift_ci=lift_ci,
                p_value=p_value,
                significant=significant,
                naive_p_value=naive,
            )
        )
    srm = sample_ratio_mismatch([a["users"] for a in arms], experiment.shares, SRM_ALPHA)
    return ExperimentResults(experiment, tuple(rows), srm, confidence)


def _arm(found: Mapping[str, int]) -> dict[str, int]:
    return {c: int(found.get(c, 0)) for c in _FIELDS}
