"""Who may call what: 401 without a valid token, 403 for someone else's data or admin routes."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.conftest import TEST_SECRET

USER_ROUTES = [
    ("get", "/v1/users/alice/categories", None),
    ("put", "/v1/users/alice/categories", {"categories": []}),
    ("put", "/v1/users/alice/categories/tech", None),
    ("delete", "/v1/users/alice/categories/tech", None),
    ("get", "/v1/users/alice/feed", None),
]
ADMIN_ROUTES = [
    ("post", "/v1/articles", {"articles": []}),
    ("delete", "/v1/articles/some-id", None),
    ("put", "/v1/categories/tech", {"name": "Tech"}),
]


def bearer(claims, key=TEST_SECRET, algorithm="HS256"):
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}


def future():
    return int(time.time()) + 600


BAD_CREDENTIALS = {
    "no header": {},
    "not bearer": {"Authorization": "Basic YWxpY2U6cHc="},
    "empty bearer": {"Authorization": "Bearer "},
    "garbage": {"Authorization": "Bearer not.a.jwt"},
    "wrong secret": bearer({"sub": "alice", "exp": future()}, key="x" * 40),
    "expired": bearer({"sub": "alice", "exp": int(time.time()) - 10}),
    "no exp": bearer({"sub": "alice"}),
    "no sub": bearer({"exp": future()}),
    "alg none": {
        "Authorization": "Bearer "
        + jwt.encode({"sub": "alice", "exp": future()}, None, algorithm="none")
    },
}


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES + ADMIN_ROUTES)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_invalid_credentials_are_401(client, method, path, body, credentials):
    response = getattr(client, method)(path, json=body, headers=credentials)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
def test_another_users_data_is_403(client, tokens, method, path, body):
    response = getattr(client, method)(path, json=body, headers=tokens.user("mallory"))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
def test_admins_do_not_read_other_users_data_either(client, tokens, method, path, body):
    response = getattr(client, method)(path, json=body, headers=tokens.admin("root"))
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_need_the_admin_claim(client, tokens, method, path, body):
    response = getattr(client, method)(path, json=body, headers=tokens.user("alice"))
    assert response.status_code == 403
    assert "admin" in response.json["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/categories", "/v1/articles/missing", "/healthz"])
def test_public_reads_need_no_token(client, path):
    assert client.get(path).status_code in (200, 404)
    assert client.get(path).status_code != 401


def test_own_data_is_allowed(client, tokens):
    assert client.get("/v1/users/alice/categories", headers=tokens.user("alice")).status_code == 200


def test_a_token_accepted_before_still_expires(client, services):
    from api.tokens import issue_token

    headers = {"Authorization": f"Bearer {issue_token(services.settings, 'alice', ttl=1)}"}
    assert client.get("/v1/users/alice/categories", headers=headers).status_code == 200
    time.sleep(1.1)
    response = client.get("/v1/users/alice/categories", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]
