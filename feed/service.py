"""The feed orchestrator: serve a user's page from cache, or build, store and serve it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from feed import articles, cache, categories, subscriptions, versions
from feed.cache import Entry, Header, RenderedPage
from feed.cursor import Cursor, CursorCodec
from feed.exceptions import StaleCursor
from feed.model_keeper import ModelKeeper
from feed.versions import Versions
from recommender.ranker import Ranked, Ranker, RankRequest

log = logging.getLogger(__name__)

# Entries read beyond the page size, so articles deleted after the build can be skipped
# without a second round trip.
PAGE_SLACK = 10
# How long a request waits for a concurrent request's build of the same feed before
# building one itself (uncached).
BUILD_WAIT_SECONDS = 5.0
# A model fitted from a snapshot still holds articles deleted shortly before the snapshot
# was read; this margin covers the read itself.
DELETE_MARGIN_SECONDS = 60.0

REASONS = {
    "follow": "Because you follow {}",
    "related": "Related to {}, which you follow",
    "latest": "Latest in {}",
}


@dataclass(frozen=True)
class FeedPage:
    body: bytes  # the JSON response: {"items": [...], "next_cursor": str | null}
    cache_hit: bool


class FeedService:
    def __init__(
        self,
        r: redis.Redis,
        keeper: ModelKeeper,
        ranker: Ranker,
        codec: CursorCodec,
        *,
        feed_size: int,
        feed_ttl: int,
        cursor_ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = r
        self._keeper = keeper
        self._ranker = ranker
        self._codec = codec
        self._feed_size = feed_size
        self._feed_ttl = feed_ttl
        self._cursor_ttl = cursor_ttl
        self._clock = clock
        self.builds = 0  # feeds computed by this process, for metrics and the bench report

    # -- follows: every change drops the rendered first page, so it is never served stale

    def follows(self, user_id: str) -> list[str]:
        return subscriptions.get(self._redis, user_id)

    def follow(self, user_id: str, slug: str) -> list[str]:
        if subscriptions.follow(self._redis, user_id, slug):
            cache.drop_rendered(self._redis, user_id)
        return self.follows(user_id)

    def unfollow(self, user_id: str, slug: str) -> list[str]:
        if subscriptions.unfollow(self._redis, user_id, slug):
            cache.drop_rendered(self._redis, user_id)
        return self.follows(user_id)

    def replace_follows(self, user_id: str, slugs: Iterable[str]) -> list[str]:
        followed, changed = subscriptions.replace(self._redis, user_id, slugs)
        if changed:
            cache.drop_rendered(self._redis, user_id)
        return followed

    # -- pages

    def page(self, user_id: str, limit: int, cursor: str | None = None) -> FeedPage:
        if cursor is not None:
            return self._next_page(user_id, limit, self._codec.decode(user_id, cursor))
        current, raw_rendered = versions.read_with(self._redis, cache.rendered_key(user_id))
        rendered = RenderedPage.decode(raw_rendered)
        if rendered is not None and (rendered.corpus, rendered.model, rendered.limit) == (
            current.corpus,
            current.model,
            limit,
        ):
            return FeedPage(rendered.body, cache_hit=True)
        return self._first_page(user_id, limit, current)

    def _first_page(self, user_id: str, limit: int, current: Versions) -> FeedPage:
        pipe = self._redis.pipeline(transaction=False)
        subscriptions.queue_version(pipe, user_id)
        cache.queue_first_page(pipe, user_id, limit + PAGE_SLACK)
        raw_subs, raw_page = pipe.execute()
        wanted = (current.corpus, current.model, int(raw_subs or 0))
        header, entries = cache.split_first_page(raw_page)
        hit = (
            header is not None
            and (header.corpus, header.model, header.subs) == wanted
            and self._clock() - header.built_at < self._feed_ttl
        )
        if not hit:
            header, entries, hit = self._rebuild(user_id, wanted, header, limit + PAGE_SLACK)
        assert header is not None
        body = self._render(user_id, header.build_id, 0, entries, limit)
        if header.model == current.model:
            cache.store_rendered(
                self._redis,
                user_id,
                RenderedPage(header.corpus, header.model, limit, body),
                header.subs,
                ttl=int(self._feed_ttl - (self._clock() - header.built_at)),
                subs_key=subscriptions.VERSION_KEY % user_id,
            )
        return FeedPage(body, hit)

    def _next_page(self, user_id: str, limit: int, cursor: Cursor) -> FeedPage:
        entries = cache.read_page(
            self._redis, user_id, cursor.build_id, cursor.offset, limit + PAGE_SLACK
        )
        if entries is None:
            raise StaleCursor("this cursor's feed has expired; start again from the first page")
        return FeedPage(self._render(user_id, cursor.build_id, cursor.offset, entries, limit), True)

    def _rebuild(
        self, user_id: str, wanted: tuple[int, int, int], previous: Header | None, count: int
    ) -> tuple[Header, list[Entry], bool]:
        replacing = previous.build_id if previous else None
        token = cache.acquire_build(self._redis, user_id)
        if token is not None:
            # Another request may have built and released between our read and our lock.
            done = cache.read_built(self._redis, user_id, wanted, count, replacing)
            if done is not None:
                cache.release_build(self._redis, user_id, token)
                return done[0], done[1], True
        else:
            waited = cache.wait_for_build(
                self._redis, user_id, wanted, count, BUILD_WAIT_SECONDS, replacing
            )
            if waited is not None:
                return waited[0], waited[1], True
            log.warning(
                "feed build for %s did not land in %ss; building", user_id, BUILD_WAIT_SECONDS
            )
        try:
            header, entries = self._build(user_id, wanted, previous, store=token is not None)
        finally:
            if token is not None:
                cache.release_build(self._redis, user_id, token)
        return header, entries[:count], False

    def _build(
        self, user_id: str, wanted: tuple[int, int, int], previous: Header | None, store: bool
    ) -> tuple[Header, list[Entry]]:
        corpus, model_version, subs = wanted
        loaded = self._keeper.model_for(model_version)
        pipe = self._redis.pipeline(transaction=False)
        subscriptions.queue_members(pipe, user_id)
        articles.queue_deleted_since(pipe, loaded.meta.snapshot_at - DELETE_MARGIN_SECONDS)
        categories.queue_names(pipe)
        raw_followed, raw_deleted, raw_names = pipe.execute()
        now = self._clock()
        ranked = self._ranker.rank(
            loaded.model,
            RankRequest(
                tuple(sorted(m.decode() for m in raw_followed)),
                now,
                self._feed_size,
                frozenset(i.decode() for i in raw_deleted),
            ),
        )
        names = {k.decode(): v.decode() for k, v in raw_names.items()}
        entries = [Entry.of(r.id, r.score, _reason(r, names)) for r in ranked]
        header = Header(cache.new_build_id(), corpus, loaded.meta.version, subs, now)
        self.builds += 1
        # Only a build from the current model may be cached: a newer one is already published.
        if store and loaded.meta.version == model_version:
            # The list outlives its freshness so that cursors into it keep working.
            cache.store(
                self._redis,
                user_id,
                header,
                entries,
                previous,
                ttl=max(self._feed_ttl, self._cursor_ttl),
                retired_ttl=self._cursor_ttl,
            )
        return header, entries

    def _render(
        self, user_id: str, build_id: str, offset: int, entries: list[Entry], limit: int
    ) -> bytes:
        """Splice each entry's score and reason onto its stored card: no JSON parsing."""
        cards = articles.raw_cards(self._redis, [e.id for e in entries])
        items: list[bytes] = []
        consumed = 0
        for entry, card in zip(entries, cards, strict=True):
            if len(items) == limit:
                break
            consumed += 1
            if card is not None:  # None: deleted since the list was built
                items.append(card[:-1] + entry.tail)
        next_cursor = b"null"
        if consumed < len(entries):
            token = self._codec.encode(user_id, Cursor(build_id, offset + consumed))
            next_cursor = json.dumps(token).encode()
        return b'{"items":[' + b",".join(items) + b'],"next_cursor":' + next_cursor + b"}"


def _reason(ranked: Ranked, names: dict[str, str]) -> str:
    return REASONS[ranked.reason].format(names.get(ranked.category, ranked.category))
