"""Rate limits per client IP and per user on /v1, counted in the service's Redis (shared by all
hosts) through feed/storage/ratelimit.py's leases."""

from __future__ import annotations

import time
from typing import NoReturn

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import TooManyRequests

from api.auth import caller
from api.extensions import EXTENSION
from config import Settings
from feed.readers.tokens import Claims
from feed.storage.ratelimit import Denial, RateLimiter, Rule

LIMITED_PREFIX = "/v1/"  # probes, metrics, the OpenAPI document and the docs UI are never limited
LIMITS = "newsfeed.limits"  # app.extensions: the app's RateLimits, when limits are enabled


class RateLimits:
    """The configured rules, counted for one request by its client IP and its caller."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self._limiter = limiter
        self._per_ip = Rule.parse("ip", settings.rate_limit_per_ip)
        self._per_user = Rule.parse("user", settings.rate_limit_per_user)

    def check(self, ip: str, claims: Claims | None) -> Denial | None:
        # An unusable token counts against the client's IP (it gets a 401).
        user = "user:" + claims.sub if claims is not None else "ip:" + ip
        return self._limiter.check(
            [*((rule, ip) for rule in self._per_ip), *((rule, user) for rule in self._per_user)]
        )


def refuse(denial: Denial) -> NoReturn:
    """The 429; ``g.rate_limit_denial`` (set by the caller) adds its headers on the way out."""
    raise TooManyRequests(
        f"rate limit exceeded: {denial.rule.amount} requests per "
        f"{denial.rule.period} s per {denial.rule.scope}; retry after the window ends"
    )


def client_ip(remote_addr: str | None) -> str:
    # ProxyFix (NEWSFEED_TRUSTED_PROXIES) has already put the forwarded client here.
    return remote_addr or "unknown"


def app_limits(app: Flask) -> RateLimits | None:
    found: RateLimits | None = app.extensions.get(LIMITS)
    return found


def init_limits(app: Flask, settings: Settings) -> None:
    if not settings.rate_limit_enabled:
        return
    app.extensions[LIMITS] = RateLimits(RateLimiter(app.extensions[EXTENSION].redis), settings)

    @app.before_request
    def count_request() -> None:
        if not request.path.startswith(LIMITED_PREFIX):
            return
        limits: RateLimits = current_app.extensions[LIMITS]
        denial = limits.check(client_ip(request.remote_addr), caller().claims)
        if denial is not None:
            g.rate_limit_denial = denial
            refuse(denial)

    @app.after_request
    def tell_when_to_come_back(response: Response) -> Response:
        """On a 429: Retry-After and the standard X-RateLimit-* headers of the breached limit."""
        denial: Denial | None = g.get("rate_limit_denial")
        if denial is not None and response.status_code == 429:
            response.headers["Retry-After"] = str(denial.retry_after(time.time()))
            response.headers["X-RateLimit-Limit"] = str(denial.rule.amount)
            response.headers["X-RateLimit-Remaining"] = "0"
            response.headers["X-RateLimit-Reset"] = str(denial.reset_at)
        return response
