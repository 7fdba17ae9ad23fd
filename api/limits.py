"""Rate limits per client IP and per user on /v1, counted in the service's Redis (shared by all
hosts) through feed/storage/ratelimit.py's leases."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import TooManyRequests

from api.auth import caller
from api.extensions import EXTENSION
from config import Settings
from feed.storage.ratelimit import Denial, RateLimiter, Rule

LIMITED_PREFIX = "/v1/"  # probes, metrics, the OpenAPI document and the docs UI are never limited


def user_key() -> str:
    """The token's subject; an unusable token counts against the client's IP (it gets a 401)."""
    claims = caller().claims
    return "user:" + claims.sub if claims is not None else "ip:" + client_ip()


def client_ip() -> str:
    # ProxyFix (NEWSFEED_TRUSTED_PROXIES) has already put the forwarded client here.
    return request.remote_addr or "unknown"


def init_limits(app: Flask, settings: Settings) -> None:
    if not settings.rate_limit_enabled:
        return
    per_ip = Rule.parse("ip", settings.rate_limit_per_ip)
    per_user = Rule.parse("user", settings.rate_limit_per_user)
    limiter = RateLimiter(app.extensions[EXTENSION].redis)

    @app.before_request
    def count_request() -> None:
        if not request.path.startswith(LIMITED_PREFIX):
            return
        ip, user = client_ip(), user_key()
        denial = limiter.check(
            [*((rule, ip) for rule in per_ip), *((rule, user) for rule in per_user)]
        )
        if denial is not None:
            g.rate_limit_denial = denial
            raise TooManyRequests(
                f"rate limit exceeded: {denial.rule.amount} requests per "
                f"{denial.rule.period} s per {denial.rule.scope}; retry after the window ends"
            )

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
