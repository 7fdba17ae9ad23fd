"""Which Redis nodes a client saw frozen, so that nobody else waits on them.

A node whose reply timed out is *frozen*: the replies other threads are waiting for from it
are given up at once (their sockets are shut, which wakes them), and requests' commands to it
fail at once but for one *probe* per ``PROBE_INTERVAL_SECONDS``, which waits at most
``PROBE_TIMEOUT_SECONDS`` (a Redis that answers again does within milliseconds): a request
queued behind the first timeouts never waits a full timeout more. Background threads (no
request budget) are never refused and wait as before; any reply, theirs included, makes the
node healthy again.

When a node of a cluster freezes, its healthy siblings become *suspect*: a partition usually
takes them all. The next command to a suspect node probes it at once while the others fail;
an answer clears it, a timeout freezes it. A frozen node that answers again makes the other
frozen ones suspect: they may be back too.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)

# How often requests probe a frozen node: until something sees it answer, they fail at once,
# so this bounds how long a process keeps answering 503 once Redis is back.
PROBE_INTERVAL_SECONDS = 0.5
# How long a request's probe waits: a Redis that answers does within milliseconds.
PROBE_TIMEOUT_SECONDS = 0.1


class Waiter(Protocol):
    def wake(self) -> None:
        """Stop waiting for the node's reply, now (another thread's call)."""


class NodeHealth:
    """One node (``host:port``) as this client last saw it. ``ok`` is read without a lock on
    every command (a plain attribute); only the transitions take the book's lock."""

    __slots__ = ("address", "ok", "suspect", "next_probe", "waiting")

    def __init__(self, address: str) -> None:
        self.address = address
        self.ok = True
        self.suspect = False
        self.next_probe = 0.0
        # Connections blocked on a reply from the node. Added and removed without a lock:
        # set.add and set.discard are atomic under the GIL.
        self.waiting: set[Waiter] = set()


class HealthBook:
    """What one client saw of its nodes (a single Redis has one)."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeHealth] = {}
        self._lock = threading.Lock()

    def node(self, address: str) -> NodeHealth:
        with self._lock:
            found = self._nodes.get(address)
            if found is None:
                found = self._nodes[address] = NodeHealth(address)
                # First met while a sibling is not answering: it may be frozen as well.
                if any(not other.ok for other in self._nodes.values()):
                    found.ok, found.suspect = False, True
            return found

    def timed_out(self, node: NodeHealth) -> None:
        with self._lock:
            was_ok = node.ok
            node.ok = node.suspect = False
            node.next_probe = time.monotonic() + PROBE_INTERVAL_SECONDS
            if not was_ok:
                return
            for other in self._nodes.values():
                if other.ok:
                    other.ok, other.suspect, other.next_probe = False, True, 0.0
            waiting = list(node.waiting)
        log.warning("redis %s is not answering: its commands fail at once", node.address)
        for waiter in waiting:  # they would each time out too, some later than this one
            waiter.wake()

    def answered(self, node: NodeHealth) -> None:
        with self._lock:
            was_frozen = not node.ok and not node.suspect
            node.ok, node.suspect = True, False
            if not was_frozen:
                return
            for other in self._nodes.values():
                if not other.ok and not other.suspect:
                    other.suspect, other.next_probe = True, 0.0
        log.warning("redis %s answers again", node.address)

    def claim_probe(self, node: NodeHealth) -> bool:
        """Whether the caller may wait on the unhealthy node now: one probe at a time (a probe
        that never hears back is replaced after ``PROBE_TIMEOUT_SECONDS``), a frozen node's at
        most once per interval."""
        now = time.monotonic()
        with self._lock:
            if node.ok:
                return True
            if now < node.next_probe:
                return False
            node.next_probe = now + PROBE_TIMEOUT_SECONDS
            return True
