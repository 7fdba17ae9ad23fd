"""A MIND-format log from AG News: readers of one keyword topic, shown stories of its category.

Each reader follows one topic of ``bench.agnews.TOPICS`` (say "oil", in Business): their history
holds ``HISTORY`` stories of it, and each of their impressions shows ``POSITIVES`` more of it,
clicked, among ``NEGATIVES`` stories of the same category that are not about it, skipped. The
category says nothing then; only what the stories are about separates the clicks.

No story is shown twice, and no story is both in a history and shown: every candidate is new
to the log when it is shown, so its stand-in publish time (its first appearance, see
recommender.evaluation) is the impression's own time, and no earlier impression has counted
it. Freshness and popularity carry no signal by construction: the latest and popular rankers
can only tie, and tie-aware metrics give them exactly the expectation of a random order.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import agnews
from bench.agnews import Story, Topic
from recommender.evaluation import DEFAULT_RANKERS, OfflineMetrics, evaluate, make_rankers
from recommender.mind import format_time, read_behaviors, read_news

READERS = 150  # at most: fewer when the topics' unused stories run out
HISTORY = (5, 10)  # clicked stories of the topic before the log, per reader
IMPRESSIONS = (1, 3)  # per reader, all with the same history, as MIND's histories are per user
POSITIVES = (1, 3)  # clicked candidates per impression, on the reader's topic
NEGATIVES = (10, 20)  # skipped candidates per impression: same category, not on the topic
GAP_SECONDS = (60, 900)  # between consecutive impressions of the log
LOG_START = datetime(2019, 11, 11, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class _Shown:
    reader: int
    history: tuple[str, ...]
    candidates: tuple[tuple[str, int], ...]  # (story id, 1 clicked / 0 skipped)


class _Pools:
    """Unused stories on each topic and in each category, each pool in a seeded order."""

    def __init__(self, stories: Sequence[Story], rng: random.Random) -> None:
        # Matched once: the topic patterns are the slow part of building a log.
        self.on = {t.name: agnews.topic_ids(stories, t) for t in agnews.TOPICS}
        self.topic = {name: [s for s in stories if s.id in ids] for name, ids in self.on.items()}
        self.category: dict[str, list[Story]] = {}
        for story in stories:
            self.category.setdefault(story.category, []).append(story)
        for pool in (*self.topic.values(), *self.category.values()):
            rng.shuffle(pool)
        self._used: set[str] = set()

    def unused(self, pool: Sequence[Story], but_not: Topic | None = None) -> list[Story]:
        excluded = self.on[but_not.name] if but_not else frozenset()
        return [s for s in pool if s.id not in self._used and s.id not in excluded]

    def take(self, stories: Sequence[Story]) -> tuple[str, ...]:
        self._used.update(s.id for s in stories)
        return tuple(s.id for s in stories)


def _reader(number: int, topic: Topic, pools: _Pools, rng: random.Random) -> list[_Shown]:
    """The impressions of one reader of ``topic``; none if its unused stories ran out."""
    history = rng.randint(*HISTORY)
    sizes = [
        (rng.randint(*POSITIVES), rng.randint(*NEGATIVES)) for _ in range(rng.randint(*IMPRESSIONS))
    ]
    on = pools.unused(pools.topic[topic.name])
    off = pools.unused(pools.category[topic.category], but_not=topic)
    if len(on) < history + sum(p for p, _ in sizes) or len(off) < sum(n for _, n in sizes):
        return []
    clicked = pools.take(on[:history])
    del on[:history]
    shown = []
    for positives, negatives in sizes:
        candidates = [(i, 1) for i in pools.take(on[:positives])]
        candidates += [(i, 0) for i in pools.take(off[:negatives])]
        del on[:positives], off[:negatives]
        rng.shuffle(candidates)  # MIND lists candidates in display order, clicks anywhere
        shown.append(_Shown(number, clicked, tuple(candidates)))
    return shown


def write_topic_log(
    directory: str | os.PathLike[str],
    *,
    readers: int = READERS,
    seed: int = 0,
    source: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``news.tsv`` (every AG News test story) and ``behaviors.tsv`` under ``directory``.

    Up to ``readers`` readers, each of a topic drawn at random among those with stories left;
    their impressions interleaved, at increasing times. Same arguments, same files.
    """
    rng = random.Random(seed)
    stories = agnews.load(LOG_START, seed=seed, source=source)
    pools = _Pools(stories, rng)
    open_topics = list(agnews.TOPICS)
    shown: list[_Shown] = []
    number = 0
    while number < readers and open_topics:
        topic = rng.choice(open_topics)
        impressions = _reader(number, topic, pools, rng)
        if not impressions:
            open_topics.remove(topic)  # too few unused stories left for another reader
            continue
        shown += impressions
        number += 1
    rng.shuffle(shown)  # readers come back at different times

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    news_path, behaviors_path = directory / "news.tsv", directory / "behaviors.tsv"
    # AG News has no subcategory: the category stands in. agnews collapses whitespace, tabs
    # included, so no field can break a line.
    news_path.write_text(
        "".join(f"{s.id}\t{s.category}\t{s.category}\t{s.title}\t{s.summary}\n" for s in stories),
        encoding="utf-8",
    )
    now = LOG_START
    lines = []
    for impression_id, impression in enumerate(shown, start=1):
        now += rng.randint(*GAP_SECONDS)
        fields = (
            str(impression_id),
            f"U{impression.reader + 1}",
            format_time(now),
            " ".join(impression.history),
            " ".join(f"{i}-{label}" for i, label in impression.candidates),
        )
        lines.append("\t".join(fields) + "\n")
    behaviors_path.write_text("".join(lines), encoding="utf-8")
    return news_path, behaviors_path


def evaluate_topic_log(
    directory: str | os.PathLike[str],
    *,
    rankers: Sequence[str] = DEFAULT_RANKERS,
    readers: int = READERS,
    seed: int = 0,
    source: Path | None = None,
) -> dict[str, OfflineMetrics]:
    """Write the topic log under ``directory`` and evaluate the named rankers on it, as
    ``newsfeed evaluate`` would (the random baseline seeded with ``seed``)."""
    news_path, behaviors_path = write_topic_log(
        directory, readers=readers, seed=seed, source=source
    )
    return evaluate(
        read_news(news_path), read_behaviors(behaviors_path), make_rankers(rankers, seed=seed)
    )
