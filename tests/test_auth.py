"""Who may call what: 401 without a valid token, 403 for someone else's data or admin routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api import create_app
from api.extensions import EXTENSION
from tests.conftest import TEST_SECRET

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    _KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

USER_ROUTES = [
    ("get", "/v1/users/alice/categories", None),
    ("put", "/v1/users/alice/categories", {"categories": []}),
    ("put", "/v1/users/alice/categories/tech", None),
    ("delete", "/v1/users/alice/categories/tech", None),
    ("get", "/v1/users/alice/feed", None),
]
SIGNED_IN_ROUTES = [
    ("post", "/v1/events", {"events": [{"type": "click", "user_id": "alice", "article_id": "a1"}]}),
]
ADMIN_ROUTES = [
    ("post", "/v1/articles", {"articles": []}),
    ("delete", "/v1/articles/some-id", None),
    ("put", "/v1/categories/tech", {"name": "Tech"}),
    ("post", "/v1/experiments", {}),
    ("get", "/v1/experiments", None),
    ("get", "/v1/experiments/x", None),
    ("post", "/v1/experiments/x/start", None),
    ("post", "/v1/experiments/x/stop", None),
    ("get", "/v1/experiments/x/results", None),
]


def bearer(claims, key=TEST_SECRET, algorithm="HS256"):
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}


def future():
    return int(time.time()) + 600


def hs512_with_the_right_secret():
    # The right secret under an algorithm the service does not accept; PyJWT warns that the
    # secret is short for HS512, which is beside the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return bearer({"sub": "alice", "exp": future()}, algorithm="HS512")


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
    "other hmac algorithm": hs512_with_the_right_secret(),
    "rs256 token": bearer({"sub": "alice", "exp": future()}, key=PRIVATE_PEM, algorithm="RS256"),
}


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES + SIGNED_IN_ROUTES + ADMIN_ROUTES)
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
    from feed.readers.tokens import issue_token

    headers = {"Authorization": f"Bearer {issue_token(services.settings, 'alice', ttl=1)}"}
    assert client.get("/v1/users/alice/categories", headers=headers).status_code == 200
    time.sleep(1.1)
    response = client.get("/v1/users/alice/categories", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]


def test_events_for_another_user_are_403(client, tokens):
    body = {"events": [{"type": "click", "user_id": "alice", "article_id": "a1"}]}
    response = client.post("/v1/events", json=body, headers=tokens.user("mallory"))
    assert response.status_code == 403


@pytest.fixture
def rs256_client(settings_overrides, redis_client):
    app = create_app(
        {
            **settings_overrides,
            "jwt_secret": "",
            "jwt_public_key": PUBLIC_PEM,
            "jwt_algorithms": ("RS256",),
            "cursor_secret": "c" * 40,
        }
    )
    yield app.test_client()
    app.extensions[EXTENSION].keeper.stop()
    app.extensions[EXTENSION].redis.close()


def test_a_public_key_verifies_tokens_from_an_external_issuer(rs256_client):
    headers = bearer({"sub": "alice", "exp": future()}, key=PRIVATE_PEM, algorithm="RS256")
    assert rs256_client.get("/v1/users/alice/categories", headers=headers).status_code == 200


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_hmac_token_keyed_with_the_public_key_is_refused(rs256_client):
    """Algorithm confusion: HS256 signed with the (public) verification key as the secret."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": "alice", "exp": future()}).encode())
    digest = hmac.new(PUBLIC_PEM.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    forged = f"{header}.{payload}.{_b64(digest.digest())}"
    response = rs256_client.get(
        "/v1/users/alice/categories", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


@pytest.fixture
def two_family_client(settings_overrides, redis_client):
    """Public-key mode with an RSA key and two algorithm families configured."""
    app = create_app(
        {
            **settings_overrides,
            "jwt_secret": "",
            "jwt_public_key": PUBLIC_PEM,
            "jwt_algorithms": ("RS256", "ES256"),
            "cursor_secret": "c" * 40,
        }
    )
    yield app.test_client()
    app.extensions[EXTENSION].keeper.stop()
    app.extensions[EXTENSION].redis.close()


def test_a_token_naming_the_other_algorithm_family_is_a_401(two_family_client):
    """Its header names ES256, for which the RSA key is unusable: a 401, not a 500."""
    header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"sub": "alice", "exp": future()}).encode())
    forged = f"{header}.{payload}.{_b64(b'x' * 64)}"
    for path in ("/v1/users/alice/categories", "/v1/categories"):
        response = two_family_client.get(path, headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code in (200, 401), response.get_json()
        if path != "/v1/categories":  # a public route ignores a bad token it does not need
            assert response.status_code == 401


@pytest.mark.parametrize(
    "sub", ["a{b}c", "alice\nbob", "café", "x" * 8192, "nf:{u:alice}", " alice"]
)
def test_a_subject_outside_the_user_id_rules_is_a_401(client, sub):
    """`sub` becomes part of Redis keys (rate limits, the reader's keys): it follows the same
    rules as a user id in a path, or the token is refused."""
    response = client.get("/v1/categories", headers=bearer({"sub": sub, "exp": future()}))
    assert response.status_code in (200, 401)
    response = client.get(
        "/v1/users/alice/categories", headers=bearer({"sub": sub, "exp": future()})
    )
    assert response.status_code == 401
    assert "sub" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.@@@", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "x" * 300],
)
def test_401_messages_do_not_quote_library_internals(client, token):
    response = client.get(
        "/v1/users/alice/categories", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    message = response.get_json()["error"]["message"]
    for internal in ("padding", "codec", "Invalid header", "utf-8", "Expecting value"):
        assert internal not in message, message
