"""RSS/Atom sources: the admin API, polling into the corpus, conditional GET, backoff, CLI."""

from __future__ import annotations

import dataclasses
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from click.testing import CliRunner

from cli import cli
from feed import sources
from feed.corpus import articles
from feed.model import versions
from feed.sources import polling
from tests.conftest import TEST_SECRET
from tests.feedserver import feed_server

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Local Wire</title>
<item><title>First story</title><link>https://local.example.com/1?utm_source=rss</link>
  <guid>g-1</guid><description>&lt;p&gt;One &amp;amp; only&lt;/p&gt;</description>
  <category>Tech</category><pubDate>{date}</pubDate></item>
<item><title>Same story, tracking link</title>
  <link>https://local.example.com/1?utm_campaign=x&amp;fbclid=abc</link><guid>g-1-copy</guid>
  <pubDate>{date}</pubDate></item>
<item><title>Undated story</title><link>https://local.example.com/2</link></item>
<item><description>no title, no link</description></item>
</channel></rss>"""


@pytest.fixture
def server():
    with feed_server() as running:
        yield running


def rfc822_now() -> str:
    return format_datetime(datetime.now(UTC) - timedelta(hours=2), usegmt=True)


def create(client, tokens, **body):
    return client.post("/v1/sources", json=body, headers=tokens.admin())


def test_admin_api_needs_an_admin_token(client, tokens):
    assert client.get("/v1/sources").status_code == 401
    assert client.get("/v1/sources", headers=tokens.user("alice")).status_code == 403
    body = {"url": "https://example.com/feed", "categories": ["tech"]}
    assert client.post("/v1/sources", json=body).status_code == 401
    denied = client.post("/v1/sources", json=body, headers=tokens.user("alice"))
    assert denied.status_code == 403 and denied.json["error"]["code"] == "forbidden"
    assert client.post("/v1/sources/0123456789ab/poll").status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/feed", "categories": ["tech"]},
        {"url": "not a url", "categories": ["tech"]},
        {"url": "https://example.com/feed", "categories": []},
        {"url": "https://example.com/feed", "categories": ["Bad Slug"]},
        {"url": "https://example.com/feed", "categories": ["tech"], "poll_interval_seconds": 30},
        {"url": "https://example.com/feed", "categories": ["tech"], "poll_interval_seconds": 90000},
        {"url": "https://example.com/feed", "categories": ["tech"], "category_map": {"x": "No!"}},
        {"url": "https://example.com/feed", "categories": ["tech"], "colour": "red"},
        {"categories": ["tech"]},
    ],
)
def test_invalid_sources_are_422(client, tokens, body):
    response = create(client, tokens, **body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_create_read_list_patch_delete(client, tokens):
    created = create(client, tokens, url="https://example.com/feed.xml", categories=["tech"])
    assert created.status_code == 201
    source = created.json
    assert source["id"] == sources.source_id("https://example.com/feed.xml")
    assert source["poll_interval_seconds"] == 900 and source["enabled"] is True
    assert source["state"]["consecutive_failures"] == 0

    again = create(client, tokens, url="HTTPS://Example.com/feed.xml/", categories=["tech"])
    assert again.status_code == 409 and again.json["error"]["code"] == "source_conflict"

    admin = tokens.admin()
    path = f"/v1/sources/{source['id']}"
    assert client.get(path, headers=admin).json["url"] == "https://example.com/feed.xml"
    assert [s["id"] for s in client.get("/v1/sources", headers=admin).json["sources"]] == [
        source["id"]
    ]
    patched = client.patch(
        path,
        json={"enabled": False, "poll_interval_seconds": 3600, "category_map": {"AI": "tech"}},
        headers=admin,
    )
    assert patched.status_code == 200
    assert patched.json["enabled"] is False and patched.json["category_map"] == {"ai": "tech"}
    assert client.patch(path, json={"url": "https://x.example"}, headers=admin).status_code == 422

    assert client.delete(path, headers=admin).status_code == 204
    missing = client.get(path, headers=admin)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "source_not_found"
    assert client.delete(path, headers=admin).status_code == 404


def test_poll_stores_clean_items_then_conditional_get_answers_not_modified(client, tokens, server):
    url = server.serve("/feed.xml", FEED.format(date=rfc822_now()))
    source = create(
        client, tokens, url=url, categories=["world"], category_map={"tech": "tech"}
    ).json
    admin = tokens.admin()

    first = client.post(f"/v1/sources/{source['id']}/poll", headers=admin).json
    assert first["status"] == "ok" and first["http_status"] == 200
    assert first["entries"] == 4 and len(first["created"]) == 2
    assert first["duplicates"] == 1  # the tracking-link copy of story 1
    assert [e["reason"] for e in first["errors"]] == ["missing_link"]

    story = client.get(f"/v1/articles/{first['created'][0]}").json
    assert story["title"] == "First story" and story["summary"] == "One & only"
    assert story["categories"] == ["world", "tech"] and story["source"] == "Local Wire"

    second = client.post(f"/v1/sources/{source['id']}/poll", headers=admin).json
    assert second["status"] == "not_modified" and second["http_status"] == 304
    assert second["created"] == [] and second["updated"] == []
    requests = server.hits("/feed.xml")
    assert "if-none-match" not in requests[0]
    assert requests[1]["if-none-match"] == requests_etag(server, url)
    assert requests[0]["user-agent"].startswith("newsfeed/")

    state = client.get(f"/v1/sources/{source['id']}", headers=admin).json["state"]
    assert state["last_status"] == "not_modified" and state["etag"]
    assert state["consecutive_failures"] == 0


def requests_etag(server, url):
    with urllib.request.urlopen(url) as response:
        return response.headers["ETag"]


def test_repoll_without_etag_changes_nothing(redis_client, server):
    url = server.serve("/plain.xml", FEED.format(date=rfc822_now()), etag=False)
    source = sources.create(redis_client, url, ["world"])
    options = server.options()
    first = polling.poll(redis_client, source.id, options)
    assert len(first.created) == 2
    version = redis_client.get(versions.CORPUS_VERSION_KEY)
    again = polling.poll(redis_client, source.id, options, now=first.next_poll_at)
    assert again.status == "ok" and again.created == [] and again.updated == []
    assert again.unchanged == 2  # the undated story keeps the date it was first seen with
    assert redis_client.get(versions.CORPUS_VERSION_KEY) == version


def test_failing_source_backs_off_exponentially_then_recovers(redis_client, server):
    url = server.serve("/down.xml", "", status=500)
    source = sources.create(redis_client, url, ["world"], poll_interval_seconds=600, now=1000.0)
    options = server.options()
    first = polling.poll(redis_client, source.id, options, now=1000.0)
    assert first.status == "error" and first.http_status == 500 and "500" in (first.error or "")
    assert first.next_poll_at == 1000.0 + 600 * 2
    assert sources.due(redis_client, now=1500.0) == []
    second = polling.poll(redis_client, source.id, options, now=3000.0)
    assert second.next_poll_at == 3000.0 + 600 * 4
    state = sources.get(redis_client, source.id).state
    assert state.consecutive_failures == 2 and state.last_status == "error"
    assert "http_error" in (state.last_error or "")
    for _ in range(10):
        capped = polling.poll(redis_client, source.id, options, now=5000.0)
    assert capped.next_poll_at == 5000.0 + polling.MAX_BACKOFF_SECONDS

    server.serve("/down.xml", FEED.format(date=rfc822_now()))
    ok = polling.poll(redis_client, source.id, options, now=9000.0)
    assert ok.status == "ok" and len(ok.created) == 2
    state = sources.get(redis_client, source.id).state
    assert state.consecutive_failures == 0 and state.next_poll_at == 9000.0 + 600
    assert [e["reason"] for e in state.last_item_errors] == ["missing_link"]


def test_size_cap_fails_the_poll(client, tokens, server, services):
    url = server.serve("/huge.xml", "<rss>" + "x" * 5000 + "</rss>")
    source = create(client, tokens, url=url, categories=["world"]).json
    services.settings = dataclasses.replace(services.settings, poll_max_bytes=1000)
    outcome = client.post(f"/v1/sources/{source['id']}/poll", headers=tokens.admin()).json
    assert outcome["status"] == "error" and outcome["error"].startswith("too_large")


def test_malformed_document_without_items_fails_and_is_recorded(redis_client, server):
    url = server.serve("/junk.xml", "<html><body>not a feed <<<", content_type="text/html")
    source = sources.create(redis_client, url, ["world"])
    outcome = polling.poll(redis_client, source.id, server.options())
    assert outcome.status == "error" and (outcome.error or "").startswith("malformed")
    assert sources.get(redis_client, source.id).state.consecutive_failures == 1


def test_poll_due_skips_disabled_and_not_yet_due_sources(redis_client, server):
    feed = FEED.format(date=rfc822_now())
    due = sources.create(redis_client, server.serve("/a.xml", feed), ["world"], now=100.0)
    off = sources.create(
        redis_client, server.serve("/b.xml", feed), ["world"], enabled=False, now=100.0
    )
    later = sources.create(redis_client, server.serve("/c.xml", feed), ["world"], now=500.0)
    outcomes = polling.poll_due(redis_client, server.options(), now=200.0)
    assert [o.source_id for o in outcomes] == [due.id]
    assert off.id not in sources.due(redis_client, now=10**12)
    assert later.id in sources.due(redis_client, now=10**12)


def test_poll_command_polls_due_sources(redis_server, redis_client, server, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSFEED_REDIS_URL", redis_server.url)
    monkeypatch.setenv("NEWSFEED_JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("NEWSFEED_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NEWSFEED_POLL_CONTACT", "ops@example.com")
    monkeypatch.setenv("NEWSFEED_FETCH_ALLOW", f"127.0.0.1:{server.port}")
    source = sources.create(
        redis_client, server.serve("/cli.xml", FEED.format(date=rfc822_now())), ["world"]
    )
    result = CliRunner().invoke(cli, ["poll"])
    assert result.exit_code == 0, result.output
    assert f"{source.id}: ok, 2 created" in result.output
    assert "polled 1 sources, 0 failed" in result.output
    assert server.hits("/cli.xml")[0]["user-agent"].endswith("(+ops@example.com)")
    assert redis_client.zcard(articles.TIMELINE_KEY) == 2

    result = CliRunner().invoke(cli, ["poll"])  # not due again yet
    assert "polled 0 sources" in result.output
    result = CliRunner().invoke(cli, ["poll", "--all"])
    assert f"{source.id}: not_modified" in result.output


INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.5/feed.xml",
    "http://[::1]:8080/feed.xml",
    "http://[::ffff:a9fe:a9fe]/feed.xml",  # 169.254.169.254, IPv4-mapped
    "http://[fd00:ec2::254]/",
]


def test_feeds_at_internal_addresses_or_with_credentials_are_422(make_app, tokens, redis_server):
    client = make_app(fetch_allow=()).test_client()  # the default: no allowlist
    for url in [f"http://127.0.0.1:{redis_server.port}/", *INTERNAL_URLS]:
        response = create(client, tokens, url=url, categories=["world"])
        assert response.status_code == 422, url
        assert response.json["error"]["code"] == "validation_error"
        assert "address not allowed" in str(response.json["error"]["details"])
    with_password = create(
        client, tokens, url="https://reader:secret@example.com/feed", categories=["world"]
    )
    assert with_password.status_code == 422
    assert "credentials" in str(with_password.json["error"]["details"])
    assert sources.list_all(services_redis(client)) == []

    intranet = make_app(fetch_allow=("10.0.0.0/8",)).test_client()
    assert create(intranet, tokens, url=INTERNAL_URLS[2], categories=["world"]).status_code == 201


def services_redis(client):
    return client.application.extensions["newsfeed"].redis


def test_a_feed_named_by_a_host_that_resolves_inside_polls_to_the_one_message(
    make_app, tokens, redis_server
):
    client = make_app(fetch_allow=()).test_client()
    # A name is judged when fetched, on the addresses it resolves to then.
    created = create(client, tokens, url=f"http://localhost:{redis_server.port}/", categories=["w"])
    assert created.status_code == 201
    admin = tokens.admin()
    outcome = client.post(f"/v1/sources/{created.json['id']}/poll", headers=admin).json
    assert outcome["status"] == "error" and outcome["error"] == "not_allowed: address not allowed"
    state = client.get(f"/v1/sources/{created.json['id']}", headers=admin).json["state"]
    assert state["last_error"] == "not_allowed: address not allowed"


def test_a_malformed_allowlist_stops_the_app_at_start(make_app):
    with pytest.raises(ValueError, match="NEWSFEED_FETCH_ALLOW: '10.0.0.0/33'"):
        make_app(fetch_allow=("10.0.0.0/33",))
