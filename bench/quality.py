"""`make quality`: how well the feed follows its readers, measured on real news (AG News).

Every figure comes from the rankers the service serves (recommender.registry), on a model
fitted by recommender.model.fit, exactly as a feed build calls them. Scenarios:

- topic: a reader follows a category (alone, or with another one), scrolls their feed and
  clicks the first 10 stories of one keyword topic they meet; the topic's share of their next
  first page, against its share before the clicks.
- floors: a reader follows 2 to 4 categories and reads 20 stories of one topic; the fewest
  first-page items any followed category keeps.
- no history: the first page of a reader with no reading equals the follow-only ranking.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from bench import agnews
from bench.agnews import Story, Topic
from bench.topic_log import evaluate_topic_log
from cli.evaluate import metrics_table
from devtools.demo import generate_articles
from recommender.model import CorpusModel, fit
from recommender.ranker import Ranked, Ranker, RankRequest
from recommender.registry import make_ranker

PAGE = 20
CLICKS = 10
SCROLL = 400  # how far down their feed a reader looks for stories of the topic
FLOOR_READS = 20
MAX_FOLLOWS = 5
NOW = 1_800_000_000.0
GENERATED_ARTICLES = 20_000
# Follow sets tried per size on the generated corpus (its 11 categories give hundreds).
GENERATED_FOLLOW_SETS = 4


@dataclass(frozen=True)
class TextCorpus:
    name: str
    stories: list[Story]
    topics: tuple[Topic, ...]


def ag_news() -> TextCorpus:
    stories = agnews.load(NOW)
    return TextCorpus(f"AG News test split ({len(stories)} real stories)", stories, agnews.TOPICS)


def generated() -> TextCorpus:
    """The demo generator's corpus over the same 3 days; a story is on a topic when it names
    one of its category's topic phrases at least twice (its subject, not a passing
    mention)."""
    articles = generate_articles(
        GENERATED_ARTICLES,
        now=datetime.fromtimestamp(NOW, UTC),
        max_age_days=agnews.SPREAD_HOURS / 24,
    )
    stories = [
        Story(
            str(a["id"]),
            str(a["categories"][0]),  # type: ignore[index]
            str(a["title"]),
            str(a["summary"]),
            datetime.fromisoformat(str(a["published_at"])).timestamp(),
            str(a["body"]),
        )
        for a in articles
    ]
    topics = tuple(
        Topic(phrase, slug, re.compile(re.escape(phrase), re.IGNORECASE), mentions=2)
        for slug, phrase in (
            ("israel-hamas-war", "hostage negotiations"),
            ("tech", "chip exports"),
            ("middle-east", "Red Sea shipping"),
            ("business", "interest rates"),
            ("syria", "refugee returns"),
        )
    )
    return TextCorpus(f"generated demo corpus ({len(stories)} stories)", stories, topics)


@dataclass(frozen=True)
class TopicRun:
    topic: str
    followed: tuple[str, ...]
    before: float
    after: float
    followed_min_after: int  # fewest first-page items of any followed category, after

    @property
    def rise(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class FloorRun:
    followed: tuple[str, ...]
    topic: str
    fewest: int


def _page_after_reading(
    ranker: Ranker, model: CorpusModel, followed: tuple[str, ...], wanted: frozenset[str], n: int
) -> list[Ranked]:
    """The first page after clicking ``n`` stories of the topic (they leave the feed)."""
    history = _clicks(ranker, model, followed, wanted, n)
    read = frozenset(article_id for article_id, _ in history)
    return ranker.rank(model, RankRequest(followed, NOW, PAGE, read, history))


def _category_counts(
    page: Sequence[Ranked], by_id: dict[str, Story], followed: Sequence[str]
) -> dict[str, int]:
    return {slug: sum(by_id[r.id].category == slug for r in page) for slug in followed}


def _clicks(
    ranker: Ranker, model: CorpusModel, followed: tuple[str, ...], wanted: frozenset[str], n: int
) -> tuple[tuple[str, float], ...]:
    """The first ``n`` stories of the topic met while scrolling the feed (freshest first if the
    feed shows fewer), clicked one minute apart, the last one now."""
    scrolled = ranker.rank(model, RankRequest(followed, NOW, SCROLL))
    picked = [r.id for r in scrolled if r.id in wanted][:n]
    if len(picked) < n:
        rest = sorted(wanted - set(picked), key=lambda i: -model.published[model.row_of[i]])
        picked += rest[: n - len(picked)]
    return tuple((article_id, NOW - 60.0 * (n - k)) for k, article_id in enumerate(picked))


def _follow_sets(slugs: Sequence[str], topic: Topic, size: int) -> list[tuple[str, ...]]:
    """Follow sets of ``size`` with the topic's category: all, or a seeded few if many."""
    others = [s for s in slugs if s != topic.category]
    sets = [
        tuple(sorted((topic.category, *rest))) for rest in itertools.combinations(others, size - 1)
    ]
    if len(sets) > GENERATED_FOLLOW_SETS:
        sets = random.Random(f"{topic.name}/{size}").sample(sets, GENERATED_FOLLOW_SETS)
    return sets


def topic_runs(
    ranker: Ranker, model: CorpusModel, stories: Sequence[Story], topics: Sequence[Topic]
) -> list[TopicRun]:
    by_id = {s.id: s for s in stories}
    slugs = sorted({s.category for s in stories})
    runs = []
    for topic in topics:
        wanted = agnews.topic_ids(stories, topic)
        for followed in [(topic.category,), *_follow_sets(slugs, topic, 2)]:
            before = ranker.rank(model, RankRequest(followed, NOW, PAGE))
            after = _page_after_reading(ranker, model, followed, wanted, CLICKS)
            counts = _category_counts(after, by_id, followed)
            runs.append(
                TopicRun(
                    topic.name,
                    followed,
                    sum(r.id in wanted for r in before) / PAGE,
                    sum(r.id in wanted for r in after) / PAGE,
                    min(counts.values()),
                )
            )
    return runs


def floor_runs(
    ranker: Ranker, model: CorpusModel, stories: Sequence[Story], topics: Sequence[Topic]
) -> list[FloorRun]:
    by_id = {s.id: s for s in stories}
    slugs = sorted({s.category for s in stories})
    runs = []
    for topic in topics:
        wanted = agnews.topic_ids(stories, topic)
        for size in range(2, min(MAX_FOLLOWS, len(slugs)) + 1):
            for followed in _follow_sets(slugs, topic, size):
                page = _page_after_reading(ranker, model, followed, wanted, FLOOR_READS)
                counts = _category_counts(page, by_id, followed)
                runs.append(FloorRun(followed, topic.name, min(counts.values())))
    return runs


@dataclass(frozen=True)
class QualityReport:
    corpus: str
    ranker: str
    topic: list[TopicRun]
    floors: list[FloorRun]

    def as_json(self) -> dict[str, object]:
        return {
            "corpus": self.corpus,
            "ranker": self.ranker,
            "topic": [asdict(r) | {"rise": r.rise} for r in self.topic],
            "floors": [asdict(r) for r in self.floors],
        }


def report(corpus: TextCorpus, ranker_name: str = "tfidf") -> QualityReport:
    model = fit([s.doc() for s in corpus.stories])
    ranker = make_ranker(ranker_name)
    return QualityReport(
        f"{corpus.name}, {len(model.slugs)} categories",
        ranker_name,
        topic_runs(ranker, model, corpus.stories, corpus.topics),
        floor_runs(ranker, model, corpus.stories, corpus.topics),
    )


def _print(result: QualityReport) -> None:
    print(result.corpus, "| ranker", result.ranker)
    print(f"\nTopic share of page 1 after {CLICKS} clicks (target: rise >= 0.25, after >= 0.35)")
    print(f"{'topic':<10} {'follows':<24} {'before':>6} {'after':>6} {'rise':>6} {'min cat':>7}")
    for run in result.topic:
        print(
            f"{run.topic:<10} {'+'.join(run.followed):<24} {run.before:>6.2f}"
            f" {run.after:>6.2f} {run.rise:>+6.2f} {run.followed_min_after:>7}"
        )
    rises = [r.rise for r in result.topic]
    afters = [r.after for r in result.topic]
    meeting = sum(r.rise >= 0.25 and r.after >= 0.35 for r in result.topic)
    print(
        f"median rise {statistics.median(rises):+.2f} (min {min(rises):+.2f}), median after "
        f"{statistics.median(afters):.2f} (min {min(afters):.2f}); "
        f"runs meeting both: {meeting}/{len(rises)}"
    )
    fewest = [r.fewest for r in result.floors]
    print(
        f"\nFloors: {len(fewest)} runs (2-{MAX_FOLLOWS} follows, {FLOOR_READS} reads of one "
        f"topic); fewest items of a followed category: min {min(fewest)}, runs under 2: "
        f"{sum(f < 2 for f in fewest)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranker", default="tfidf")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    corpora = [generated()]
    if agnews.path() is None:
        print("AG News is not on this machine (see bench/agnews.py): generated corpus only\n")
    else:
        corpora.insert(0, ag_news())
    results: list[dict[str, object]] = []
    for corpus in corpora:
        result = report(corpus, args.ranker)
        _print(result)
        print()
        results.append(result.as_json())
    if agnews.path() is not None:
        with tempfile.TemporaryDirectory() as directory:
            offline = evaluate_topic_log(directory)
        some = next(iter(offline.values()))
        print(
            "Offline, `newsfeed evaluate` on a MIND-format topic log from AG News "
            f"({some.impressions} impressions: each reader's history and clicks share a topic, "
            "negatives are from the same category; target: tfidf AUC >= 0.85, ahead of latest, "
            "popular and random)"
        )
        print(metrics_table(offline))
        results.append({"offline": {name: asdict(m) for name, m in offline.items()}})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
