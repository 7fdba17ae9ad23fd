"""A click log as served pages, replayed in time order into the learned ranker's examples.

The event stream (feed.model.learned_training) and a MIND log (recommender.evaluation) both
become ``Page`` values; the replay gives each page the popularity the service would have had
when it was shown, from strictly earlier pages only, and the features of its articles are
computed by recommender.features exactly as a feed build computes them.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from recommender.features import FEATURES, ReaderState, features, position_value
from recommender.model import CorpusModel
from recommender.ranker import RankRequest

# A reader's history as the service keeps it (feed.readers.history.MAX_READ): the newest reads.
MAX_HISTORY = 200
POSITIVE = frozenset({"click", "read"})  # what makes a shown article a positive
# As the service's default NEWSFEED_POPULARITY_HALF_LIFE_HOURS (config/): the counts a page's
# features see decay as they do online (feed/readers/popularity.py).
POPULARITY_HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class Page:
    """One served page: who saw it and when, what was shown where, and what they clicked."""

    user: str
    time: float  # epoch seconds
    articles: tuple[str, ...]
    positions: tuple[int, ...]  # 0-based, aligned with articles
    labels: tuple[int, ...]  # 1 clicked (or read), 0 not
    followed: tuple[str, ...] = ()
    # The reader's clicks and reads before the page: (article id, epoch seconds).
    history: tuple[tuple[str, float], ...] = field(default=(), compare=False)


class LoggedEvent(NamedTuple):
    """One entry of the event stream (feed.readers.events), as training reads it."""

    type: str
    user: str
    article: str
    ts: float
    feed_id: str | None = None
    position: int | None = None


def pages_from_events(
    events: Iterable[LoggedEvent], follows: Mapping[str, tuple[str, ...]] | None = None
) -> list[Page]:
    """The served pages an event stream records, in time order.

    Impressions sharing a ``feed_id`` are one page (without one: the reader's impressions of
    the same second), at the time of its first impression, in position order (arrival order
    where positions are missing). A click or read labels the article on the page its
    ``feed_id`` names, or else on the reader's latest page showing it by then. Each page
    carries the reader's clicks and reads strictly before it (the newest MAX_HISTORY, an
    article once, at its latest time, as the service's history keeps them) and their
    ``follows`` as given (the current ones: the stream does not record follows).
    """
    shown: dict[str, dict[str, tuple[float, int, int]]] = {}  # page -> article -> ts, pos, n
    owner: dict[str, tuple[str, float]] = {}  # page -> user, first ts
    consumed: list[LoggedEvent] = []
    for n, event in enumerate(events):
        if event.type == "impression":
            key = event.feed_id or f"{event.user}@{int(event.ts)}"
            user, first = owner.get(key, (event.user, event.ts))
            owner[key] = (user, min(first, event.ts))
            position = event.position if event.position is not None else n
            seen = shown.setdefault(key, {})
            if event.article not in seen:
                seen[event.article] = (event.ts, position, n)
        elif event.type in POSITIVE:
            consumed.append(event)
    # Where each reader saw each article, for positives that name no page.
    showings: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for key, articles in shown.items():
        user = owner[key][0]
        for article in articles:
            showings[(user, article)].append((owner[key][1], key))
    for found in showings.values():
        found.sort()
    clicked: set[tuple[str, str]] = set()  # (page, article)
    reads: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for event in consumed:
        reads[event.user].append((event.ts, event.article))
        if event.feed_id is not None and event.article in shown.get(event.feed_id, {}):
            clicked.add((event.feed_id, event.article))
            continue
        candidates = showings.get((event.user, event.article))
        if candidates:
            k = bisect.bisect_right(candidates, (event.ts, "\uffff"))
            clicked.add((candidates[max(k - 1, 0)][1], event.article))
    for history in reads.values():
        history.sort()
    pages = []
    for key in sorted(shown, key=lambda k: owner[k][1]):
        user, when = owner[key]
        order = sorted(shown[key].items(), key=lambda item: (item[1][1], item[1][2]))
        pages.append(
            Page(
                user,
                when,
                tuple(article for article, _ in order),
                tuple(position for _, (_, position, _) in order),
                tuple(int((key, article) in clicked) for article, _ in order),
                (follows or {}).get(user, ()),
                _history_before(reads.get(user, []), when),
            )
        )
    return pages


def _history_before(reads: list[tuple[float, str]], when: float) -> tuple[tuple[str, float], ...]:
    """The newest MAX_HISTORY distinct articles of ``reads`` (time-sorted) before ``when``."""
    end = bisect.bisect_left(reads, (when, ""))
    latest: dict[str, float] = {}
    for ts, article in reversed(reads[:end]):
        if article not in latest:
            latest[article] = ts
            if len(latest) == MAX_HISTORY:
                break
    return tuple(latest.items())


class DecayedCounts:
    """Decayed (clicks, impressions) per article, as feed.readers.popularity keeps them."""

    def __init__(self, half_life_hours: float = POPULARITY_HALF_LIFE_HOURS) -> None:
        self._half_life = half_life_hours * 3600.0
        self._counts: dict[str, tuple[float, float, float]] = {}  # id -> clicks, shown, as of

    def observe(self, now: float, articles: Sequence[str], labels: Sequence[int]) -> None:
        for article_id, label in zip(articles, labels, strict=True):
            clicks, shown, since = self._counts.get(article_id, (0.0, 0.0, now))
            decay = 2.0 ** (-(now - since) / self._half_life)
            self._counts[article_id] = (clicks * decay + label, shown * decay + 1.0, now)

    def read(self, articles: Iterable[str], now: float) -> dict[str, tuple[float, float]]:
        found = {}
        for article_id in articles:
            counts = self._counts.get(article_id)
            if counts is not None:
                clicks, shown, since = counts
                decay = 2.0 ** (-(now - since) / self._half_life)
                found[article_id] = (clicks * decay, shown * decay)
        return found


def replay(pages: Iterable[Page]) -> Iterator[tuple[Page, dict[str, tuple[float, float]]]]:
    """Pages in the given (time) order, each with its articles' counts from earlier pages:
    a page is counted once the clock has passed it, so pages of the same second see none of
    each other."""
    counts = DecayedCounts()
    pending: list[Page] = []
    for page in pages:
        if pending and pending[0].time < page.time:
            for done in pending:
                counts.observe(done.time, done.articles, done.labels)
            pending.clear()
        yield page, counts.read(page.articles, page.time)
        pending.append(page)


def request_of(page: Page, popularity: Mapping[str, tuple[float, float]]) -> RankRequest:
    """The request a ranker gets for the page: its articles are the candidates."""
    return RankRequest(
        followed=page.followed,
        now=page.time,
        size=len(page.articles),
        history=page.history,
        popularity=popularity,
        candidates=frozenset(page.articles),
    )


@dataclass
class Examples:
    """One row per impression of a known article: FEATURES then the position column."""

    x: NDArray[np.float64]  # (impressions, len(FEATURES) + 1)
    y: NDArray[np.int8]
    page: NDArray[np.int64]  # the index of the page in ``pages``
    pages: list[Page]
    popularity: list[dict[str, tuple[float, float]]]  # each page's, for the baseline ranker

    @property
    def clicks(self) -> int:
        return int(self.y.sum())

    def bounds(self) -> NDArray[np.int64]:
        """Where each page's rows start, and the end: page p is rows [b[p], b[p + 1])."""
        return np.searchsorted(self.page, np.arange(len(self.pages) + 1)).astype(np.int64)


Advance = Callable[[int], None]


def examples(model: CorpusModel, pages: Iterable[Page], advance: Advance | None = None) -> Examples:
    """Replay the pages (in time order) into feature rows; articles the model does not know
    are left out, as are pages with none it knows. ``advance(1)`` is called per page."""
    blocks: list[NDArray[np.float64]] = []
    labels: list[NDArray[np.int8]] = []
    owners: list[NDArray[np.int64]] = []
    kept: list[Page] = []
    counts: list[dict[str, tuple[float, float]]] = []
    for page, popularity in replay(pages):
        if advance is not None:
            advance(1)
        known = [k for k, a in enumerate(page.articles) if a in model.row_of]
        if not known:
            continue
        if len(known) < len(page.articles):
            page = Page(
                page.user,
                page.time,
                tuple(page.articles[k] for k in known),
                tuple(page.positions[k] for k in known),
                tuple(page.labels[k] for k in known),
                page.followed,
                page.history,
            )
        request = request_of(page, popularity)
        rows = np.array([model.row_of[a] for a in page.articles], dtype=np.intp)
        block = np.empty((rows.size, len(FEATURES) + 1))
        block[:, :-1] = features(model, request, rows, ReaderState.of(model, request))
        block[:, -1] = position_value(np.asarray(page.positions, dtype=np.int64))
        blocks.append(block)
        labels.append(np.asarray(page.labels, dtype=np.int8))
        owners.append(np.full(rows.size, len(kept), dtype=np.int64))
        kept.append(page)
        counts.append(popularity)
    if not blocks:
        return Examples(
            np.zeros((0, len(FEATURES) + 1)),
            np.zeros(0, dtype=np.int8),
            np.zeros(0, dtype=np.int64),
            [],
            [],
        )
    return Examples(
        np.concatenate(blocks), np.concatenate(labels), np.concatenate(owners), kept, counts
    )


def split_at(pages: Sequence[Page], share: float) -> float:
    """The time from which the last ``share`` of the (time-ordered) pages run: pages of one
    second stay on one side, so the later part never shares a moment with the earlier."""
    if not pages:
        return math.inf
    index = min(max(int(len(pages) * (1.0 - share)), 0), len(pages) - 1)
    return pages[index].time
