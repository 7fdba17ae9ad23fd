"""Abuse limits: per-user and per-IP rate limits shared through Redis, and CORS."""

from __future__ import annotations

import pytest


def get(client, path, headers=None, ip="10.0.0.1"):
    return client.get(path, headers=headers or {}, environ_base={"REMOTE_ADDR": ip})


def test_a_user_over_their_limit_gets_429_with_retry_after(make_app, tokens):
    client = make_app(rate_limit_per_user="5/minute").test_client()
    alice, bob = tokens.user("alice"), tokens.user("bob")
    statuses = [get(client, "/v1/users/alice/categories", alice).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    response = get(client, "/v1/users/alice/categories", alice)
    assert response.status_code == 429
    assert response.json["error"]["code"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert get(client, "/v1/users/bob/categories", bob).status_code == 200


def test_only_a_429_tells_the_client_to_wait(make_app, tokens):
    client = make_app(rate_limit_per_user="50/minute").test_client()
    ok = get(client, "/v1/users/alice/categories", tokens.user("alice"))
    assert ok.status_code == 200
    assert "Retry-After" not in ok.headers
    # A 503 keeps its own short Retry-After (no model fitted yet on an empty store).
    feed = get(client, "/v1/users/alice/feed", tokens.user("alice"))
    assert feed.status_code == 503 and feed.headers["Retry-After"] == "2"


def test_one_ip_is_limited_across_users(make_app, tokens):
    client = make_app(rate_limit_per_ip="4/minute").test_client()
    statuses = [
        get(client, f"/v1/users/u{n}/categories", tokens.user(f"u{n}")).status_code
        for n in range(5)
    ]
    assert statuses == [200] * 4 + [429]
    other_ip = get(client, "/v1/users/u9/categories", tokens.user("u9"), ip="10.0.0.2")
    assert other_ip.status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(make_app, tokens):
    client = make_app(rate_limit_per_ip="2/minute", trusted_proxies=1).test_client()

    def via_balancer(client_ip):
        headers = {"X-Forwarded-For": client_ip}
        return get(client, "/v1/categories", headers, ip="10.9.9.9").status_code

    assert [via_balancer("203.0.113.7") for _ in range(3)] == [200, 200, 429]
    assert via_balancer("198.51.100.4") == 200


def test_forwarded_headers_are_ignored_unless_proxies_are_trusted(make_app):
    client = make_app(rate_limit_per_ip="2/minute").test_client()
    statuses = [
        get(client, "/v1/categories", {"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_limits_are_shared_by_every_worker_and_host(make_app, tokens):
    first = make_app(rate_limit_per_user="3/minute").test_client()
    second = make_app(rate_limit_per_user="3/minute").test_client()
    alice = tokens.user("alice")
    statuses = [
        get(c, "/v1/users/alice/categories", alice).status_code
        for c in (first, second, first, second)
    ]
    assert statuses == [200, 200, 200, 429]


def test_public_reads_count_against_the_ip(make_app):
    client = make_app(rate_limit_per_ip="2/minute").test_client()
    assert [get(client, "/v1/categories").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json"])
def test_probes_and_docs_are_never_limited(make_app, path):
    client = make_app(rate_limit_per_ip="1/minute").test_client()
    assert {get(client, path).status_code for _ in range(5)} == {200}


def test_limits_can_be_switched_off(make_app, tokens):
    client = make_app(rate_limit_per_user="1/minute", rate_limit_enabled=False).test_client()
    alice = tokens.user("alice")
    assert {get(client, "/v1/users/alice/categories", alice).status_code for _ in range(3)} == {200}


def test_no_cors_headers_unless_origins_are_configured(make_app):
    client = make_app().test_client()
    response = client.get("/v1/categories", headers={"Origin": "https://news.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_configured_origins_may_call_the_api(make_app, tokens):
    client = make_app(cors_origins=("https://news.example.com",)).test_client()
    allowed = client.get("/v1/categories", headers={"Origin": "https://news.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://news.example.com"
    assert "X-Feed-Cache" in allowed.headers["Access-Control-Expose-Headers"]
    preflight = client.options(
        "/v1/users/alice/categories/tech",
        headers={
            "Origin": "https://news.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://news.example.com"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    other = client.get("/v1/categories", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
