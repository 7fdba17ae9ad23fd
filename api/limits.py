"""Rate limits per client IP and per user, counted in the service's Redis (shared by all hosts)."""

from __future__ import annotations

import math

from flask import Flask, request
from flask_limiter import Limit, Limiter
from flask_limiter.util import get_remote_address

from api.extensions import services
from api.tokens import InvalidToken
from config import Settings

KEY_PREFIX = "nf:ratelimit"
LIMITED_PREFIX = "/v1/"  # probes, the OpenAPI document and the docs UI are never limited


def user_key() -> str:
    """The token's subject; an unusable token counts against the client's IP (it gets a 401)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            return "user:" + services().tokens.verify(token.strip()).sub
        except InvalidToken:
            pass
    return "ip:" + get_remote_address()


def _unlimited() -> bool:
    return not request.path.startswith(LIMITED_PREFIX)


def init_limits(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis_url,
        # Whole seconds: the limits library types its options as str | int.
        storage_options={
            "socket_timeout": math.ceil(settings.redis_socket_timeout),
            "socket_connect_timeout": math.ceil(settings.redis_connect_timeout),
        },
        key_prefix=KEY_PREFIX,
        default_limits=[
            Limit(settings.rate_limit_per_ip, shared=True, scope="ip", exempt_when=_unlimited),
            Limit(
                settings.rate_limit_per_user,
                key_function=user_key,
                shared=True,
                scope="user",
                exempt_when=_unlimited,
            ),
        ],
        headers_enabled=True,
        strategy="moving-window",
        # Redis unreachable: let the request through; it meets the same outage and gets 503.
        swallow_errors=True,
        enabled=settings.rate_limit_enabled,
    )
    return limiter
