"""Bearer tokens: issued for development and scripts, verified on every request."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NoReturn

import jwt

from config import Settings
from feed.ids import ID_RULE, check_id, is_valid_id

VERIFIED_TOKENS_KEPT = 10_000  # per process: about one per active reader, a few MB at most
# RFC 7515 §7.1: three base64url segments without padding. Anything else (padding, whitespace,
# an unsigned token) is refused before any parsing, and one token has one spelling.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (it is safe to show the client)."""


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


class _StrictClaims(jwt.PyJWT):
    """Claims read as strict JSON: a claim named twice (RFC 7519 §4 lets a parser refuse it;
    an issuer reading the first would disagree with us about whom the token names), NaN and
    Infinity (not JSON) make the token malformed."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = json.loads(
                decoded["payload"], object_pairs_hook=_unique_claims, parse_constant=_not_json
            )
        except (ValueError, RecursionError) as exc:
            raise jwt.DecodeError("invalid payload") from exc
        if not isinstance(payload, dict):
            raise jwt.DecodeError("invalid payload")
        return payload


def _unique_claims(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    claims = dict(pairs)
    if len(claims) < len(pairs):
        raise ValueError("a claim is named twice")
    return claims


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_JWT = _StrictClaims()


class TokenVerifier:
    """Verifies bearer tokens, remembering recent ones until they expire.

    A mobile client sends the same token on every request; checking its signature once is
    enough, since the cache is keyed by the exact token string and expiry is still enforced.
    """

    def __init__(self, settings: Settings, capacity: int = VERIFIED_TOKENS_KEPT) -> None:
        self._settings = settings
        self._capacity = capacity
        self._known: OrderedDict[str, tuple[Claims, float]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str) -> Claims:
        with self._lock:
            known = self._known.get(token)
            if known is not None and known[1] > time.time():
                self._known.move_to_end(token)
                return known[0]
        claims, expires = self._decode(token)
        with self._lock:
            self._known[token] = (claims, expires)
            if len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return claims

    def _decode(self, token: str) -> tuple[Claims, float]:
        settings = self._settings
        if COMPACT_JWS.fullmatch(token) is None:
            _invalid("invalid token: malformed, or not signed with the configured key")
        try:
            claims = _JWT.decode(
                token,
                settings.jwt_public_key or settings.jwt_secret,
                algorithms=list(settings.jwt_algorithms),
                audience=settings.jwt_audience or None,
                issuer=settings.jwt_issuer or None,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            _invalid("token has expired")
        except jwt.MissingRequiredClaimError as exc:
            _invalid(f"invalid token: the {exc.claim!r} claim is missing")
        except jwt.InvalidAudienceError:
            _invalid("invalid token: it is not for this audience")
        except jwt.InvalidIssuerError:
            _invalid("invalid token: it is not from the configured issuer")
        except jwt.ImmatureSignatureError:
            _invalid("invalid token: it is not valid yet")
        except jwt.InvalidAlgorithmError:
            _invalid("invalid token: its algorithm is not accepted here")
        except jwt.InvalidSignatureError:
            _invalid("invalid token: the signature does not verify")
        except (jwt.PyJWTError, ValueError, TypeError):
            # Malformed parts, or an algorithm the configured key cannot serve (an RSA key asked
            # for ES256): the library's own words would only describe its internals.
            _invalid("invalid token: malformed, or not signed with the configured key")
        sub = claims.get("sub")
        # `sub` names the reader in Redis keys (their state, their rate limits): it follows the
        # user id rules of a path, or the token is refused.
        if not isinstance(sub, str) or not is_valid_id(sub):
            _invalid(f"invalid token: 'sub' must be a user id ({ID_RULE})")
        return Claims(sub=sub, admin=claims.get("admin") is True), _expiry(claims["exp"])


def _expiry(exp: Any) -> float:
    """The verified ``exp`` as epoch seconds; one past any float (PyJWT reads it as an int) is
    a token that does not expire, not an OverflowError."""
    try:
        return float(exp)
    except OverflowError:
        return math.inf


def _invalid(message: str) -> NoReturn:
    raise InvalidToken(message)
