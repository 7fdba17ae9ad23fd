"""Gunicorn settings for `newsfeed serve` and the container, from the same NEWSFEED_* variables."""

from __future__ import annotations

from config import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
# Threads let one worker overlap Redis round trips; ranking is numpy, which releases the GIL.
worker_class = "gthread"
threads = _settings.threads
# Each worker builds its own Redis pool and model keeper after the fork.
preload_app = False
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak can never take a host down; rarely, because a
# new worker reloads the model (about 50 ms at 100k articles) before its first miss.
max_requests = 200_000
max_requests_jitter = 20_000
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level
