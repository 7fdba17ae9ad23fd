"""The `newsfeed` command: the embedded default, ingest, reindex and token."""

from __future__ import annotations

import re
import socket
import sys
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from cli import cli
from devtools.demo import write_jsonl
from feed.corpus import articles
from feed.model import versions
from tests.conftest import TEST_SECRET
from tests.factories import article
from tests.live import serve

NEWSFEED = str(Path(sys.executable).parent / "newsfeed")


@pytest.fixture
def env(redis_server, redis_client, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSFEED_REDIS_URL", redis_server.url)
    monkeypatch.setenv("NEWSFEED_JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("NEWSFEED_DATA_DIR", str(tmp_path / "var"))
    return tmp_path


def test_token_prints_a_token_for_the_user(env):
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--admin"])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["admin"] is True


def test_token_refuses_a_bad_user_id(env):
    result = CliRunner().invoke(cli, ["token", "--user", "not ok"])
    assert result.exit_code != 0


def test_ingest_reads_json_lines_reports_rejects_and_reindexes(env, redis_client):
    path = env / "articles.jsonl"
    good = [article(categories=["tech"]) for _ in range(3)]
    write_jsonl(path, [*good, {**article(), "published_at": "never"}])
    with path.open("a") as handle:
        handle.write("{broken json\n")
    result = CliRunner().invoke(cli, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "created 3, updated 0, rejected 2" in result.output
    assert "line 4" in result.output and "line 5" in result.output
    assert re.search(r"model \d+: 3 articles", result.output)
    assert redis_client.zcard(articles.TIMELINE_KEY) == 3


def test_reindex_publishes_a_model(env, redis_client):
    result = CliRunner().invoke(cli, ["reindex"])
    assert result.exit_code == 0, result.output
    assert redis_client.get(versions.MODEL_CURRENT_KEY) is not None


@pytest.mark.slow
def test_serve_without_redis_url_runs_an_embedded_redis_and_stops_it(tmp_path):
    var = tmp_path / "var"
    with serve(tmp_path, None, args=["--demo"], workers=1) as service:
        url_file = var / "redis.url"
        redis_port = int(url_file.read_text().rsplit(":", 1)[1].split("/")[0])
        categories = service.call("GET", "/v1/categories").body["categories"]
        assert len(categories) >= 8
        assert sum(c["article_count"] for c in categories) >= 300
        secret = (var / "jwt-secret").read_text().strip()
        token = jwt.encode({"sub": "demo-user", "exp": time.time() + 60}, secret, "HS256")
        feed = service.call(
            "GET",
            "/v1/users/demo-user/feed?limit=5",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert len(feed.body["items"]) == 5
    output = service.log_path.read_text()
    assert service.process.returncode == 0, output
    assert "export TOKEN=" in output and "curl" in output
    assert not url_file.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
    aof = list((var / "redis").rglob("*.aof*"))
    assert aof, "the embedded Redis keeps an append-only file under var/"
