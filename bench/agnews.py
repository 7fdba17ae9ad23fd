"""The AG News test split as a feed corpus: four categories, keyword topics, publish times.

AG News (Zhang, Zhao & LeCun 2015) is real news text without dates or URLs, for research use:
it is read from ``../shared/data`` (or ``NEWSFEED_AG_NEWS``) and never shipped. Publish times
are drawn by a seeded generator over the last ``SPREAD_HOURS``, so "fresh" has a meaning.
Topics are keyword sets inside one category ("Iraq" in World, "oil" in Business): a reader's
interest finer than a category, which is what the ranker must follow.
"""

from __future__ import annotations

import csv
import html
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recommender.model import Doc

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news_test.csv"
CATEGORIES = {
    1: ("world", "World"),
    2: ("sports", "Sports"),
    3: ("business", "Business"),
    4: ("tech", "Sci/Tech"),
}
SPREAD_HOURS = 72.0


@dataclass(frozen=True)
class Topic:
    name: str
    category: str
    pattern: re.Pattern[str]
    mentions: int = 1  # how often a story must name it (a report names its subject repeatedly)


def _topic(name: str, category: str, words: str) -> Topic:
    return Topic(name, category, re.compile(rf"\b({words})\b", re.IGNORECASE))


TOPICS = (
    _topic("iraq", "world", "iraq|iraqi|iraqis|baghdad|falluja|fallujah|najaf|sadr"),
    _topic("israel", "world", "israel|israeli|israelis|palestinian|palestinians|gaza|arafat"),
    _topic("sudan", "world", "sudan|sudanese|darfur"),
    _topic("olympics", "sports", "olympic|olympics|athens"),
    _topic("baseball", "sports", "red sox|yankees|baseball|world series|cardinals|astros"),
    _topic("football", "sports", "nfl|quarterback|touchdown|touchdowns"),
    _topic("oil", "business", "oil|crude|opec|gasoline"),
    _topic("airlines", "business", "airline|airlines|airways"),
    _topic("microsoft", "tech", "microsoft|windows"),
    _topic("space", "tech", "nasa|space|spacecraft|mars|saturn|astronaut|astronauts"),
)


@dataclass(frozen=True)
class Story:
    id: str
    category: str
    title: str
    summary: str
    published: float  # epoch seconds
    body: str = ""

    @property
    def text(self) -> str:
        """What the model is fitted on, as the service builds it (Article.text in
        feed.corpus.articles)."""
        return f"{self.title}\n{self.summary}\n{self.body}" if self.body else self.headline

    @property
    def headline(self) -> str:
        return f"{self.title} {self.summary}"

    def doc(self) -> Doc:
        return Doc(self.id, self.text, (self.category,), self.published)


def path() -> Path | None:
    """The corpus file, or None when this machine does not have it."""
    found = Path(os.environ.get("NEWSFEED_AG_NEWS", DEFAULT_PATH))
    return found if found.is_file() else None


def _clean(text: str) -> str:
    # The original's escapes: "\" for a newline, " #36;" for "$", " #39;" for "'".
    text = re.sub(r" ?#(\d+);", lambda m: chr(int(m.group(1))), text.replace("\\", " "))
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def load(now: float, *, seed: int = 0, source: Path | None = None) -> list[Story]:
    """Every story, published at a seeded random moment of the ``SPREAD_HOURS`` before now."""
    found = source or path()
    if found is None:
        raise FileNotFoundError(f"AG News not found at {DEFAULT_PATH} (set NEWSFEED_AG_NEWS)")
    rng = random.Random(seed)
    stories = []
    with open(found, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            slug = CATEGORIES[int(row["label"])][0]
            age = rng.random() * SPREAD_HOURS * 3600.0
            stories.append(
                Story(
                    f"ag{number:05d}",
                    slug,
                    _clean(row["title"]),
                    _clean(row["description"]),
                    now - age,
                )
            )
    return stories


def on_topic(story: Story, topic: Topic) -> bool:
    return story.category == topic.category and (
        len(topic.pattern.findall(story.text)) >= topic.mentions
    )


def topic_ids(stories: Sequence[Story], topic: Topic) -> frozenset[str]:
    return frozenset(s.id for s in stories if on_topic(s, topic))
