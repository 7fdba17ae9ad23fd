"""A small MIND-format click log (news.tsv, behaviors.tsv) from the demo corpus generator.

Run ``python -m devtools.mind_sample DIR`` to write one for ``newsfeed evaluate``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools.demo import generate_articles
from recommender.mind import format_time

# Demo category -> MIND (category, subcategory), using names the real dataset uses.
MIND_CATEGORIES: dict[str, tuple[str, str]] = {
    "middle-east": ("middleeast", "middleeast"),
    "syria": ("news", "newsworld"),
    "israel-hamas-war": ("news", "newsworld"),
    "world": ("news", "newsworld"),
    "business": ("finance", "finance-markets"),
    "tech": ("news", "newsscienceandtechnology"),
    "science": ("news", "newsscienceandtechnology"),
    "sports": ("sports", "soccer"),
    "health": ("health", "medical"),
    "climate": ("weather", "weathertopstories"),
    "culture": ("entertainment", "entertainment-celebrity"),
}

LOG_START = datetime(2019, 11, 9, tzinfo=UTC)
LOG_DAYS = 4  # impressions are spread over [LOG_START, LOG_START + LOG_DAYS)
HISTORY_DAYS = 6  # news published before LOG_START, the pool histories are drawn from
FRESH_HOURS = 48  # an impression's candidates were published within this many hours
PREFERRED_BOOST = 8.0  # click weight of a candidate from a preferred category, vs 1
FRESHNESS_HALF_LIFE_HOURS = 24.0
HISTORY_PREFERRED_SHARE = 0.85
EMPTY_HISTORY_SHARE = 0.03

# Lines the sample's readers must skip (and count) when it is written with ``malformed=True``
# (the readers' tests want them); blank lines come with them and are ignored, not counted.
MALFORMED_NEWS_LINES = 1
MALFORMED_BEHAVIOR_LINES = 3


@dataclass(frozen=True)
class _Item:
    id: str
    slugs: tuple[str, ...]
    published: float
    appeal: float  # how clickable the item is for everyone: what popularity can learn


def write_mind_sample(
    directory: str | os.PathLike[str],
    *,
    users: int = 300,
    impressions: int = 2000,
    news: int = 800,
    seed: int = 7,
    malformed: bool = True,
) -> tuple[Path, Path]:
    """Write ``news.tsv`` and ``behaviors.tsv`` under ``directory``; same arguments, same files.

    Each user prefers one or two demo categories: 85% of the history and, per candidate,
    ``PREFERRED_BOOST`` times the click weight come from them. Every news item also has an
    appeal and loses half its click weight per day of age, so popularity and freshness carry
    some signal too. Each impression shows 10-20 fresh candidates (in random order) with 1-3
    clicks; one that would show fewer than two is left out, so a small ``news`` gives fewer
    impressions. The behaviors file is in impression-id order, not time order. With ``malformed``
    it carries ``MALFORMED_BEHAVIOR_LINES`` broken lines and news.tsv ``MALFORMED_NEWS_LINES``,
    plus a blank line each; without, every line parses (the files are otherwise the same).
    """
    rng = random.Random(seed)
    end = LOG_START + timedelta(days=LOG_DAYS)
    articles = generate_articles(
        news, seed=seed, now=end, max_age_days=HISTORY_DAYS + LOG_DAYS, id_prefix="mind"
    )
    items: list[_Item] = []
    for n, article in enumerate(articles):
        published = datetime.strptime(str(article["published_at"]), "%Y-%m-%dT%H:%M:%SZ")
        slugs = article["categories"]
        assert isinstance(slugs, list)
        items.append(
            _Item(
                f"N{10001 + n}",
                tuple(str(s) for s in slugs),
                published.replace(tzinfo=UTC).timestamp(),
                rng.lognormvariate(0.0, 0.7),
            )
        )

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    news_path = directory / "news.tsv"
    behaviors_path = directory / "behaviors.tsv"
    _write_news(news_path, articles, items, malformed)
    _write_behaviors(behaviors_path, items, users, impressions, rng, malformed)
    return news_path, behaviors_path


def _write_news(
    path: Path, articles: list[dict[str, object]], items: list[_Item], malformed: bool
) -> None:
    lines: list[str] = []
    for n, (article, item) in enumerate(zip(articles, items, strict=True)):
        category, subcategory = MIND_CATEGORIES[item.slugs[0]]
        title = str(article["title"])
        abstract = "" if n % 25 == 0 else str(article["summary"])  # MIND has empty abstracts
        entities = json.dumps(
            [{"Label": title.split()[0], "Type": "O", "WikidataId": "Q1", "Confidence": 1.0}]
        )
        fields = [
            item.id,
            category,
            subcategory,
            title,
            abstract,
            f"https://assets.msn.com/labs/mind/AA{item.id[1:]}.html",
            entities,
            "[]",
        ]
        if n == 1:
            fields = fields[:4]  # a line cut after the title: still readable, no abstract
        lines.append("\t".join(fields))
    if malformed:
        lines.insert(len(lines) // 2, "N99999\tnews")  # two fields
        lines.insert(len(lines) // 3, "")  # blank: ignored
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_behaviors(
    path: Path,
    items: list[_Item],
    users: int,
    impressions: int,
    rng: random.Random,
    malformed: bool,
) -> None:
    start = LOG_START.timestamp()
    slugs = list(MIND_CATEGORIES)
    before = [item for item in items if item.published < start]
    by_slug = {slug: [item for item in before if slug in item.slugs] for slug in slugs}

    preferences: list[frozenset[str]] = []
    histories: list[list[_Item]] = []
    for _ in range(users):
        liked = frozenset(rng.sample(slugs, rng.choice((1, 2))))
        preferences.append(liked)
        # No news before the log (a tiny --news) leaves nothing to draw a history from.
        empty = not before or rng.random() < EMPTY_HISTORY_SHARE
        length = 0 if empty else rng.randint(3, 30)
        chosen: dict[str, _Item] = {}
        for _ in range(length):
            if rng.random() < HISTORY_PREFERRED_SHARE:
                pool = by_slug[rng.choice(sorted(liked))] or before
            else:
                pool = before
            item = rng.choice(pool)
            chosen[item.id] = item
        histories.append(sorted(chosen.values(), key=lambda item: item.published))

    lines: list[str] = []
    for _ in range(impressions):
        user = rng.randrange(users)
        now = start + rng.random() * LOG_DAYS * 86400
        fresh = [item for item in items if now - FRESH_HOURS * 3600 <= item.published <= now]
        if len(fresh) < 2:  # too few news for a labelled impression: the readers would skip it
            continue
        shown = rng.sample(fresh, min(rng.randint(10, 20), len(fresh)))
        weights = [
            (PREFERRED_BOOST if preferences[user].intersection(item.slugs) else 1.0)
            * item.appeal
            * math.exp2(-(now - item.published) / 3600 / FRESHNESS_HALF_LIFE_HOURS)
            for item in shown
        ]
        wanted = min(rng.choices((1, 2, 3), weights=(0.55, 0.3, 0.15))[0], len(shown) - 1)
        clicked: set[int] = set()
        while len(clicked) < wanted:
            clicked.add(rng.choices(range(len(shown)), weights=weights)[0])
        lines.append(
            "\t".join(
                [
                    str(len(lines) + 1),
                    f"U{1001 + user}",
                    format_time(now),
                    " ".join(item.id for item in histories[user]),
                    " ".join(f"{item.id}-{int(i in clicked)}" for i, item in enumerate(shown)),
                ]
            )
        )
    if not malformed:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    broken = [
        f"{impressions + 1}\tU1001\t2019-11-10 08:00\t\tN10001-1 N10002-0",  # unreadable time
        f"{impressions + 2}\tU1001\t{format_time(start)}\t\tN10001-1 N10002-2",  # bad label
        f"{impressions + 3}\tU1001\t{format_time(start)}",  # three fields
    ]
    assert len(broken) == MALFORMED_BEHAVIOR_LINES
    for offset, line in enumerate(broken, start=1):
        lines.insert(offset * len(lines) // (len(broken) + 1), line)
    lines.insert(len(lines) // 5, "")  # blank: ignored
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Write a sample into DIR and print how to evaluate the rankers on it."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mind_sample",
        description="Write a MIND-format click log (news.tsv, behaviors.tsv) from demo news.",
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="created if missing")
    parser.add_argument("--users", type=int, default=300, help="default: %(default)s")
    parser.add_argument("--impressions", type=int, default=2000, help="default: %(default)s")
    parser.add_argument("--news", type=int, default=800, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=7, help="default: %(default)s")
    parser.add_argument(
        "--malformed",
        action="store_true",
        help="add the broken lines the readers' tests use (the evaluator skips and counts them)",
    )
    args = parser.parse_args(argv)
    for name in ("users", "impressions", "news"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    news_path, behaviors_path = write_mind_sample(
        args.directory,
        users=args.users,
        impressions=args.impressions,
        news=args.news,
        seed=args.seed,
        malformed=args.malformed,
    )
    print(news_path)
    print(behaviors_path)
    print(
        f"newsfeed evaluate --news {shlex.quote(str(news_path))} "
        f"--behaviors {shlex.quote(str(behaviors_path))}"
    )


if __name__ == "__main__":
    main()
