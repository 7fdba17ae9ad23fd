"""Two services on one host, started as in production, both run and neither creates
gunicorn 27's per-user control socket (~/.gunicorn/gunicorn.ctl or $XDG_RUNTIME_DIR), which
the second would take over from the first (config/gunicorn.py turns it off)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.redis_server import RedisServer
from tests.live import gunicorn

pytestmark = pytest.mark.slow


def test_two_services_on_one_host_start_without_a_shared_control_socket(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runtime = tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    shared = {"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        with (
            gunicorn(tmp_path / "one", server.url, workers=1, **shared) as one,
            gunicorn(tmp_path / "two", server.url, workers=1, **shared) as two,
        ):
            assert one.port != two.port
            for service in (one, two):
                assert service.call("GET", "/healthz").status == 200
                service.check_alive()
            assert not (runtime / "gunicorn.ctl").exists()
            assert not (home / ".gunicorn").exists()
            assert "control socket" not in one.log_tail() + two.log_tail()
