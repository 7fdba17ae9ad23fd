"""The ranker protocol, its request and result, and the helpers rankers share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from recommender.linear import LinearModel
from recommender.model import CorpusModel

ReasonKind = Literal["follow", "related", "latest", "history", "read", "popular"]


@dataclass(frozen=True)
class RankRequest:
    followed: tuple[str, ...]
    now: float  # epoch seconds
    size: int
    exclude: frozenset[str] = frozenset()
    # Articles the user clicked or read, with when: (article id, epoch seconds).
    history: tuple[tuple[str, float], ...] = ()
    # Time-decayed (clicks, impressions) per article, for rankers that use popularity.
    popularity: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # Only these articles may be ranked (offline evaluation scores an impression's candidates);
    # None: the whole model. Exclusions still apply.
    candidates: frozenset[str] | None = None
    # The learned ranker's published model (recommender.learned); None: none is published,
    # and that ranker ranks as tfidf. Other rankers ignore it.
    learned: LinearModel | None = None
    # Fill each Ranked's ``parts`` and ``factors`` (the feed inspector); off on the serving
    # path, which then computes nothing extra.
    explain: bool = False


# One named number of an explanation: (name, value).
Part = tuple[str, float]


@dataclass(frozen=True)
class Ranked:
    id: str
    score: float
    reason: ReasonKind
    category: str  # the category the reason names
    because: str = ""  # reason "read": the id of the read article this one resembles most
    # With RankRequest.explain: the addends of ``score`` as the ranker computed them (they sum
    # to it), and the multipliers or inputs behind them that are not addends (freshness, ...).
    parts: tuple[Part, ...] = ()
    factors: tuple[Part, ...] = ()


class Ranker(Protocol):
    """Anything that orders a model's articles for one request (experiments swap these)."""

    @property
    def name(self) -> str: ...

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]: ...


def decay_of(model: CorpusModel, now: float, half_life_hours: float) -> NDArray[np.float64]:
    """Freshness of every article: 1 when just published, halving every half-life."""
    age_hours = np.maximum(now - model.published, 0.0) / 3600.0
    result: NDArray[np.float64] = np.exp2(-age_hours / half_life_hours)
    return result


def primary_category(model: CorpusModel, row: int) -> str:
    return model.slugs[int(model.members[row].argmax())]


def allowed_rows(model: CorpusModel, request: RankRequest) -> NDArray[np.bool_] | None:
    """The rows a request may rank (None: every row): its candidates, less its exclusions."""
    excluded = [model.row_of[i] for i in request.exclude if i in model.row_of]
    if request.candidates is None and not excluded:
        return None
    if request.candidates is None:
        allowed = np.ones(model.size, dtype=np.bool_)
    else:
        allowed = np.zeros(model.size, dtype=np.bool_)
        allowed[[model.row_of[i] for i in request.candidates if i in model.row_of]] = True
    allowed[excluded] = False
    return allowed


def top_rows(score: NDArray[np.float64], mask: NDArray[np.bool_], k: int) -> list[int]:
    """Row indices of the ``k`` best scores among ``mask``, best first."""
    rows = np.flatnonzero(mask)
    if k <= 0 or rows.size == 0:
        return []
    if rows.size > k:
        rows = rows[np.argpartition(-score[rows], k - 1)[:k]]
    return [int(r) for r in rows[np.argsort(-score[rows], kind="stable")]]


def merge_within_share(
    score: NDArray[np.float64], inside: list[int], outside: list[int], size: int, share: float
) -> list[int]:
    """Interleave two score-ordered row lists by score while every prefix keeps ``outside``
    rows within ``share`` of it (all of them once the inside ones run out)."""
    rows: list[int] = []
    i = o = 0
    while len(rows) < size and (i < len(inside) or o < len(outside)):
        quota = math.floor(share * (len(rows) + 1))
        outside_ok = o < len(outside) and (o < quota or i >= len(inside))
        if outside_ok and (i >= len(inside) or score[outside[o]] > score[inside[i]]):
            rows.append(outside[o])
            o += 1
        elif i < len(inside):
            rows.append(inside[i])
            i += 1
        else:
            break
    return rows


def latest_of(
    model: CorpusModel,
    decay: NDArray[np.float64],
    allowed: NDArray[np.bool_] | None,
    size: int,
    explain: bool = False,
) -> list[Ranked]:
    """Newest first across all categories: the feed of someone who follows nothing yet."""
    mask = np.ones(model.size, dtype=np.bool_) if allowed is None else allowed
    return [
        Ranked(
            str(model.ids[row]),
            float(decay[row]),
            "latest",
            primary_category(model, row),
            parts=freshness_parts(decay, row) if explain else (),
        )
        for row in top_rows(model.published, mask, size)
    ]


def freshness_parts(decay: NDArray[np.float64], row: int) -> tuple[Part, ...]:
    """The explanation of a score that is the freshness alone."""
    return (("freshness", float(decay[row])),)


def candidate_scores(candidates: Sequence[str], ranked: Sequence[Ranked]) -> NDArray[np.float64]:
    """Per candidate, a score whose order is the ranking's, ties where the ranking has them.

    The ranked list is the order; consecutive items with exactly equal scores are one tie
    group. Candidates the ranker did not return (unknown to the model, or left out) come
    last, all tied. Scores are minus the tie group's position: only their order means anything.
    """
    group_of: dict[str, int] = {}
    group, previous = -1, math.nan
    wanted = set(candidates)
    for item in ranked:
        if item.id not in wanted or item.id in group_of:
            continue
        if item.score != previous:  # NaN != NaN: the first item always opens a group
            group += 1
            previous = item.score
        group_of[item.id] = group
    last = group + 1
    return -np.array([group_of.get(c, last) for c in candidates], dtype=np.float64)
