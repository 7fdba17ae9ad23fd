"""The demo's real news feeds: registered once in the page's categories, polled from copies."""

from __future__ import annotations

from devtools.demo import DEMO_CATEGORIES
from devtools.demo_sources import DEMO_SOURCES, DemoSource, register_demo_sources
from feed import sources
from feed.corpus import articles
from feed.sources import polling
from tests.feedserver import feed_server

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Local copy of a public feed</title>
<item><title>{title}</title><link>https://news.example.org/{slug}</link>
  <guid>{slug}</guid><description>{title}, reported.</description>
  <pubDate>Sat, 28 Nov 2026 10:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_every_demo_feed_names_a_category_of_the_page():
    assert {s.category for s in DEMO_SOURCES} <= set(DEMO_CATEGORIES)
    assert len({s.url for s in DEMO_SOURCES}) == len(DEMO_SOURCES)


def test_demo_feeds_are_registered_once_and_edits_are_kept(redis_client):
    added = register_demo_sources(redis_client)
    assert len(added) == len(DEMO_SOURCES)
    sources.update(redis_client, added[0], {"enabled": False})
    assert register_demo_sources(redis_client) == []
    assert sources.get(redis_client, added[0]).enabled is False


def test_polled_demo_feeds_bring_real_stories_into_their_categories(redis_client):
    with feed_server() as server:
        demo = [
            DemoSource(
                server.serve("/world.xml", FEED.format(title="Summit ends", slug="w")), "world"
            ),
            DemoSource(server.serve("/tech.xml", FEED.format(title="Chip law", slug="t")), "tech"),
        ]
        register_demo_sources(redis_client, demo)
        outcomes = polling.poll_due(redis_client, server.options())
    assert {o.status for o in outcomes} == {"ok"}
    stored = {a.title: a.categories for a in articles.iter_published_since(redis_client, 0)}
    assert stored == {"Summit ends": ("world",), "Chip law": ("tech",)}
