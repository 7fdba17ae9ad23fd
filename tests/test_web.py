"""The web page at / and its development-only token endpoint (no browser; see test_web_e2e)."""

from __future__ import annotations

import pytest


def get(client, path):
    """The body read and the file closed (send_file streams it)."""
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def test_the_page_is_served_outside_v1_and_not_rate_limited(client):
    response = get(client, "/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for needle in (
        'id="categories"',
        'id="feed"',
        'id="token-form"',
        "/static/app.js",
        "/static/app.css",
        'name="viewport"',
        "<label",
    ):
        assert needle in html, needle
    assert "http://" not in html and "https://" not in html, "no external assets"
    assert not any(h.startswith("X-RateLimit") for h in response.headers.keys())


@pytest.mark.parametrize(
    ("path", "mimetype", "needle"),
    [
        ("/static/app.js", "text/javascript", "IntersectionObserver"),
        ("/static/app.css", "text/css", "prefers-color-scheme"),
    ],
)
def test_static_assets_are_served(client, path, mimetype, needle):
    response = get(client, path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert needle in response.get_data(as_text=True)


def test_an_unknown_static_file_is_a_404_in_the_error_shape(client):
    response = client.get("/static/nope.js")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_dev_token_is_a_404_unless_dev_mode(client):
    response = client.get("/dev/token?user=alice")
    assert response.status_code == 404
    assert response.json["error"] == {
        "status": 404,
        "code": "not_found",
        "message": response.json["error"]["message"],
    }


@pytest.fixture
def dev_app(settings_overrides, redis_client):
    from api import create_app
    from api.extensions import EXTENSION

    app = create_app({**settings_overrides, "dev_mode": True})
    app.config["TESTING"] = True
    yield app
    app.extensions[EXTENSION].keeper.stop()
    app.extensions[EXTENSION].redis.close()


def test_dev_token_in_dev_mode_works_against_the_api(dev_app):
    client = dev_app.test_client()
    response = client.get("/dev/token?user=alice")
    assert response.status_code == 200
    token = response.json["token"]
    assert response.json["user_id"] == "alice"
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/users/alice/categories", headers=headers).json == {"categories": []}
    assert client.get("/v1/users/bob/categories", headers=headers).status_code == 403


def test_dev_token_defaults_to_the_demo_user_and_checks_the_id(dev_app):
    client = dev_app.test_client()
    assert client.get("/dev/token").json["user_id"] == "demo-user"
    bad = client.get("/dev/token?user=not%20ok")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_id"


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", "/v1/categories", "/healthz", "/nope", "/openapi.json"]
)
def test_every_response_says_nosniff(client, path):
    with client.get(path) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_a_content_security_policy_of_its_own_origin(client):
    with client.get("/") as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
