"""The soak's shape (service, load generator, outage, traffic mix) and its log line."""

from __future__ import annotations

import sys
import time

from bench.common import REPO
from devtools.demo import DEMO_CATEGORIES

DEFAULT_OUTPUT = REPO / "var" / "soak.json"

WORKERS = 2
THREADS = 4
ARTICLES = 2000
INGEST_BATCH = 1000
PAGE_LIMIT = 20

# The load generator's pool: the schedule sets the rate as long as rate x latency stays
# below it (200 req/s at 2 s per request); slots sent late are counted in the report.
CLIENT_THREADS = 400
CLIENT_TIMEOUT_S = 10.0
# gunicorn closes keep-alive connections idle for `keepalive` (5 s) seconds; reusing one
# that old races the close, so a connection idle this long is replaced before a request.
IDLE_RECONNECT_S = 4.0
LATE_LIMIT_S = 30.0  # slots not sent this long after the end of the run are dropped
LATE_MARK_S = 0.1  # a request sent this late after its slot counts as "late"

OUTAGE_SECONDS = 5.0
RECOVERY_TIMEOUT_S = 60.0
WRITE_QUARANTINE_S = 30.0  # after a write whose request may still be in flight
CHECK_BUDGET_S = 120.0  # for reading back every user's follows (after the restart, at the end)

PER_IP_LIMIT = "10000000/minute"
WATCHDOG_SLACK_S = 600.0  # the whole run may take this much longer than the load
MEMORY_GROWTH_TARGET = 0.10
MEMORY_SAMPLE_S = 5.0

FEED_SHARE = 0.70
WRITE_SHARE = 0.15  # the rest are event batches
NEXT_PAGE_SHARE = 0.25  # of feed reads, when the user has a cursor
SEEN_KEPT = 100  # articles remembered per user for events
EVENT_TYPES = ("impression", "click", "read", "hide")
EVENT_WEIGHTS = (75, 12, 10, 3)

KINDS = ("feed first", "feed next", "follow", "unfollow", "replace", "events")
SLUGS = tuple(sorted(DEMO_CATEGORIES))


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
