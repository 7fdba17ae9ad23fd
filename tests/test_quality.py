"""Personalization on real news (AG News): the targets `make quality` reports, as tests.

Skipped where the corpus is absent (it is development data, not shipped with the project).
"""

from __future__ import annotations

import pytest

from bench import agnews, quality

pytestmark = pytest.mark.skipif(agnews.path() is None, reason="AG News is not on this machine")


@pytest.fixture(scope="module")
def report() -> quality.QualityReport:
    return quality.report(quality.ag_news())


def test_ten_clicks_on_a_topic_lift_it_on_the_first_page(report: quality.QualityReport) -> None:
    """Every topic, followed alone or with another category: +0.25 at least, to 0.35 at least."""
    missed = [r for r in report.topic if r.rise < 0.25 or r.after < 0.35]
    assert not missed
    assert len(report.topic) == len(agnews.TOPICS) * 4


def test_every_followed_category_keeps_two_places_however_lopsided_the_reading(
    report: quality.QualityReport,
) -> None:
    assert min(r.fewest for r in report.floors) >= 2
    assert min(r.followed_min_after for r in report.topic) >= 2
