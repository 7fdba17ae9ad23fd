"""Bearer JWT authentication: who is calling, and may they touch this user's data."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from flask import g, request
from flask_smorest import abort

from api.extensions import services
from config import Settings
from feed.ids import check_id

F = TypeVar("F", bound=Callable[..., Any])
BEARER = [{"bearerAuth": []}]
SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@dataclass(frozen=True)
class Claims:
    sub: str
    admin: bool


def issue_token(
    settings: Settings, user_id: str, *, admin: bool = False, ttl: int | None = None
) -> str:
    if not settings.jwt_secret:
        raise ValueError("NEWSFEED_JWT_SECRET is not set; tokens are signed with it")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": check_id(user_id, "user id"),
        "iat": now,
        "exp": now + (ttl or settings.token_ttl_seconds),
    }
    if admin:
        claims["admin"] = True
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithms[0])


def verify(settings: Settings, token: str) -> Claims:
    key = settings.jwt_public_key or settings.jwt_secret
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        _unauthorized("token has expired")
    except jwt.InvalidTokenError as exc:
        _unauthorized(f"invalid token: {exc}")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        _unauthorized("invalid token: 'sub' must be a non-empty string")
    return Claims(sub=sub, admin=claims.get("admin") is True)


def current_claims() -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _unauthorized("missing bearer token: send 'Authorization: Bearer <jwt>'")
    claims = verify(services().settings, token.strip())
    g.claims = claims
    return claims


def self_only(view: F) -> F:
    """The token's subject must be the ``user_id`` in the path (admins included)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = current_claims()
        user_id = check_id(kwargs["user_id"], "user id")
        if claims.sub != user_id:
            abort(403, message=f"this token may only access /v1/users/{claims.sub}/...")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_only(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_claims().admin:
            abort(403, message="this operation needs a token with the 'admin' claim")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unauthorized(message: str) -> Any:
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="newsfeed"'})
