"""Gunicorn settings for tests/test_buffer.py: config/gunicorn.py with the exposure buffer's
flush interval and size out of reach, so that only the exit hooks write exposures."""

from __future__ import annotations

from typing import Any

from config.gunicorn import *  # noqa: F403


def post_fork(server: Any, worker: Any) -> None:
    from feed.experiments.buffer import ExposureBuffer

    defaults = ExposureBuffer.__init__.__kwdefaults__
    assert defaults is not None
    defaults["flush_seconds"] = 3600.0
    defaults["flush_at"] = 10**9
