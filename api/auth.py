"""Bearer JWT authentication: who is calling, and may they touch this user's data."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from flask import g, request
from flask_smorest import abort

from api.extensions import services
from feed.ids import check_id
from feed.readers.tokens import Claims, InvalidToken, TokenVerifier

F = TypeVar("F", bound=Callable[..., Any])
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
SECURITY_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


MISSING_TOKEN = "missing bearer token: send 'Authorization: Bearer <jwt>'"


@dataclass(frozen=True)
class Caller:
    """The request's bearer token, read once: its claims, or why there are none."""

    claims: Claims | None
    problem: str  # the 401 message when claims is None


def caller() -> Caller:
    """The Authorization header parsed and verified once per request: the rate limiter (who to
    count) and the views (who may do what) share the answer."""
    found: Caller | None = g.get("caller")
    if found is None:
        found = g.caller = verify(services().tokens, request.headers.get("Authorization", ""))
    return found


def verify(tokens: TokenVerifier, header: str) -> Caller:
    """The caller named by an Authorization header ("" if none)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Caller(None, MISSING_TOKEN)
    try:
        return Caller(tokens.verify(token.strip()), "")
    except InvalidToken as exc:
        return Caller(None, str(exc))


def current_claims() -> Claims:
    """The caller's claims, or a 401 saying what is wrong with their token."""
    claims = g.claims = claims_of(caller())
    return claims


def claims_of(found: Caller) -> Claims:
    """The claims, or a 401 saying what is wrong with the token."""
    if found.claims is None:
        _unauthorized(found.problem)
    return found.claims


def check_self(claims: Claims, user_id: str) -> None:
    """403 unless the token's subject is ``user_id`` (admins included)."""
    if claims.sub != user_id:
        abort(403, message=f"this token may only access /v1/users/{claims.sub}/...")


def self_only(view: F) -> F:
    """The token's subject must be the ``user_id`` in the path (admins included)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        claims = current_claims()
        check_self(claims, check_id(kwargs["user_id"], "user id"))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def signed_in(view: F) -> F:
    """Any valid token; the view checks the body against ``g.claims`` (see :func:`require_self`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_claims()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def require_self(user_ids: Iterable[str]) -> None:
    """403 unless every user id named in the body is the token's subject."""
    claims: Claims = g.claims
    others = sorted({u for u in user_ids if u != claims.sub})
    if others:
        abort(
            403,
            message=f"this token may only send events for {claims.sub!r}, "
            f"not {', '.join(repr(u) for u in others[:5])}",
        )


def admin_only(view: F) -> F:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_claims().admin:
            abort(403, message="this operation needs a token with the 'admin' claim")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _unauthorized(message: str) -> NoReturn:
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="newsfeed"'})
    raise AssertionError("abort() raises")  # for type checkers: flask-smorest's abort is untyped
