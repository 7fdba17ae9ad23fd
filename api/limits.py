"""Rate limits per client IP and per user, counted in the service's Redis (shared by all hosts)."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limit, Limiter
from flask_limiter.util import get_remote_address
from redis.backoff import NoBackoff
from redis.retry import Retry

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


def _storage_options(settings: Settings) -> Any:
    """Options for the limiter's own Redis client (the limits library passes them through).

    Like the service's client: one immediate retry, no backoff. redis-py would otherwise retry a
    refused or LOADING connection with backoff for seconds before every request.
    """
    return {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "retry": Retry(NoBackoff(), 1),
    }


def _unlimited() -> bool:
    return not request.path.startswith(LIMITED_PREFIX)


def init_limits(app: Flask, settings: Settings) -> Limiter:
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis_url,
        storage_options=_storage_options(settings),
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
        # The limiter's own headers cost a window query per limit on every response, and it
        # sets Retry-After on 200s too; the hook below adds them where they mean something.
        headers_enabled=False,
        # Fixed windows: two Redis commands per request. The moving window scanned a list per
        # limit (28 commands a request, measured) and halved the cached feed's throughput.
        strategy="fixed-window",
        # Redis unreachable: let the request through; it meets the same outage and gets 503.
        swallow_errors=True,
        enabled=settings.rate_limit_enabled,
    )

    @app.after_request
    def tell_when_to_come_back(response: Response) -> Response:
        """On a 429: Retry-After and the standard X-RateLimit-* headers of the breached limit."""
        breached = limiter.current_limit if response.status_code == 429 else None
        if breached is not None:
            reset_at = breached.reset_at
            response.headers["Retry-After"] = str(max(1, reset_at - int(time.time())))
            response.headers["X-RateLimit-Limit"] = str(breached.limit.amount)
            response.headers["X-RateLimit-Remaining"] = "0"
            response.headers["X-RateLimit-Reset"] = str(reset_at)
        return response

    return limiter
