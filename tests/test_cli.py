"""The `newsfeed` command: the embedded default, ingest, reindex, migrate, token, and what a
newcomer reads (version, help, rejections, the demo's message, the log format)."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import sys
import time
from importlib.metadata import version
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from cli import cli
from cli.corpus import _progress
from cli.serve import default_log_format, demo_message, load_demo
from config import Settings
from devtools.demo import write_jsonl
from devtools.demo_sources import DEMO_SOURCES
from feed import sources
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


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_token_refuses_a_lifetime_below_one_second(env, ttl):
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--ttl", ttl])
    assert result.exit_code == 2
    assert f"Invalid value for '--ttl': {ttl} is not in the range x>=1." in result.stderr


def test_version_prints_the_installed_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"newsfeed {version('newsfeed')}\n"


def test_ingest_help_names_stdin_the_fields_and_a_line_it_accepts():
    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert "`-` reads stdin" in result.output
    for field in ("id", "url", "title", "summary", "categories", "published_at", "body"):
        assert field in result.output
    example = next(line for line in result.output.splitlines() if line.strip().startswith("{"))
    assert set(json.loads(example)) >= {"id", "url", "categories", "published_at"}


NOT_A_SLUG = "must be 1-64 characters from a-z 0-9 and -, not starting or ending with -"


@pytest.mark.parametrize(
    ("line", "reported"),
    [
        ({"id": "a-17", "url": "nope"}, 'line 2 (id "a-17"): url: Not a valid URL.'),
        ({"id": "a-18", "colour": "red"}, 'line 2 (id "a-18"): colour: Unknown field.'),
        ({"id": "a-19", "categories": ["Bad"]}, f'line 2 (id "a-19"): categories.0: {NOT_A_SLUG}'),
        ({"id": 19}, "line 2: id: Not a valid string."),
        ("{broken", "line 2: not valid JSON: Expecting property name enclosed in double quotes"),
        ("[1, 2]", "line 2: Invalid input type."),
    ],
)
def test_ingest_reports_a_rejected_line_by_number_id_and_field(env, line, reported):
    path = env / "articles.jsonl"
    bad = json.dumps(article(**line)) if isinstance(line, dict) else line
    path.write_text(json.dumps(article()) + "\n" + bad + "\n")
    result = CliRunner().invoke(cli, ["ingest", "--no-reindex", str(path)])
    assert result.exit_code == 0, result.output
    assert reported in result.stderr
    assert "created 1, updated 0, rejected 1" in result.stdout


def test_ingest_reads_stdin_and_reports_a_duplicate_with_its_line(env):
    lines = [article(id="a-1"), article(), article(id="a-1")]
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = CliRunner().invoke(cli, ["ingest", "--no-reindex", "-"], input=stdin)
    assert result.exit_code == 0, result.output
    assert result.stderr == 'line 3 (id "a-1"): the same id appears earlier in this batch\n'


def test_progress_is_a_bar_on_stderr_only_at_a_terminal(monkeypatch, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"{}\n" * 10)
    for stderr, shown in ((io.StringIO(), ""), (Terminal(), "ingesting")):
        monkeypatch.setattr(sys, "stderr", stderr)
        with path.open("rb") as handle, _progress(handle) as lines:
            assert list(lines) == [b"{}\n"] * 10
        assert shown in stderr.getvalue() and ("100%" in stderr.getvalue()) == bool(shown)


@pytest.mark.parametrize("args", [["ingest", "-"], ["reindex"], ["migrate"], ["jobs"], ["poll"]])
def test_commands_that_sign_nothing_say_nothing_of_the_development_secret(env, monkeypatch, args):
    monkeypatch.delenv("NEWSFEED_JWT_SECRET")
    result = CliRunner().invoke(cli, args, input=json.dumps(article()) + "\n")
    assert result.exit_code == 0, result.output
    assert "JWT secret" not in result.output
    assert not (env / "var" / "jwt-secret").exists()


def test_token_says_which_development_secret_signed_it(env, monkeypatch):
    monkeypatch.delenv("NEWSFEED_JWT_SECRET")
    result = CliRunner().invoke(cli, ["token", "--user", "alice"])
    assert result.exit_code == 0, result.output
    secret_file = env / "var" / "jwt-secret"
    assert result.stderr == f"using the development JWT secret in {secret_file}\n"
    claims = jwt.decode(result.stdout.strip(), secret_file.read_text(), algorithms=["HS256"])
    assert claims["sub"] == "alice"


def test_migrate_says_so_when_there_is_nothing_to_move(env, redis_client):
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    assert result.output == "nothing to migrate: the store already uses the current key layout\n"
    redis_client.hset("nf:categories", "tech", "Tech")  # the layout before hash tags
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.output == "moved 1 keys from the old key layout to the current one\n"


def test_demo_is_loaded_into_an_empty_corpus_only_and_says_which(env, redis_client, capsys):
    settings = Settings.from_env()
    loaded = load_demo(settings)
    assert loaded > 0 and articles.count(redis_client) == loaded
    first = demo_message(settings, loaded)
    assert f"Demo data loaded ({loaded} articles)." in first
    assert f"Open http://{settings.host}:{settings.port}/ for the reader's page" in first
    assert "export TOKEN=" in first

    assert load_demo(settings) == 0
    again = demo_message(settings, 0)
    assert "Demo data loaded" not in again
    assert "The corpus is not empty, so no demo data was loaded." in again
    assert "export TOKEN=" in again


@pytest.mark.parametrize(
    ("explicit", "tty", "local_defaults", "expected"),
    [
        (None, True, True, "text"),  # `make run` at a terminal
        (None, False, True, None),  # piped or redirected: the JSON default
        (None, True, False, None),  # the image, even under `docker run -t`
        ("json", True, True, "json"),  # set explicitly: always wins
    ],
)
def test_serve_logs_text_only_at_a_terminal_unless_told(
    monkeypatch, explicit, tty, local_defaults, expected
):
    monkeypatch.setenv("NEWSFEED_LOG_FORMAT", explicit or "")  # restored after, whatever happens
    if explicit is None:
        monkeypatch.delenv("NEWSFEED_LOG_FORMAT")
    default_log_format(Settings(local_defaults=local_defaults), tty=tty)
    assert os.environ.get("NEWSFEED_LOG_FORMAT") == expected


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


@pytest.mark.parametrize("enabled", [True, False])
def test_the_demo_registers_public_news_feeds_unless_told_not_to(
    env, redis_client, monkeypatch, enabled
):
    """Registered only (never fetched here: the jobs worker polls them); the tests' own
    `serve --demo` runs turn them off, so no test reaches the network."""
    monkeypatch.setenv("NEWSFEED_DEMO_SOURCES", str(enabled).lower())
    load_demo(Settings.from_env())
    registered = {s.url for s in sources.list_all(redis_client)}
    assert registered == ({s.url for s in DEMO_SOURCES} if enabled else set())
