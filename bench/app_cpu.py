"""Bench section 1, in process: the CPU one cached page costs the app itself, without gunicorn.

The same WSGI callables gunicorn calls, on the same Redis and pages as the HTTP runs, called
from one thread: the floor's Flask view, the feed through Flask (routing, hooks, webargs,
the view: the path every request took before the hot path), and the feed through the hot
path (api/hot_path.py). Thread CPU time over requests, so the figures leave out the HTTP
server and the load generator and show what the app's own code costs per request; the HTTP
runs' worker CPU minus these is gunicorn's share.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.test import EnvironBuilder

from api.hot_path import FeedHotPath
from bench.common import PAGE_LIMIT, PER_IP_LIMIT, log, median
from bench.context import Bench
from config import ENV_PREFIX

SECTION = "1. cached feed vs floor (HTTP)"
REQUESTS = 3000
ROUNDS = 3

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def app_cpu(bench: Bench, users: Sequence[str], auth: dict[str, str]) -> None:
    """In-process CPU per cached request of the floor, the Flask path and the hot path."""
    url = bench.server.url
    os.environ.setdefault(ENV_PREFIX + "REDIS_URL", url)  # bench/floor.py reads it at import
    floor: Any = importlib.import_module("bench.floor")
    feed_environs = [_environ(f"/v1/users/{u}/feed?limit={PAGE_LIMIT}", auth[u]) for u in users]
    floor_environs = [_environ("/floor", auth[u]) for u in users]
    with bench.app(rate_limit_per_ip=PER_IP_LIMIT) as app:
        hot = app.wsgi_app
        if not isinstance(hot, FeedHotPath):
            raise RuntimeError("the app was built without its hot path")
        paths: dict[str, tuple[Wsgi, list[dict[str, Any]]]] = {
            "floor view": (floor.app.wsgi_app, floor_environs),
            "feed through Flask": (hot.flask_app, feed_environs),
            "feed through the hot path": (hot, feed_environs),
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for wsgi, environs in paths.values():
            _per_request_us(wsgi, environs, REQUESTS // 10)  # warm: connections, caches
        for _ in range(ROUNDS):
            for name, (wsgi, environs) in paths.items():
                samples[name].append(_per_request_us(wsgi, environs, REQUESTS))
    floor_us = median(samples["floor view"])
    for name, found in samples.items():
        us = median(found)
        log(f"in process, {name}: {us:.0f} us/request")
        bench.report.add(
            SECTION,
            f"in process: {name}, CPU per request",
            us,
            "us",
            note=f"{us / floor_us:.2f}x the floor view; rounds: "
            + ", ".join(f"{s:.0f}" for s in found),
        )
    bench.report.details["in_process_cpu_us_per_request"] = samples


def _environ(path: str, authorization: str) -> dict[str, Any]:
    return EnvironBuilder(
        path=path,
        headers=[("Authorization", authorization)],
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ).get_environ()


def _per_request_us(wsgi: Wsgi, environs: list[dict[str, Any]], count: int) -> float:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> None:
        statuses.append(status)

    began = time.thread_time()
    for n in range(count):
        for _ in wsgi(dict(environs[n % len(environs)]), start_response):
            pass
    spent = time.thread_time() - began
    if any(not s.startswith("200") for s in statuses):
        raise RuntimeError(f"in-process requests failed: {sorted(set(statuses))}")
    return spent * 1e6 / count
