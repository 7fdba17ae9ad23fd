"""Rate limits per client IP and per user, counted in the service's Redis (shared by all hosts)."""

from __future__ import annotations

import math

from flask import Flask, Response, request
from flask_limiter import HeaderNames, Limit, Limiter
from flask_limiter.util import get_remote_address

from api.extensions import services
from api.tokens import InvalidToken
from config import Settings

KEY_PREFIX = "nf:ratelimit"
LIMITED_PREFIX = "/v1/"  # probes, the OpenAPI document and the docs UI are never limited
LIMITER_RETRY_AFTER = "X-Limiter-Retry-After"  # never leaves the process (see below)


def user_key() -> str:
    """The token's subject; an unusable token counts against the client's IP (it gets a 401)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            return "user:" + services().tokens.verify(token.strip()).sub
        except InvalidToken:
            pass
    return "ip:" + get_remote_address()


def _retry_after_only_when_limited(response: Response) -> Response:
    """flask-limiter writes its window reset as Retry-After on every response; only a 429
    means "come back then", and other statuses keep the Retry-After they set themselves."""
    wait = response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and wait is not None:
        response.headers["Retry-After"] = wait
    return response


def _unlimited() -> bool:
    return not request.path.startswith(LIMITED_PREFIX)


def init_limits(app: Flask, settings: Settings) -> Limiter:
    # Registered before the limiter's own hook, so it runs after it (Flask runs them last
    # registered first).
    app.after_request(_retry_after_only_when_limited)
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
        header_name_mapping={HeaderNames.RETRY_AFTER: LIMITER_RETRY_AFTER},
        strategy="moving-window",
        # Redis unreachable: count in memory (per process) instead of waiting on a dead
        # connection before every request; the request itself then meets the outage (503).
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        enabled=settings.rate_limit_enabled,
    )
    return limiter
