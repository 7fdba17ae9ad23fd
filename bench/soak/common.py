"""The soak's shape (service, load generator, outages, traffic mix) and its log line."""

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
# When each phase starts, as a share of the load's length: the restart, the worker kill and
# the freeze each get a third of the run to settle before the next one.
RESTART_AT = 1 / 3
WORKER_KILL_AT = 1 / 2
FREEZE_AT = 2 / 3
FREEZE_SECONDS = 8.0  # SIGSTOP to SIGCONT: long enough for every Redis wait to time out
# The bound on a frozen Redis: a 503 within the socket timeout and this much more.
FREEZE_SLACK_S = 0.5
FIT_WAIT_S = 30.0  # the worker kill waits this long for a fit to start, then kills anyway
WORKER_POLL_S = 0.5  # how often the worker process is checked for an unplanned death

# Articles published during the load, and how they are followed into feeds.
LIVE_EVERY_S = 3.0
LIVE_BATCH = 4
LIVE_TARGET_S = 30.0  # acknowledged to listed in a follower's feed (and in the model)
WATCH_EVERY_S = 1.0
WATCH_LIMIT = 100  # page size of the watchers' reads
WATCH_PAGES = 3  # enough to read a one-category feed to its end (feed_size 300)
READY_SAMPLE_S = 0.5  # /readyz, for the model's lag behind the corpus
WRITE_QUARANTINE_S = 30.0  # after a write whose request may still be in flight
CHECK_BUDGET_S = 120.0  # for reading back every user's follows (after the restart, at the end)
CHECK_THREADS = 8  # users whose follows are read back at once after an outage

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
