"""Simulated readers: each one's follows as last acknowledged, and what they were shown."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from bench.soak.common import SEEN_KEPT

Op = tuple[str, tuple[str, ...]]  # ("follow" | "unfollow" | "replace", slugs)


def apply_op(state: frozenset[str], op: Op) -> frozenset[str]:
    kind, slugs = op
    if kind == "follow":
        return state | set(slugs)
    if kind == "unfollow":
        return state - set(slugs)
    return frozenset(slugs)


@dataclass
class User:
    name: str
    auth: str
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    mutex: threading.Lock = field(default_factory=threading.Lock)  # seen, cursor
    acked: frozenset[str] | None = None  # categories of the last acknowledged write
    acked_at: float = 0.0
    acked_op: Op | None = None
    acks: int = 0
    ambiguous: list[Op] = field(default_factory=list)  # unknown outcome, since the last ack
    quarantine_until: float = 0.0
    cursor: str | None = None
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (article, feed_id, pos)
    found: frozenset[str] | None = None  # what the last check read

    def candidates(self) -> set[frozenset[str]]:
        """States the store may hold: the last ack with any of the ambiguous writes applied."""
        found = {self.acked if self.acked is not None else frozenset()}
        for op in self.ambiguous:
            found |= {apply_op(s, op) for s in found}
        return found

    def remember(self, page: dict[str, Any]) -> None:
        feed_id = str(page.get("feed_id") or "soak")[:64]
        items = [(str(item["id"]), feed_id, n) for n, item in enumerate(page.get("items", []))]
        with self.mutex:
            self.cursor = page.get("next_cursor")
            self.seen = (self.seen + items)[-SEEN_KEPT:]
