"""Bounds how long a request waits for Redis: one wait budget per request, and no waiting on
a node seen frozen.

A frozen Redis (SIGSTOP, or a network partition) accepts connections and answers nothing, so
every wait runs into the socket timeout. Per wait that is bounded, but a request waits many
times (rate limit, versions, cache, exposure write, a retry each, a reconnect handshake), and
requests queued behind stuck ones waited their turn first. Two rules bound the sum:

- **One budget per request.** ``start_request_budget(seconds)`` (the web layer opens it with the
  configured socket timeout) gives the request that many seconds of Redis waiting: every
  connect, send, reply and cluster slot-map refresh draws from it, and gets what is left as its
  socket timeout. Once it is spent, Redis calls fail at once, retries included. Waiting, not
  wall time, is counted: a healthy request that spends a second ranking or validating a large
  batch keeps its budget.
- **No waiting on a node seen frozen** (feed/storage/nodehealth.py): once one reply timed
  out, the other threads waiting on the node are woken, and requests' commands to it fail at
  once until a short probe (or any background command) sees it answer.

Background work (no budget: the model keeper, the worker, the CLI) is never refused and waits
as redis-py always did; its timeouts and replies still tell the others about the node.

Both act inside redis-py's connection (``bounded_connection_class``), so every path that talks
to Redis (commands, pipelines, cluster routing, ``mget_across_slots``, health-check PINGs, the
handshake of a new connection) is covered without changing a call site. On the happy path a
wait costs a few attribute reads, a clock read and a set insert; the socket timeout is only
changed when it differs from what the wait may take by more than ``TIMEOUT_SLACK_SECONDS``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
from redis.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.utils import SENTINEL

from feed.storage.nodehealth import PROBE_TIMEOUT_SECONDS, HealthBook, NodeHealth

# A socket timeout within this much of what a wait may take is left alone: no system call per
# command on the happy path, where the budget is untouched; a wait may overrun by this much.
TIMEOUT_SLACK_SECONDS = 0.05
# How long a request waits for another thread's refresh of a cluster's slot map: one that
# answers takes milliseconds.
REFRESH_PATIENCE_SECONDS = 0.1


class RedisNotWaited(redis.RedisError):
    """A Redis call refused without waiting: the request's budget is spent, or the node was
    seen frozen. Unavailable (503), like the timeout it stands for; deliberately not a
    ``TimeoutError``, which redis-py answers with a retry and, on a cluster, a refresh of its
    slot map that asks every node in turn, the very waits this refusal saves."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds


_budget: ContextVar[_Budget | None] = ContextVar("redis_wait_budget", default=None)


def start_request_budget(seconds: float) -> None:
    """From now on in this context, Redis waits draw from ``seconds`` (a web request's start)."""
    _budget.set(_Budget(seconds))


def end_request_budget() -> None:
    _budget.set(None)


@contextmanager
def request_budget(seconds: float) -> Iterator[None]:
    token = _budget.set(_Budget(seconds))
    try:
        yield
    finally:
        _budget.reset(token)


class BudgetedLock:
    """The lock redis-py's cluster client holds while it asks the nodes for the slot map after
    an error, which takes as long as they take to answer (a background thread has no budget).
    A request waits for it at most ``REFRESH_PATIENCE_SECONDS``, from its budget, then gives up:
    a refresh that takes longer is asking frozen nodes. Without a budget, a plain lock."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __enter__(self) -> BudgetedLock:
        budget = _budget.get()
        if budget is None:
            self._inner.acquire()
            return self
        started = time.monotonic()
        acquired = self._inner.acquire(timeout=max(min(budget.left, REFRESH_PATIENCE_SECONDS), 0))
        budget.left -= time.monotonic() - started
        if not acquired:
            raise RedisNotWaited("another thread is asking the cluster for its slot map")
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.release()


class _Bounded(AbstractConnection):
    """Mixed into a redis-py connection class: each wait honours the budget and the health of
    the node. ``_book`` is set per client by ``bounded_connection_class``."""

    _book: HealthBook
    _health: NodeHealth | None = None
    _probing = False  # this connection probes an unhealthy node until it hears back
    _woken = False  # another thread saw the node freeze while this one waited for a reply

    def _node(self) -> NodeHealth:
        health = self._health
        if health is None:
            health = self._health = self._book.node(self._host_error())
        return health

    def _admit(self, health: NodeHealth, *, reply_pending: bool) -> _Budget | None:
        """Refuse at once when the node is unhealthy (unless probing) or the budget is spent;
        else give the coming wait what it may take as its socket timeout. The budget, if any."""
        wanted = self._socket_timeout
        budget = _budget.get()
        if budget is not None:  # a request; background work waits as it always did
            if not health.ok and not self._probing:
                if not self._book.claim_probe(health):
                    self._refuse(f"redis {health.address} is not answering", reply_pending)
                self._probing = True
            if budget.left <= 0:
                self._refuse("the request's time for redis is spent", reply_pending)
            left = min(budget.left, PROBE_TIMEOUT_SECONDS) if self._probing else budget.left
            if wanted is None or left < wanted:
                wanted = left
        sock = self._sock
        if sock is not None:
            current = sock.gettimeout()
            if current != wanted and (
                current is None or wanted is None or abs(current - wanted) > TIMEOUT_SLACK_SECONDS
            ):
                sock.settimeout(wanted)
        return budget

    def _refuse(self, why: str, reply_pending: bool) -> None:
        if reply_pending:  # a reply left unread would answer the next command on this socket
            self.disconnect()
        raise RedisNotWaited(why)

    def _heard_back(self, health: NodeHealth) -> None:
        self._probing = False
        if not health.ok:
            self._book.answered(health)

    def _timed_out(self, health: NodeHealth) -> None:
        self._probing = False
        self._book.timed_out(health)

    def wake(self) -> None:
        """Give up the reply this connection waits for (called by another thread)."""
        self._woken = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
            except OSError:
                pass

    def _connect(self) -> Any:
        health = self._node()
        budget = self._admit(health, reply_pending=False)
        configured: float | None = self.socket_connect_timeout  # type: ignore[has-type]
        allowed = configured
        if budget is not None:
            left = min(budget.left, PROBE_TIMEOUT_SECONDS) if self._probing else budget.left
            if allowed is None or left < allowed:
                allowed = left
        self.socket_connect_timeout = allowed
        started = time.monotonic()
        try:
            return super()._connect()
        except TimeoutError:  # the builtin (socket.timeout): a partition drops the SYN
            self._timed_out(health)
            raise
        finally:
            self.socket_connect_timeout = configured
            if budget is not None:
                budget.left -= time.monotonic() - started

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # Connect and health-check first, as redis-py would: their own waits count themselves.
        if not self._sock:
            self.connect_check_health(check_health=False)
        if check_health:
            self.check_health()
        health = self._health or self._node()
        budget = self._admit(health, reply_pending=False)
        if budget is None:
            try:
                return super().send_packed_command(command, check_health=False)
            except redis.TimeoutError:
                self._timed_out(health)
                raise
        started = time.monotonic()
        try:
            super().send_packed_command(command, check_health=False)
        except redis.TimeoutError:
            self._timed_out(health)
            raise
        finally:
            budget.left -= time.monotonic() - started

    def read_response(
        self,
        disable_decoding: bool = False,
        *,
        timeout: float | object = SENTINEL,
        disconnect_on_error: bool = True,
        push_request: bool = False,
    ) -> Any:
        if timeout is not SENTINEL:  # a poll with its own timeout (pub/sub): not a request's wait
            return super().read_response(
                disable_decoding,
                timeout=timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        health = self._health or self._node()
        budget = self._admit(health, reply_pending=True)
        waiting = health.waiting
        self._woken = False
        waiting.add(self)
        started = time.monotonic() if budget is not None else 0.0
        try:
            response = super().read_response(
                disable_decoding,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        except redis.ResponseError:
            self._heard_back(health)
            raise
        except redis.TimeoutError:
            self._timed_out(health)
            raise
        except redis.ConnectionError as exc:
            if self._woken and budget is not None:  # not broken: the node was seen frozen
                raise RedisNotWaited(f"redis {health.address} is not answering") from exc
            raise
        finally:
            waiting.discard(self)
            if budget is not None:
                budget.left -= time.monotonic() - started
        if self._probing or not health.ok:
            self._heard_back(health)
        return response

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._probing = False
        super().disconnect(*args, **kwargs)


def bounded_connection_class(url: str) -> type[AbstractConnection]:
    """A connection class for a redis://, rediss:// or unix:// URL whose connections bound
    their waits, sharing one record of node health: one per client (a cluster's nodes are
    siblings in it)."""
    if url.startswith("rediss://"):
        base: type[AbstractConnection] = SSLConnection
    elif url.startswith("unix://"):
        base = UnixDomainSocketConnection
    else:
        base = Connection
    return type(f"Bounded{base.__name__}", (_Bounded, base), {"_book": HealthBook()})
