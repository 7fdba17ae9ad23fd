"""Gunicorn settings for `newsfeed serve` and the container, from the same NEWSFEED_* variables."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

from config import Settings
from config.logs import ACCESS_LOG_FORMAT, logging_config

_settings = Settings.from_env()

# Loopback for `make run`; the image sets NEWSFEED_HOST=0.0.0.0.
bind = f"{_settings.host}:{_settings.port}"
# Processes are what run Python in parallel (rendering and request handling hold the GIL):
# about one per core. Each keeps its own copy of the model in memory.
workers = _settings.workers
# Threads let one worker overlap Redis round trips; ranking is numpy, which releases the GIL.
# gthread, except that the poller reads each request whole (with a deadline) before a thread
# gets it, so clients sending slowly hold no thread; and gunicorn's own error answers are in
# the API's JSON shape (config/workers.py).
worker_class = "config.workers.BufferingThreadWorker"
threads = _settings.threads
# Not preloaded: each worker builds its own Redis pool and model keeper thread after the
# fork (sockets must not be shared between processes, and threads do not survive a fork).
preload_app = False
# A request is milliseconds and every Redis call times out in seconds: a worker silent for
# 30 s is stuck, and is killed and replaced.
timeout = 30
# On SIGTERM, requests in flight get 20 s to finish; give containers a longer stop timeout.
graceful_timeout = 20
# An idle keep-alive connection is closed after 5 s: long enough for a client's next request,
# short enough that idle clients do not hold sockets open.
keepalive = 5
# Recycle workers now and then so a slow leak can never take a host down; rarely, because a
# new worker reloads the model (about 50 ms at 100k articles) before its first miss.
max_requests = 200_000
# Spread over 10%, so the workers (started together) do not all restart at the same moment.
max_requests_jitter = 20_000
# No control socket (gunicornc): gunicorn 27 puts it at one path per user
# ($XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl), so a second service on the host takes it
# over and `gunicornc` then manages whichever started last. Nothing here uses it: the master
# is run with signals (TERM to stop, HUP to reload, TTIN/TTOU for workers; docs/operations.md).
control_socket_disable = True
# The same level as the app's own loggers.
loglevel = _settings.log_level
# Access and error logs, and the app's, as one stream on stdout (JSON by default).
logconfig_dict = logging_config(_settings.log_format, _settings.log_level)
access_log_format = ACCESS_LOG_FORMAT

# Prometheus multiprocess mode: every worker writes its metrics to files in one directory, and
# /metrics adds them up. The directory must start empty (stale files would count again).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_created_metrics_dir: list[str] = []


def on_starting(server: Any) -> None:
    """In the master before the first fork: workers inherit the variable."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="newsfeed-metrics-")
        _created_metrics_dir.append(path)
        os.environ[MULTIPROC_ENV] = path


def child_exit(server: Any, worker: Any) -> None:
    # Imported here: prometheus_client must be first imported after on_starting set the
    # variable, or the workers (forked from this process) would count per process.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    for path in _created_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)
