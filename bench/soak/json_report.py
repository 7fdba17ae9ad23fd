"""The soak report as JSON (``var/soak.json``): the text report's figures and their detail."""

from __future__ import annotations

import os
import platform
from typing import Any

from bench.common import percentile
from bench.soak.common import ARTICLES, CLIENT_THREADS, PER_IP_LIMIT, THREADS, WORKERS
from bench.soak.summary import Summary, timeline


def as_json(s: Summary) -> dict[str, Any]:
    options, load, outage, soak = s.soak.options, s.soak.load, s.soak.outage, s.soak
    freeze = soak.freeze
    return {
        "started": s.started,
        "options": {
            "minutes": options.minutes,
            "rate": options.rate,
            "users": options.users,
            "kill": options.kill,
            "seed": options.seed,
            "warmup_seconds": options.warmup,
        },
        "setup": {
            "workers": WORKERS,
            "threads": THREADS,
            "articles": ARTICLES,
            "client_threads": CLIENT_THREADS,
            "rate_limit_per_ip": PER_IP_LIMIT,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load": _load(s),
        "kinds": s.kind_json,
        "errors": {"outside_outages": dict(s.errors_out), "inside_outages": dict(s.errors_in)},
        "server_errors_outside_outages": [x._asdict() for x in s.server_out[:100]],
        "other_errors_outside_outages": [x._asdict() for x in s.other_errors()][:100],
        "slowest_outside_outages": [x._asdict() for x in s.slowest(50)],
        "outage": {
            "signal": outage.signal,
            "stopped": outage.stopped,
            "redis_started": outage.started,
            "ready": outage.ready,
            "window_seconds": s.window.end - s.window.start,
            "stream_before": outage.stream_before,
            "stream_after": outage.stream_after,
            "follows_after_restart": outage.follows,
        },
        "freeze": {
            "stopped": freeze.stopped,
            "resumed": freeze.started,
            "ready": freeze.ready,
            "window_seconds": s.windows[-1].end - s.windows[-1].start if freeze.happened else None,
            "stream_before": freeze.stream_before,
            "stream_after": freeze.stream_after,
            "follows_after_freeze": freeze.follows,
        },
        "ready_samples": [x._asdict() for x in soak.ready.samples],
        "checks": s.checks,
        "bad_acks": s.bad_acks[:100],
        "load_generator_errors": load.crashes[:20],
        "memory": {
            "start_kb": soak.memory_start,
            "end_kb": soak.memory_end,
            "timeline": soak.memory.timeline,
        },
        "targets": [t.__dict__ | {"status": "PASS" if t.ok else "MISS"} for t in s.targets],
        "elapsed_seconds": s.elapsed,
    }


def _load(s: Summary) -> dict[str, Any]:
    """The offered load against what was sent, and when."""
    load = s.soak.load
    sent = len(s.samples)
    return {
        "sent": sent,
        "achieved_rps": sent / s.soak.options.seconds,
        "late": s.late,
        "max_lateness_ms": max(s.lateness, default=0) * 1000,
        "dropped": sum(load.dropped),
        "p99_from_slot_ms": percentile(s.from_schedule, 99) * 1000 if s.from_schedule else None,
        "write_skips": sum(load.write_skips),
        "first_page_cache": dict(s.cache),
        "per_second": timeline(s.samples, 1.0, s.end),
    }
