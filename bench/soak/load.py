"""The soak's open-loop load: a fixed schedule of mixed requests sent by a pool of threads."""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from bench.soak.client import Client, Reply, status_key
from bench.soak.common import (
    CLIENT_THREADS,
    EVENT_TYPES,
    EVENT_WEIGHTS,
    FEED_SHARE,
    LATE_LIMIT_S,
    NEXT_PAGE_SHARE,
    PAGE_LIMIT,
    SLUGS,
    WRITE_QUARANTINE_S,
    WRITE_SHARE,
)
from bench.soak.users import Op, User, apply_op


class Sample(NamedTuple):
    kind: str
    status: str  # "200", "503 unavailable", "client RemoteDisconnected", ...
    scheduled: float  # seconds from the start of the load
    sent: float
    done: float
    user: str
    detail: str = ""  # server errors: the start of the body; feed pages: X-Feed-Cache


def is_server_error(status: str) -> bool:
    return status.startswith("5") or status.startswith("client ")


class Load:
    """Open-loop load: slot i is due at start + i / rate; a pool of threads sends the slots."""

    def __init__(
        self, port: int, users: Sequence[User], rate: float, seconds: float, seed: int
    ) -> None:
        self.port = port
        self.users = users
        self.rate = rate
        self.seconds = seconds
        self.seed = seed
        self.t0 = 0.0
        self.stop = threading.Event()
        self._slots = itertools.count()
        self._threads: list[threading.Thread] = []
        self.samples: list[list[Sample]] = [[] for _ in range(CLIENT_THREADS)]
        self.event_acks: list[list[tuple[float, int]]] = [[] for _ in range(CLIENT_THREADS)]
        self.events_ambiguous = [0] * CLIENT_THREADS
        self.events_rejected = [0] * CLIENT_THREADS
        self.write_skips = [0] * CLIENT_THREADS  # write slots sent as reads (users busy)
        self.bad_acks: list[list[str]] = [[] for _ in range(CLIENT_THREADS)]
        self.dropped = [0] * CLIENT_THREADS
        self.cache = [Counter[str]() for _ in range(CLIENT_THREADS)]
        self.crashes: list[str] = []  # exceptions in the load generator itself

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.t0 = time.monotonic() + 0.1
        for slot in range(CLIENT_THREADS):
            thread = threading.Thread(target=self._run, args=(slot,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self, slot: int) -> None:
        rng = random.Random(self.seed * 10_000 + slot)
        client = Client(self.port)
        try:
            while not self.stop.is_set():
                due = next(self._slots) / self.rate
                if due >= self.seconds:
                    return
                wait = due - self.now()
                if wait > 0 and self.stop.wait(wait):
                    return
                if self.now() > self.seconds + LATE_LIMIT_S:
                    self.dropped[slot] += 1
                    continue
                try:
                    self._one(slot, rng, client, due)
                except Exception:  # a bug here, or an answer it cannot read: report, go on
                    self.crashes.append(traceback.format_exc(limit=6))
                    client.close()
        finally:
            client.close()

    def _send(
        self,
        slot: int,
        client: Client,
        kind: str,
        due: float,
        method: str,
        path: str,
        user: User,
        body: Any = None,
    ) -> Reply | None:
        sent = self.now()
        try:
            reply: Reply | None = client.request(method, path, user.auth, body)
        except (OSError, http.client.HTTPException) as exc:
            reply = None
            status, detail = f"client {type(exc).__name__}", str(exc)[:200]
        else:
            assert reply is not None
            status = status_key(reply)
            if reply.status >= 500:
                detail = reply.body[:300].decode("utf-8", "replace")
            else:
                detail = reply.headers.get("X-Feed-Cache", "")
        self.samples[slot].append(Sample(kind, status, due, sent, self.now(), user.name, detail))
        return reply

    def _one(self, slot: int, rng: random.Random, client: Client, due: float) -> None:
        user = self.users[rng.randrange(len(self.users))]
        roll = rng.random()
        if roll >= FEED_SHARE + WRITE_SHARE:
            with user.mutex:
                seen = list(user.seen)
            if seen:
                self._events(slot, rng, client, due, user, seen)
                return
        elif roll >= FEED_SHARE:
            for candidate in [user, *rng.sample(self.users, min(4, len(self.users)))]:
                if candidate.quarantine_until > time.monotonic():
                    continue
                if candidate.write_lock.acquire(blocking=False):
                    try:
                        self._write(slot, rng, client, due, candidate)
                    finally:
                        candidate.write_lock.release()
                    return
            self.write_skips[slot] += 1
        self._feed(slot, rng, client, due, user)

    def _feed(self, slot: int, rng: random.Random, client: Client, due: float, user: User) -> None:
        with user.mutex:
            cursor = user.cursor
        path = f"/v1/users/{user.name}/feed?limit={PAGE_LIMIT}"
        kind = "feed first"
        if cursor is not None and rng.random() < NEXT_PAGE_SHARE:
            kind = "feed next"
            path += "&cursor=" + cursor
        reply = self._send(slot, client, kind, due, "GET", path, user)
        if reply is None:
            return
        if reply.status == 200:
            if kind == "feed first":
                self.cache[slot][reply.headers.get("X-Feed-Cache", "?")] += 1
            user.remember(json.loads(reply.body))
        elif reply.status == 400 and kind == "feed next":
            with user.mutex:
                if user.cursor == cursor:
                    user.cursor = None

    def _write(self, slot: int, rng: random.Random, client: Client, due: float, user: User) -> None:
        """Called with user.write_lock held: the only write of this user in flight."""
        followed = user.acked if user.acked is not None and not user.ambiguous else None
        pick = rng.random()
        op: Op
        if pick < 0.4 or (pick < 0.8 and followed is not None and len(followed) < 2):
            choices = [s for s in SLUGS if followed is None or s not in followed] or list(SLUGS)
            op = ("follow", (rng.choice(choices),))
        elif pick < 0.8:
            pool = sorted(followed) if followed else list(SLUGS)
            op = ("unfollow", (rng.choice(pool),))
        else:
            op = ("replace", tuple(sorted(rng.sample(SLUGS, rng.randint(2, 4)))))
        kind, slugs = op
        base = f"/v1/users/{user.name}/categories"
        if kind == "replace":
            reply = self._send(
                slot, client, kind, due, "PUT", base, user, {"categories": list(slugs)}
            )
        else:
            method = "PUT" if kind == "follow" else "DELETE"
            reply = self._send(slot, client, kind, due, method, f"{base}/{slugs[0]}", user)
        if reply is None:  # it may still be running on the server: keep off this user
            user.ambiguous.append(op)
            user.quarantine_until = time.monotonic() + WRITE_QUARANTINE_S
            return
        if reply.status >= 500:
            user.ambiguous.append(op)
            return
        if reply.status != 200:
            return  # refused: nothing changed
        state = frozenset(json.loads(reply.body)["categories"])
        expected = apply_op(user.acked or frozenset(), op) if not user.ambiguous else None
        if (expected is not None and state != expected) or state != apply_op(state, op):
            self.bad_acks[slot].append(
                f"{user.name}: {kind} {list(slugs)} acknowledged {sorted(state)}"
                + (f", expected {sorted(expected)}" if expected is not None else "")
            )
        user.acked, user.acked_at, user.acked_op = state, self.now(), op
        user.acks += 1
        user.ambiguous = []

    def _events(
        self,
        slot: int,
        rng: random.Random,
        client: Client,
        due: float,
        user: User,
        seen: list[tuple[str, str, int]],
    ) -> None:
        events = []
        for _ in range(rng.randint(10, 50)):
            article, feed_id, position = rng.choice(seen)
            kind = rng.choices(EVENT_TYPES, EVENT_WEIGHTS)[0]
            event: dict[str, Any] = {
                "type": kind,
                "user_id": user.name,
                "article_id": article,
                "feed_id": feed_id,
                "position": position,
            }
            if kind == "read":
                event["dwell_ms"] = rng.randint(2_000, 120_000)
            events.append(event)
        reply = self._send(
            slot, client, "events", due, "POST", "/v1/events", user, {"events": events}
        )
        if reply is not None and reply.status == 202:
            result = json.loads(reply.body)
            self.event_acks[slot].append((self.now(), int(result["accepted"])))
            self.events_rejected[slot] += len(result.get("rejected", []))
        elif reply is None or reply.status >= 500:
            self.events_ambiguous[slot] += len(events)

    # results

    def all_samples(self) -> list[Sample]:
        return sorted((s for chunk in self.samples for s in chunk), key=lambda s: s.scheduled)

    def accepted_events(self) -> int:
        return sum(n for chunk in self.event_acks for _, n in chunk)
