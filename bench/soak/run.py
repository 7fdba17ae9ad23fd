"""Soak the service with mixed traffic, a Redis restart, a worker kill and a Redis freeze.

``python -m bench.soak``. Everything runs against processes this script starts and stops
itself: a private redis-server (AOF with ``appendfsync always``, so every acknowledged write
is on disk) in a temporary directory, gunicorn (2 workers x 4 threads, the service's own
gunicorn config; the per-IP rate limit raised, since every simulated reader shares this
script's IP) on a free port, and one ``newsfeed worker``. After a demo corpus of 2,000
articles is ingested through the API and a model covers it, an open-loop load runs for
``--minutes`` at ``--rate`` requests per second: requests are scheduled on a fixed timeline
and sent by a pool of threads with keep-alive connections, so a slow server does not lower
the offered rate. The mix:

- ~70% feed reads: first pages, and next pages through the last ``next_cursor``;
- ~15% subscription writes: follow / unfollow one category, or replace the followed set;
  at most one write per user is in flight, so "the last acknowledged state" is well defined;
- ~15% event batches of 10-50 impressions / clicks / reads / hides about articles the user
  was shown.

Meanwhile a batch of articles is published every few seconds (POST /v1/articles, one
category at a time), and a reader following only that category reads its feed until each
acknowledged article is listed; /readyz is sampled every 0.5 s for the model's lag.

At a third of the run Redis is stopped (SIGTERM, or SIGKILL with ``--kill``) and started
again ~5 s later; at half, the worker is killed with SIGKILL while a fit holds the reindex
lock and a new one started; at two thirds Redis is frozen (SIGSTOP) for 8 s, then continued.
The same worker runs through both outages: an unplanned death is reported. After each outage
(the window runs to the first ``/readyz`` 200) every user's follows are checked against their
last acknowledged write, and the events stream against its length before it; at the end
again for follows, the stream length against the events acknowledged over the whole run, and
every acknowledged article is looked for in a follower's feed (within 30 s of Redis coming
back is the target) and in the model.

The report (requests, errors by status inside and outside the outages, p50/p99 per kind,
the time to a 503 while frozen, the worker, the model's lag, the articles' time to feeds,
worker memory after the warm-up and at the end) is printed and written as JSON to
``var/soak.json``; the gunicorn, redis and worker logs are copied next to it. A target that is
missed reads MISS in the report; the exit status is non-zero only when the script itself
fails (an exception in the load generator or the article publisher included). Ctrl-C,
SIGTERM and a watchdog (the run's length plus 10 minutes) stop everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from bench.common import HOST, exit_on_sigterm, free_port
from bench.servers import Gunicorn
from bench.soak.common import (
    DEFAULT_OUTPUT,
    PER_IP_LIMIT,
    THREADS,
    WATCHDOG_SLACK_S,
    WORKERS,
    log,
)
from bench.soak.phases import Options, Soak
from bench.soak.report import build_report
from bench.soak.workers import Workers
from config import ENV_PREFIX
from devtools.redis_server import RedisServer


def run(options: Options) -> int:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    t_start = time.monotonic()
    # Bounded: whatever hangs, the watchdog ends the run (and the cleanup below still runs).
    budget = options.seconds + WATCHDOG_SLACK_S
    watchdog = threading.Timer(budget, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    with ExitStack() as stack:
        stack.enter_context(exit_on_sigterm())
        watchdog.start()
        stack.callback(watchdog.cancel)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="newsfeed-soak-")))
        options.output.parent.mkdir(parents=True, exist_ok=True)
        redis_server = RedisServer(
            tmp / "redis", port=free_port(), appendonly=True, appendfsync="always"
        )
        stack.callback(redis_server.stop)
        redis_server.start()
        log(f"redis-server on {redis_server.url} (AOF, appendfsync always)")
        secret = secrets.token_urlsafe(32)
        env = _service_env(redis_server.url, secret, tmp)
        gunicorn = Gunicorn("soak", "wsgi:app", env, tmp)
        worker_log = tmp / "worker.log"
        stack.callback(
            _keep_logs,
            options.output,
            {"gunicorn": gunicorn.log_path, "redis": redis_server.log_path, "worker": worker_log},
        )
        stack.callback(gunicorn.stop)
        gunicorn.start()
        # As deployed: the web processes enqueue fits, a `newsfeed worker` runs them. The same
        # one runs through the Redis restart and the freeze; only the worker kill replaces it.
        soak = Soak(options, redis_server, gunicorn, secret, Workers(env, worker_log))
        stack.callback(soak.workers.close)
        soak.workers.start()
        soak.run()
        checks = soak.final_checks()
        soak.workers.close()  # before the report: it counts the forks dead workers left
        text, data = build_report(soak, checks, started, time.monotonic() - t_start)
    options.output.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(text)
    # A failure of this script (not of the service) must not pass for a clean run.
    return 1 if soak.load.crashes or soak.live.crashes else 0


def _service_env(redis_url: str, secret: str, tmp: Path) -> dict[str, str]:
    """The soaked gunicorn's environment: shipped config, this run's Redis and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            ENV_PREFIX + "REDIS_URL": redis_url,
            ENV_PREFIX + "JWT_SECRET": secret,
            ENV_PREFIX + "HOST": HOST,
            ENV_PREFIX + "WORKERS": str(WORKERS),
            ENV_PREFIX + "THREADS": str(THREADS),
            ENV_PREFIX + "LOG_LEVEL": "warning",
            ENV_PREFIX + "DATA_DIR": str(tmp / "data"),
            # Every simulated reader shares this script's one IP: the per-IP budget (sized
            # for one client) would cap the whole run. The limiter itself stays on.
            ENV_PREFIX + "RATE_LIMIT_PER_IP": PER_IP_LIMIT,
        }
    )
    return env


def _keep_logs(output: Path, names: dict[str, Path]) -> None:
    for label, source in names.items():
        try:
            shutil.copyfile(source, output.with_name(f"{output.stem}-{label}.log"))
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the load (3)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (200)")
    parser.add_argument("--users", type=int, default=200, help="distinct readers (200)")
    parser.add_argument(
        "--kill", action="store_true", help="stop Redis with SIGKILL instead of SIGTERM"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON report path")
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 120) or not (0 < args.rate <= 5000) or args.users < 1:
        parser.error("need 0 < --minutes <= 120, 0 < --rate <= 5000 and --users >= 1")
    options = Options(args.minutes, args.rate, args.users, args.kill, args.seed, args.output)
    try:
        sys.exit(run(options))
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)


if __name__ == "__main__":
    main()
