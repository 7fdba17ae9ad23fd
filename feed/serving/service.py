"""The feed orchestrator: serve a user's page from cache, or build, store and serve it."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from feed.corpus import articles, categories
from feed.exceptions import StaleCursor
from feed.model import versions
from feed.model.keeper import ModelKeeper
from feed.model.learned_store import LearnedModels
from feed.model.versions import Versions
from feed.readers import activity, history, subscriptions
from feed.readers.popularity import Popularity
from feed.serving import cache
from feed.serving.cache import Entry, Header, Inputs, RenderedPage
from feed.serving.cursor import Cursor, CursorCodec
from feed.serving.observer import FeedObserver, Unobserved
from feed.serving.variants import Variants
from recommender.ranker import Ranked, Ranker, RankRequest
from recommender.registry import uses_learned, uses_popularity

log = logging.getLogger(__name__)

# Entries read beyond the page size, so articles deleted or hidden after the build can be
# skipped without a second round trip.
PAGE_SLACK = 10
# How long a request waits for a concurrent request's build of the same feed before
# building one itself (uncached).
BUILD_WAIT_SECONDS = 5.0
# A model fitted from a snapshot still holds articles deleted shortly before the snapshot
# was read; this margin covers the read itself.
DELETE_MARGIN_SECONDS = 60.0
# Between a variant and its learned model's version in a cached list's inputs: no experiment
# or variant name holds it.
LEARNED_VERSION_MARK = "#"

REASONS = {
    "follow": "Because you follow {}",
    "related": "Related to {}, which you follow",
    "latest": "Latest in {}",
    "history": "Like articles you read in {}",
    "read": "Because you read ‘{}’",
    "popular": "Popular in {}",
}
# A page's ETag: 128 bits of blake2b, as clients have always been sent.
ETAG_BYTES = 16
# Titles in reasons are cut to fit a line on a phone.
REASON_TITLE_CHARS = 80


@dataclass(frozen=True)
class Explained:
    """A first page with each item's explanation (see FeedService.explain)."""

    ranker: str
    experiment: str | None
    variant: str | None
    model_version: int
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class FeedPage:
    # {"feed_id", "experiment", "variant", "items": [...], "next_cursor"}
    body: bytes
    cache_hit: bool
    feed_id: str
    # Strong validator of everything after the per-response feed_id (the experiment, items and
    # next_cursor), so a page served again under a new feed_id keeps its ETag.
    etag: str


class FeedService:
    def __init__(
        self,
        r: redis.Redis,
        keeper: ModelKeeper,
        variants: Variants,
        popularity: Popularity,
        codec: CursorCodec,
        *,
        feed_size: int,
        feed_ttl: int,
        cursor_ttl: int,
        clock: Callable[[], float] = time.time,
        observer: FeedObserver | None = None,
        learned: LearnedModels | None = None,
    ) -> None:
        self._redis = r
        self._keeper = keeper
        self._variants = variants
        self._popularity = popularity
        self._codec = codec
        self._feed_size = feed_size
        self._feed_ttl = feed_ttl
        self._cursor_ttl = cursor_ttl
        self._clock = clock
        self._observer = observer or Unobserved()  # the web layer's metrics
        self._learned = learned  # the published learned model, for the learned ranker
        self.builds = 0  # feeds computed by this process, for metrics and the bench report

    # -- follows: a change drops the rendered first page in the same script, so a cached page
    # of the old set is never served

    def follows(self, user_id: str) -> list[str]:
        return subscriptions.get(self._redis, user_id)

    def follow(self, user_id: str, slug: str) -> list[str]:
        return subscriptions.follow(self._redis, user_id, slug, [cache.rendered_key(user_id)])

    def unfollow(self, user_id: str, slug: str) -> list[str]:
        return subscriptions.unfollow(self._redis, user_id, slug, [cache.rendered_key(user_id)])

    def replace_follows(self, user_id: str, slugs: Iterable[str]) -> list[str]:
        return subscriptions.replace(self._redis, user_id, slugs, [cache.rendered_key(user_id)])

    def seen(self, user_ids: Iterable[str]) -> None:
        """Record readers as active (they sent events): their pages are precomputed."""
        activity.touch(self._redis, user_ids, self._clock())

    # -- pages

    def page(
        self, user_id: str, limit: int, cursor: str | None = None, *, warm: bool = False
    ) -> FeedPage:
        """One page of the user's feed. ``warm``: built ahead of a request (precompute), so
        neither an exposure nor the reader's activity is recorded: nobody saw it."""
        current, (raw_rendered, raw_running) = versions.read_with(
            self._redis, cache.rendered_key(user_id), self._variants.running_key
        )
        variant = self._variants.assign(raw_running, user_id)
        served_by = self._served_by(variant.key)
        if cursor is not None:
            decoded = self._codec.decode(user_id, cursor)
            body = self._next_page(user_id, limit, decoded)
            page = self._serve(body, True, variant.label)
        else:
            rendered = RenderedPage.decode(raw_rendered)
            if rendered is not None and (
                rendered.corpus,
                rendered.model,
                rendered.variant,
                rendered.limit,
            ) == (current.corpus, current.model, served_by, limit):
                page = self._serve(rendered.body, True, variant.label)
            else:
                body, hit = self._first_page(user_id, limit, current, served_by)
                page = self._serve(body, hit, variant.label)
        if warm:
            return page
        self._variants.exposed(variant, user_id)
        if not page.cache_hit:  # misses only: a hit stays one round trip
            activity.touch(self._redis, [user_id], self._clock())
        self._observer.page_served(page.cache_hit)
        return page

    def _served_by(self, variant: str) -> str:
        """What a cached list records as its ranker: the variant, and for a learned ranker the
        learned model's version too, so a newly published model replaces cached feeds as a new
        TF-IDF model does."""
        if self._learned is None or not uses_learned(self._variants.ranker(variant)):
            return variant
        self._learned.current()  # refreshes the copy in hand at most every poll interval
        held = self._learned.held
        return f"{variant}{LEARNED_VERSION_MARK}{held.version if held else 0}"

    def _serve(self, body: bytes, hit: bool, label: bytes) -> FeedPage:
        """Prefix the stored body with this response's id and the experiment that served it;
        the ETag hashes what follows the id."""
        feed_id = uuid.uuid4().hex
        stable = label + body[1:]
        etag = hashlib.blake2b(stable, digest_size=ETAG_BYTES).hexdigest()
        return FeedPage(b'{"feed_id":"' + feed_id.encode() + b'",' + stable, hit, feed_id, etag)

    def _first_page(
        self, user_id: str, limit: int, current: Versions, variant: str
    ) -> tuple[bytes, bool]:
        pipe = self._redis.pipeline(transaction=False)
        subscriptions.queue_version(pipe, user_id)
        history.queue_version(pipe, user_id)
        cache.queue_first_page(pipe, user_id, limit + PAGE_SLACK)
        raw_subs, raw_history, raw_page = pipe.execute()
        wanted = Inputs(
            current.corpus, current.model, f"{int(raw_subs or 0)}.{int(raw_history or 0)}", variant
        )
        header, entries = cache.split_first_page(raw_page)
        hit = (
            header is not None
            and header.inputs == wanted
            and self._clock() - header.built_at < self._feed_ttl
        )
        listed = hit
        if not hit:
            header, entries, hit, listed = self._rebuild(
                user_id, wanted, header, limit + PAGE_SLACK
            )
        assert header is not None
        body = self._render(user_id, header.build_id, 0, entries, limit)
        if listed and header.inputs.model == current.model:
            cache.store_rendered(
                self._redis,
                user_id,
                RenderedPage(current.corpus, current.model, variant, limit, body),
                header.inputs.user,
                ttl=int(self._feed_ttl - (self._clock() - header.built_at)),
                version_keys=(subscriptions.VERSION_KEY % user_id, history.VERSION_KEY % user_id),
            )
        return body, hit

    def _next_page(self, user_id: str, limit: int, cursor: Cursor) -> bytes:
        entries = cache.read_page(
            self._redis, user_id, cursor.build_id, cursor.offset, limit + PAGE_SLACK
        )
        if entries is None:
            raise StaleCursor("this cursor's feed has expired; start again from the first page")
        return self._render(user_id, cursor.build_id, cursor.offset, entries, limit)

    def _rebuild(
        self, user_id: str, wanted: Inputs, previous: Header | None, count: int
    ) -> tuple[Header, list[Entry], bool, bool]:
        """The list to serve, whether it came from another request's build (a hit), and
        whether it is the user's current list (only then may its first page be cached)."""
        replacing = previous.build_id if previous else None
        deadline = time.monotonic() + BUILD_WAIT_SECONDS
        while True:
            token, current, entries = cache.acquire_build(self._redis, user_id, count)
            if token is not None:
                # Another request may have built and released between our read and our lock:
                # its list is either the one we want, or the one our build now replaces (the
                # list read before the lock must not be retired in place of it).
                if current is not None and cache.is_build_for(current, wanted, replacing):
                    cache.release_build(self._redis, user_id, token)
                    return current, entries, True, True
                previous = current
                break
            waited = cache.wait_for_build(self._redis, user_id, wanted, count, deadline, replacing)
            if waited is not None:
                return waited[0], waited[1], True, True
            if time.monotonic() >= deadline:
                log.warning(
                    "feed build for %s did not land in %ss; building",
                    user_id,
                    BUILD_WAIT_SECONDS,
                )
                break
            # The lock was released without a build for our versions: take it and build.
        try:
            header, entries, listed = self._build(
                user_id, wanted, previous, store=token is not None
            )
        finally:
            if token is not None:
                cache.release_build(self._redis, user_id, token)
        return header, entries[:count], False, listed

    def _build(
        self, user_id: str, wanted: Inputs, previous: Header | None, store: bool
    ) -> tuple[Header, list[Entry], bool]:
        """Rank a feed; answers it, and whether it became the user's current list."""
        started = time.perf_counter()
        # The model with the articles written since its fit: a new one ranks at once.
        loaded = self._keeper.model_at(wanted.model, wanted.corpus)
        ranker = self._variants.ranker(wanted.variant.partition(LEARNED_VERSION_MARK)[0])
        request, names = self._request(user_id, ranker, loaded.meta.snapshot_at)
        ranked = ranker.rank(loaded.model, request)
        titles = articles.titles(self._redis, (r.because for r in ranked if r.because))
        entries = [Entry.of(r.id, r.score, _reason(r, names, titles)) for r in ranked]
        header = Header(
            cache.new_build_id(),
            Inputs(wanted.corpus, loaded.meta.version, wanted.user, wanted.variant),
            request.now,
        )
        self.builds += 1
        # Only a build from the current model may become the list (a newer one is published),
        # and only with every article of its corpus version (none missing after a bulk write).
        if store and loaded.meta.version == wanted.model and loaded.corpus_version >= wanted.corpus:
            # The list outlives its freshness so that cursors into it keep working.
            current = cache.store(
                self._redis,
                user_id,
                header,
                entries,
                previous,
                ttl=max(self._feed_ttl, self._cursor_ttl),
                retired_ttl=self._cursor_ttl,
                version_keys=(subscriptions.VERSION_KEY % user_id, history.VERSION_KEY % user_id),
            )
        else:
            cache.keep_for_cursors(self._redis, user_id, header, entries, self._cursor_ttl)
            current = False
        self._observer.feed_built(time.perf_counter() - started)
        return header, entries, current

    def _request(
        self, user_id: str, ranker: Ranker, snapshot_at: float, explain: bool = False
    ) -> tuple[RankRequest, dict[str, str]]:
        """What a build ranks for this reader (one round trip, plus the popularity or learned
        model the ranker reads), and the category names its reasons use. The feed and its
        explanation share it, so the inspector sees exactly what the feed ranked."""
        pipe = self._redis.pipeline(transaction=False)
        subscriptions.queue_members(pipe, user_id)
        history.queue_read(pipe, user_id)
        articles.queue_deleted_since(pipe, snapshot_at - DELETE_MARGIN_SECONDS)
        categories.queue_names(pipe)
        raw_followed, raw_read, raw_hidden, raw_deleted, raw_names = pipe.execute()
        now = self._clock()
        read = tuple((article_id.decode(), when) for article_id, when in raw_read)
        # Documented rule: what the reader hid, clicked or read leaves their feed.
        exclude = {i.decode() for i in (*raw_hidden, *raw_deleted)} | {a for a, _ in read}
        popularity = self._popularity.recent(now) if uses_popularity(ranker) else {}
        learned = self._learned.current() if self._learned and uses_learned(ranker) else None
        request = RankRequest(
            followed=tuple(sorted(m.decode() for m in raw_followed)),
            now=now,
            size=self._feed_size,
            exclude=frozenset(exclude),
            history=read,
            popularity=popularity,
            learned=learned,
            explain=explain,
        )
        return request, {k.decode(): v.decode() for k, v in raw_names.items()}

    def explain(self, user_id: str, limit: int, ranker: Ranker | None = None) -> Explained:
        """The reader's first page ranked afresh, each item with the parts of its score: the
        feed inspector's view (admins). ``ranker``: another than the one the reader is served
        by. Nothing is cached, and no exposure or activity recorded: the reader saw nothing."""
        current, (raw_running,) = versions.read_with(self._redis, self._variants.running_key)
        variant = self._variants.assign(raw_running, user_id)
        experiment = variant.assignment
        if ranker is None:
            ranker = self._variants.ranker(variant.key)
        else:
            experiment = None
        loaded = self._keeper.model_at(current.model, current.corpus)
        request, names = self._request(user_id, ranker, loaded.meta.snapshot_at, explain=True)
        ranked = ranker.rank(loaded.model, request)
        titles = articles.titles(self._redis, (r.because for r in ranked if r.because))
        pipe = self._redis.pipeline(transaction=False)
        ids = [r.id for r in ranked]
        if ids:
            articles.queue_raw_cards(pipe, ids)
            history.queue_hidden_among(pipe, user_id, ids)
        cards, hidden = pipe.execute() if ids else ([], [])
        items: list[dict[str, Any]] = []
        for item, card, hid in zip(ranked, cards, hidden, strict=True):
            if len(items) == limit:
                break
            if card is None or hid is not None:  # as the page skips them (see _render)
                continue
            items.append(
                {
                    **json.loads(card),
                    "score": round(item.score, 6),
                    "reason": _reason(item, names, titles),
                    "explain": {
                        "total": item.score,
                        "parts": [{"name": n, "value": v} for n, v in item.parts],
                        "factors": [{"name": n, "value": v} for n, v in item.factors],
                    },
                }
            )
        return Explained(
            ranker=ranker.name,
            experiment=experiment.experiment if experiment else None,
            variant=experiment.variant if experiment else None,
            model_version=loaded.meta.version,
            items=items,
        )

    def reader(self, user_id: str, reads: int) -> dict[str, Any]:
        """What the inspector shows of a reader: their follows and last ``reads`` reads (or
        clicks), newest first, with titles where the article still exists."""
        pipe = self._redis.pipeline(transaction=False)
        subscriptions.queue_members(pipe, user_id)
        history.queue_read(pipe, user_id)
        raw_followed, raw_read, _ = pipe.execute()
        recent = [(a.decode(), when) for a, when in raw_read[:reads]]
        titles = articles.titles(self._redis, (a for a, _ in recent))
        return {
            "user_id": user_id,
            "categories": sorted(m.decode() for m in raw_followed),
            "reads": [{"id": a, "title": titles.get(a), "at": _iso(when)} for a, when in recent],
            "reads_total": len(raw_read),
        }

    def _render(
        self, user_id: str, build_id: str, offset: int, entries: list[Entry], limit: int
    ) -> bytes:
        """Splice each entry's score and reason onto its stored card: no JSON parsing.

        Articles deleted or hidden since the list was built are skipped.
        """
        ids = [e.id for e in entries]
        cards: list[bytes | None] = []
        hidden: list[float | None] = []
        if ids:  # an empty feed (nothing stored any more) reads nothing: MGET needs a key
            pipe = self._redis.pipeline(transaction=False)
            articles.queue_raw_cards(pipe, ids)
            history.queue_hidden_among(pipe, user_id, ids)
            cards, hidden = pipe.execute()
        items: list[bytes] = []
        consumed = 0
        for entry, card, hid in zip(entries, cards, hidden, strict=True):
            if len(items) == limit:
                break
            consumed += 1
            if card is not None and hid is None:
                items.append(card[:-1] + entry.tail)
        next_cursor = b"null"
        if consumed < len(entries):
            token = self._codec.encode(user_id, Cursor(build_id, offset + consumed))
            next_cursor = json.dumps(token).encode()
        return b'{"items":[' + b",".join(items) + b'],"next_cursor":' + next_cursor + b"}"


def _reason(ranked: Ranked, names: dict[str, str], titles: dict[str, str]) -> str:
    title = titles.get(ranked.because)
    if title is not None:
        short = title if len(title) <= REASON_TITLE_CHARS else title[: REASON_TITLE_CHARS - 1] + "…"
        return REASONS["read"].format(short)
    # A read since deleted still says what moved the item: the reading, in its category.
    kind = "history" if ranked.reason == "read" else ranked.reason
    return REASONS[kind].format(names.get(ranked.category, ranked.category))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
