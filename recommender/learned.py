"""The learned ranker: a logistic regression fitted on the event stream scores every article."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.features import (
    COLUMN,
    FEATURES,
    HISTORY_BOUNDS,
    HISTORY_FEATURES,
    POSITION_FEATURE,
    ReaderState,
    base_features,
    history_features,
)
from recommender.linear import LinearModel
from recommender.model import CorpusModel
from recommender.ranker import (
    Part,
    Ranked,
    RankRequest,
    ReasonKind,
    allowed_rows,
    merge_within_share,
    top_rows,
)
from recommender.tfidf import TfidfRanker

# The reason each feature gives when its group moved an item most (see LearnedRanker).
REASON_OF: dict[str, ReasonKind] = {
    "follow_similarity": "follow",
    "followed": "follow",
    "follow_score": "follow",
    "history_similarity": "read",
    "history_closeness": "read",
    "history_pull": "read",
    "category_lean": "history",
    "freshness": "latest",
    "age_log": "latest",
    "impressions_log": "popular",
    "clicks_log": "popular",
    "ctr": "popular",
}
GROUPS: tuple[ReasonKind, ...] = ("follow", "read", "history", "latest", "popular")
_GROUP_OF = np.array([GROUPS.index(REASON_OF[name]) for name in FEATURES])
_HISTORY_COLUMNS = np.array([COLUMN[name] for name in HISTORY_FEATURES], dtype=np.intp)


def usable(learned: LinearModel | None) -> LinearModel | None:
    """The model if this build computes every feature it names, else None (ranked as tfidf):
    an artifact from a build with other features waits for the next training to replace it."""
    if learned is None:
        return None
    known = set(FEATURES) | {POSITION_FEATURE}
    return learned if all(name in known for name in learned.features) else None


@dataclass(frozen=True)
class LearnedRanker:
    """Articles by the published logistic regression's logit over recommender.features.

    Position is a training feature only: every served article is scored as if shown at the
    top, so the order is the model's estimate net of where the logged articles were shown.
    Each item's reason names the group of features (follows, reading, category lean,
    freshness, popularity) whose contribution, ``coef × (x − mean) / scale`` summed over the
    group, lifted it most against an average article. Without a usable model (none published
    yet, or one this build cannot read) it ranks exactly as ``TfidfRanker`` with
    ``half_life_hours``.

    Articles outside the followed categories fill at most ``max_outside_share`` of any
    prefix of the feed while followed ones remain (more than tfidf's related share: the model
    picks them for the reader, by their reading say, not only for resembling their follows).
    A fitted model knows them only as far as the logged feeds showed them: the cap bounds what
    its extrapolation can cost until the feeds it serves teach it more.
    """

    name: str = "learned"
    half_life_hours: float = 24.0  # of the tfidf fallback
    max_outside_share: float = 0.2

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        learned = usable(request.learned)
        if learned is None:
            return TfidfRanker(half_life_hours=self.half_life_hours).rank(model, request)
        if model.size == 0 or request.size <= 0:
            return []
        reader = ReaderState.of(model, request)
        allowed = allowed_rows(model, request)
        rows = None if allowed is None else np.flatnonzero(allowed)
        slope, offset = learned.slopes(FEATURES)
        matrix = base_features(model, request, reader, rows)
        score = matrix @ slope + offset
        with_history = reader.has_history and bool(np.any(slope[_HISTORY_COLUMNS]))
        size = request.size
        share = min(self.max_outside_share, 1.0)
        if not reader.cols or share >= 1.0:
            everyone = np.ones(score.size, dtype=np.bool_)
            if with_history:
                self._add_history(
                    model, request, reader, rows, matrix, score, slope, everyone, size
                )
            order = top_rows(score, everyone, size)
        else:
            members = model.members if rows is None else model.members[rows]
            inside: NDArray[np.bool_] = np.asarray(members[:, reader.cols].any(axis=1))
            outside = ~inside
            wanted = max(math.ceil(size * share), size - int(np.count_nonzero(inside)))
            if with_history:
                for pool, k in ((inside, size), (outside, wanted)):
                    self._add_history(model, request, reader, rows, matrix, score, slope, pool, k)
            order = merge_within_share(
                score, top_rows(score, inside, size), top_rows(score, outside, wanted), size, share
            )
        return self._explain(model, reader, rows, order, matrix, score, learned, request.explain)

    @staticmethod
    def _add_history(
        model: CorpusModel,
        request: RankRequest,
        reader: ReaderState,
        rows: NDArray[np.intp] | None,
        matrix: NDArray[np.float64],
        score: NDArray[np.float64],
        slope: NDArray[np.float64],
        pool: NDArray[np.bool_],
        size: int,
    ) -> None:
        """Add the reading features of the ``pool`` rows to ``matrix`` and ``score`` (in
        place) where they can change which ``size`` of them rank best: the sparse product they
        need is most of a large feed's cost.

        They are computed exactly for the ``size`` best rows without them; the lowest of those
        rows' full scores is then a floor the last of the best reaches at least, and only rows
        whose score without reading plus the most reading can add reaches the floor are scored.
        """
        hist_slope = slope[_HISTORY_COLUMNS]
        bounds = np.array([HISTORY_BOUNDS[name] for name in HISTORY_FEATURES])
        most = float(np.maximum(hist_slope * bounds[:, 0], hist_slope * bounds[:, 1]).sum())

        def fill(where: NDArray[np.intp]) -> None:
            subset = where if rows is None else rows[where]
            values = history_features(model, request, reader, subset)
            matrix[np.ix_(where, _HISTORY_COLUMNS)] = values
            score[where] += values @ hist_slope

        members = np.flatnonzero(pool)
        if members.size <= 2 * size:
            if members.size:
                fill(members)
            return
        first = np.array(top_rows(score, pool, size), dtype=np.intp)
        fill(first)
        floor = float(score[first].min())
        rest = pool.copy()
        rest[first] = False
        fill(np.flatnonzero(rest & (score + most >= floor)))

    def _explain(
        self,
        model: CorpusModel,
        reader: ReaderState,
        rows: NDArray[np.intp] | None,
        order: list[int],
        matrix: NDArray[np.float64],
        score: NDArray[np.float64],
        learned: LinearModel,
        explain: bool = False,
    ) -> list[Ranked]:
        if not order:
            return []
        slope, offset = learned.slopes(FEATURES)
        means = dict(zip(learned.features, learned.mean, strict=True))
        centre = np.array([means.get(name, 0.0) for name in FEATURES])
        contribution = (matrix[order] - centre) * slope
        grouped = np.zeros((len(order), len(GROUPS)))
        for g in range(len(GROUPS)):
            grouped[:, g] = contribution[:, _GROUP_OF == g].sum(axis=1)
        # A reason names a signal the item has: no "because you read" for an item that owes
        # its place to resembling nothing read, however the weights fall.
        values = matrix[order]
        has_reading = values[:, COLUMN["history_similarity"]] > 0
        grouped[~has_reading, GROUPS.index("read")] = -np.inf
        grouped[values[:, COLUMN["category_lean"]] <= 0, GROUPS.index("history")] = -np.inf
        if not reader.cols:
            grouped[:, GROUPS.index("follow")] = -np.inf
        moved = grouped.argmax(axis=1)
        model_rows = order if rows is None else rows[order].tolist()
        read_rows = [r for r, g in zip(model_rows, moved, strict=True) if GROUPS[g] == "read"]
        nearest = reader.reading.nearest(model, read_rows) if reader.reading else []
        because = dict(zip(read_rows, nearest, strict=True))
        # The category each reason names, for every item at once: its own (primary) one, or
        # for follow reasons the followed category it is in (related: the one it resembles).
        chosen = np.asarray(model_rows, dtype=np.intp)
        categories = model.members[chosen].argmax(axis=1)
        inside: NDArray[np.bool_] = np.zeros(chosen.size, dtype=np.bool_)
        if reader.cols:
            cols = np.asarray(reader.cols, dtype=np.intp)
            in_followed = model.members[np.ix_(chosen, cols)]
            sims = model.sims[np.ix_(chosen, cols)]
            inside = np.asarray(in_followed.any(axis=1))
            best = np.where(inside[:, None], np.where(in_followed, sims, -1.0), sims)
            follows = moved == GROUPS.index("follow")
            categories = np.where(follows, cols[best.argmax(axis=1)], categories)
        ids = model.ids[chosen].tolist()
        values = score[order].tolist()
        explained = self._parts(contribution, offset + float(centre @ slope), explain)
        ranked = []
        for k, row in enumerate(model_rows):
            kind = GROUPS[int(moved[k])]
            category = model.slugs[int(categories[k])]
            if kind == "follow" and not inside[k]:
                kind = "related"
            parts = explained[k] if explained else ()
            if kind == "read" and row in because:
                ranked.append(Ranked(str(ids[k]), values[k], "read", category, because[row], parts))
            else:  # a read pull without a read to name: "Like articles you read in X"
                shown: ReasonKind = "history" if kind == "read" else kind
                ranked.append(Ranked(str(ids[k]), values[k], shown, category, parts=parts))
        return ranked

    @staticmethod
    def _parts(
        contribution: NDArray[np.float64], baseline: float, explain: bool
    ) -> list[tuple[Part, ...]]:
        """Per item, the logit as the contributions that also pick its reason, plus the
        logit of an average article: ``coef × (x − mean) / scale`` per feature the model
        weighs, and ``baseline``; they sum to the score."""
        if not explain:
            return []
        used = [j for j in range(len(FEATURES)) if np.any(contribution[:, j])]
        return [
            (("baseline", baseline), *((FEATURES[j], float(row[j])) for j in used))
            for row in contribution
        ]
