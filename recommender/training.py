"""Fitting the learned ranker on replayed pages, and judging it against tfidf on later ones.

Logistic regression on standardized features: it fits a million impressions in seconds on
one core, its model is a dozen plain numbers (recommender.linear: portable, no pickle), and
its coefficients say what each signal weighs, which gives every item a reason. Trees would
capture interactions, at the cost of a pickled or hand-serialised ensemble and slower feeds.

- Position bias: the position an article was shown at is a feature while fitting and a
  constant when serving, so the other weights are learned net of it (clicks at the top of a
  page are partly the top's) instead of crediting whatever the logging ranker put there.
- Imbalance: clicks are a few percent of impressions; ``class_weight="balanced"`` weighs
  them as much as the skips in the loss. That shifts the intercept (scores are not click
  probabilities: ``meta`` keeps the base rate) and leaves the order of articles meaningful.
- Judged like a release: fitted on the earlier pages, scored on the later ones (a time
  split) against the tfidf ranker on the very same pages, by the mean per-page AUC
  ``newsfeed evaluate`` reports. The model published is the one judged: the latest pages
  are held out from it (the next training fits on them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from recommender.clicklog import Advance, Examples, Page, examples, request_of, split_at
from recommender.features import FEATURES, POSITION_FEATURE
from recommender.linear import LinearModel
from recommender.metrics import auc_score
from recommender.model import CorpusModel
from recommender.ranker import Ranker, candidate_scores
from recommender.tfidf import TfidfRanker

VALIDATION_SHARE = 0.2  # the latest fifth of the pages judges the fit
# The validation pages scored by the baseline ranker, at most (the latest): each is a rank call.
VALIDATION_MAX_PAGES = 2000
# Below these a fit is noise, and a comparison on a handful of pages says nothing.
MIN_CLICKS = 50
MIN_VALIDATION_PAGES = 30  # pages with both a click and a skip
REGULARIZATION_C = 1.0  # sklearn's default L2 strength: a dozen features need little
MAX_ITERATIONS = 500


@dataclass(frozen=True)
class Training:
    """A fit and how it compares: ``model`` is None when there were too few events."""

    model: LinearModel | None
    pages: int
    impressions: int
    clicks: int
    validation_pages: int  # later pages with both a click and a skip, scored by both
    validation_auc: float | None
    baseline_auc: float | None
    reason: str  # why it is not publishable ("" when it is)
    seconds: float

    @property
    def publishable(self) -> bool:
        return self.model is not None and not self.reason


def fit_linear(x: NDArray[np.float64], y: NDArray[np.int8], meta: dict[str, Any]) -> LinearModel:
    """Standardize, then fit a class-balanced L2 logistic regression; plain numbers out."""
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(
        C=REGULARIZATION_C, class_weight="balanced", max_iter=MAX_ITERATIONS
    )
    # One BLAS thread: products of a dozen columns gain nothing from more, and on a busy
    # machine (the web processes share it) contending BLAS threads slow the fit tenfold.
    with threadpool_limits(limits=1, user_api="blas"):
        regression.fit(scaler.transform(x), y)
    return LinearModel(
        (*FEATURES, POSITION_FEATURE),
        tuple(float(c) for c in regression.coef_[0]),
        tuple(float(m) for m in scaler.mean_),
        tuple(float(s) for s in scaler.scale_),
        float(regression.intercept_[0]),
        meta,
    )


def page_aucs(
    model: CorpusModel,
    data: Examples,
    first_page: int,
    learned: LinearModel,
    baseline: Ranker,
) -> tuple[float, float, int]:
    """Mean per-page AUC of ``learned`` (position at its serving constant) and of
    ``baseline`` on the pages from ``first_page`` with both a click and a skip."""
    slope, _ = learned.slopes(FEATURES)
    bounds = data.bounds()
    ours: list[float] = []
    theirs: list[float] = []
    for p in range(first_page, len(data.pages)):
        begin, end = int(bounds[p]), int(bounds[p + 1])
        labels = data.y[begin:end]
        clicked = int(labels.sum())
        if clicked == 0 or clicked == labels.size:
            continue
        page = data.pages[p]
        ours.append(auc_score(labels, data.x[begin:end, :-1] @ slope))
        ranked = baseline.rank(model, request_of(page, data.popularity[p]))
        theirs.append(auc_score(labels, candidate_scores(page.articles, ranked)))
    if not ours:
        return float("nan"), float("nan"), 0
    return float(np.mean(ours)), float(np.mean(theirs)), len(ours)


def train(
    model: CorpusModel,
    pages: list[Page],
    *,
    baseline: Ranker | None = None,
    validation_share: float = VALIDATION_SHARE,
    advance: Advance | None = None,
    meta: dict[str, Any] | None = None,
) -> Training:
    """Fit on the time-ordered ``pages``, judged on their latest ``validation_share``.

    Not publishable (``reason`` says why) with fewer than MIN_CLICKS clicks or
    MIN_VALIDATION_PAGES judged pages, or when its validation AUC is below the baseline's
    (tfidf by default) on the same pages.
    """
    started = time.perf_counter()
    pages = sorted(pages, key=lambda page: page.time)  # stable: the log's order within a second
    data = examples(model, pages, advance)
    counts = (len(data.pages), int(data.y.size), data.clicks)

    def outcome(
        fitted: LinearModel | None, judged: tuple[float, float, int] | None, reason: str
    ) -> Training:
        ours, theirs, n = judged or (None, None, 0)
        return Training(fitted, *counts, n, ours, theirs, reason, time.perf_counter() - started)

    if data.clicks < MIN_CLICKS or data.clicks == data.y.size:
        return outcome(None, None, f"too few clicks to learn from ({data.clicks} < {MIN_CLICKS})")
    split = split_at(data.pages, validation_share)
    first = next(p for p, page in enumerate(data.pages) if page.time >= split)
    rows = int(data.bounds()[first])
    if not 0 < data.y[:rows].sum() < rows:
        return outcome(None, None, "the earlier pages have no clicks (or only clicks)")
    judged_from = max(first, len(data.pages) - VALIDATION_MAX_PAGES)
    base_rate = data.clicks / max(data.y.size, 1)
    record: dict[str, Any] = {
        **(meta or {}),
        "pages": counts[0],
        "impressions": counts[1],
        "clicks": counts[2],
        "click_rate": round(base_rate, 6),
        "fitted_pages": first,
        "fitted_impressions": rows,
        "baseline": (baseline or TfidfRanker()).name,
        "trained_from": data.pages[0].time,
        "trained_to": data.pages[first - 1].time if first else data.pages[0].time,
        "sklearn": sklearn.__version__,
    }
    fitted = fit_linear(data.x[:rows], data.y[:rows], record)
    judged = page_aucs(model, data, judged_from, fitted, baseline or TfidfRanker())
    ours, theirs, n = judged
    final = replace(
        fitted,
        meta={
            **record,
            "validation_pages": n,
            "validation_auc": None if n == 0 else round(ours, 6),
            "baseline_auc": None if n == 0 else round(theirs, 6),
        },
    )
    if n < MIN_VALIDATION_PAGES:
        reason = f"too few later pages to judge it ({n} < {MIN_VALIDATION_PAGES})"
    elif ours < theirs:
        reason = f"validation AUC {ours:.4f} is below the baseline's {theirs:.4f}"
    else:
        reason = ""
    return outcome(final, judged, reason)
