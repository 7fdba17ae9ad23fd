"""Real headlines for the demo: well-known public news feeds, registered as RSS sources.

`newsfeed serve --demo` registers them next to the generated corpus: on a machine with
internet the jobs worker polls them (politely: conditional GET, a User-Agent that names us)
and the page shows real stories in its categories; offline, or when a feed fails, polls back
off and the generated corpus carries the demo alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from feed import sources
from feed.exceptions import SourceConflict

# The generator's categories each have a feed; one poll an hour is plenty for a demo.
POLL_INTERVAL_SECONDS = 3600


@dataclass(frozen=True)
class DemoSource:
    url: str
    category: str


DEMO_SOURCES = (
    DemoSource("https://feeds.bbci.co.uk/news/world/rss.xml", "world"),
    DemoSource("https://feeds.bbci.co.uk/news/world/middle_east/rss.xml", "middle-east"),
    DemoSource("https://feeds.bbci.co.uk/news/business/rss.xml", "business"),
    DemoSource("https://feeds.bbci.co.uk/news/technology/rss.xml", "tech"),
    DemoSource("https://feeds.bbci.co.uk/news/science_and_environment/rss.xml", "science"),
    DemoSource("https://feeds.bbci.co.uk/news/health/rss.xml", "health"),
    DemoSource("https://feeds.bbci.co.uk/sport/rss.xml", "sports"),
    DemoSource("https://feeds.bbci.co.uk/news/entertainment_and_arts/rss.xml", "culture"),
    DemoSource("https://www.theguardian.com/environment/climate-crisis/rss", "climate"),
)


def register_demo_sources(r: redis.Redis, demo: Sequence[DemoSource] = DEMO_SOURCES) -> list[str]:
    """Register the feeds not registered yet (an admin's edits to one are kept); answers the
    ids of those added."""
    added = []
    for source in demo:
        try:
            created = sources.create(
                r, source.url, [source.category], poll_interval_seconds=POLL_INTERVAL_SECONDS
            )
        except SourceConflict:
            continue
        added.append(created.id)
    return added
