"""Articles published during the load, each acknowledged one followed into a reader's feed."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.soak.client import Client
from bench.soak.common import (
    LIVE_BATCH,
    LIVE_EVERY_S,
    LIVE_TARGET_S,
    SLUGS,
    WATCH_EVERY_S,
    WATCH_LIMIT,
    WATCH_PAGES,
    log,
)
from devtools.demo import generate_articles


@dataclass
class Live:
    id: str
    slug: str
    acked_at: float  # seconds from the start of the load
    seen_at: float | None = None  # first read that listed it in its category's follower's feed
    stored: bool | None = None  # never seen: whether GET /v1/articles/<id> still finds it


@dataclass
class Post:
    sent: float
    done: float
    status: str  # "200", "503", "client TimeoutError", ...
    articles: int


class LiveArticles:
    """A batch of LIVE_BATCH articles every LIVE_EVERY_S seconds, one category at a time, and
    a watcher per category (a reader following only it) reading its feed for them."""

    def __init__(
        self,
        port: int,
        admin: str,
        watchers: Mapping[str, tuple[str, str]],  # slug -> (user id, authorization)
        clock: Callable[[], float],
        seconds: float,
    ) -> None:
        self._port = port
        self._admin = admin
        self._watchers = watchers
        self._clock = clock
        self._seconds = seconds
        self._lock = threading.Lock()
        self._batches = 0
        self._stop_publishing = threading.Event()
        self._stop_watching = threading.Event()
        self._publisher = threading.Thread(target=self._publish_loop, daemon=True)
        self._readers = [
            threading.Thread(target=self._watch_loop, args=(slug,), daemon=True)
            for slug in watchers
        ]
        self.acked: dict[str, Live] = {}
        self.posts: list[Post] = []
        self.refused: list[str] = []  # articles a 2xx reply rejected, or whole 4xx batches
        self.crashes: list[str] = []

    def start(self) -> None:
        for thread in [self._publisher, *self._readers]:
            thread.start()

    def publish(self) -> int:
        """POST one batch now; answers how many articles it acknowledged."""
        with self._lock:
            batch = self._batches
            self._batches += 1
        slug = SLUGS[batch % len(SLUGS)]
        articles = generate_articles(
            LIVE_BATCH, seed=batch, categories=[slug], max_age_days=0, id_prefix=f"live{batch}"
        )
        for article in articles:  # a URL of its own: never a duplicate of another story's
            article["url"] = f"https://live.example.com/{article['id']}"
        client = Client(self._port)
        sent = self._clock()
        try:
            reply = client.request("POST", "/v1/articles", self._admin, {"articles": articles})
        except (OSError, http.client.HTTPException) as exc:
            self.posts.append(Post(sent, self._clock(), f"client {type(exc).__name__}", 0))
            return 0
        finally:
            client.close()
        done = self._clock()
        if reply.status != 200:
            self.posts.append(Post(sent, done, str(reply.status), 0))
            if reply.status < 500:
                self.refused.append(f"batch {batch}: {reply.status} {reply.body[:200]!r}")
            return 0
        result = json.loads(reply.body)
        ids = [*result.get("created", []), *result.get("updated", [])]
        self.refused += [f"{r.get('id')}: {r.get('reason')}" for r in result.get("rejected", [])]
        with self._lock:
            for article_id in ids:
                self.acked[article_id] = Live(article_id, slug, done)
        self.posts.append(Post(sent, done, "200", len(ids)))
        return len(ids)

    def stop_publishing(self) -> None:
        self._stop_publishing.set()
        self._publisher.join(30)

    def finish(self) -> None:
        """Keep watching until every acknowledged article was seen, or LIVE_TARGET_S (and a
        little) after the last acknowledgement; then look up the ones never seen."""
        self.stop_publishing()
        deadline = max(self.last_ack() or 0.0, self._clock()) + LIVE_TARGET_S + 5
        while self.pending() and self._clock() < deadline:
            time.sleep(0.5)
        self._stop_watching.set()
        for thread in self._readers:
            thread.join(30)
        client = Client(self._port)
        try:
            for article in self.pending():
                article.stored = self._stored(client, article.id)
        finally:
            client.close()
        unseen = len(self.pending())
        log(f"published articles: {len(self.acked)} acknowledged, {unseen} never in a feed")

    def last_ack(self) -> float | None:
        with self._lock:
            return max((a.acked_at for a in self.acked.values()), default=None)

    def pending(self) -> list[Live]:
        with self._lock:
            return [a for a in self.acked.values() if a.seen_at is None]

    def _publish_loop(self) -> None:
        due = 0.0
        while due < self._seconds:
            if self._stop_publishing.wait(max(0.0, due - self._clock())):
                return
            try:
                self.publish()
            except Exception as exc:  # a bug here: report it, keep publishing
                self.crashes.append(repr(exc))
            # A POST that hung through an outage does not make the next ones burst.
            due = max(due + LIVE_EVERY_S, self._clock())

    def _watch_loop(self, slug: str) -> None:
        """One category's follower, reading while its articles are pending: one thread per
        category, so that a slow server does not make one category wait for another."""
        client = Client(self._port)
        try:
            while not self._stop_watching.wait(WATCH_EVERY_S):
                if not any(a.slug == slug for a in self.pending()):
                    continue
                try:
                    self._watch(client, slug)
                except (OSError, http.client.HTTPException, ValueError):
                    client.close()  # an outage: try again next round
        finally:
            client.close()

    def _watch(self, client: Client, slug: str) -> None:
        """Read the slug's follower's feed, page by page, marking the articles it lists."""
        user, auth = self._watchers[slug]
        cursor: str | None = None
        for _ in range(WATCH_PAGES):
            path = f"/v1/users/{user}/feed?limit={WATCH_LIMIT}"
            if cursor:
                path += "&cursor=" + cursor
            reply = client.request("GET", path, auth)
            if reply.status != 200:
                return
            page: dict[str, Any] = json.loads(reply.body)
            at = self._clock()  # the answer's arrival: the article was listed by then
            listed = {str(item["id"]) for item in page.get("items", [])}
            with self._lock:
                left = [a for a in self.acked.values() if a.slug == slug and a.seen_at is None]
                for article in left:
                    if article.id in listed:
                        article.seen_at = at
            cursor = page.get("next_cursor")
            if not cursor or all(a.seen_at is not None for a in left):
                return

    @staticmethod
    def _stored(client: Client, article_id: str) -> bool | None:
        try:
            reply = client.request("GET", f"/v1/articles/{article_id}")
        except (OSError, http.client.HTTPException):
            return None
        return True if reply.status == 200 else False if reply.status == 404 else None
