"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (
    articles,
    categories,
    console,
    events,
    experiments,
    health,
    hot_path,
    jobs,
    model,
    rankers,
    sources,
    users,
    web,
)
from api.auth import SECURITY_SCHEME
from api.cors import init_cors
from api.errors import NewsfeedApi, register_error_handlers
from api.extensions import EXTENSION
from api.limits import app_limits, init_limits
from api.logs import init_request_ids
from config import Settings
from feed.services import build_services
from feed.serving.observer import FeedObserver
from feed.storage.deadline import end_request_budget, start_request_budget

if TYPE_CHECKING:
    from api.metrics import Metrics

API_VERSION = "1.0.0"
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    settings = Settings.from_env(overrides=overrides)
    # The web blueprint serves api/static; the app needs no static route of its own.
    app = Flask(__name__, static_folder=None)
    init_config(app, settings)
    init_request_ids(app)
    metrics = init_metrics(app)
    init_services(app, settings, observer=metrics.feed)
    init_redis_budget(app, settings)
    init_limits(app, settings)
    cors = init_cors(app, settings)
    init_security_headers(app)
    register_api(app)
    register_error_handlers(app)
    hot_path.install(app, metrics, app_limits(app), cors)
    init_proxies(app, settings)  # outermost: the hot path sees the forwarded client too
    return app


def init_config(app: Flask, settings: Settings) -> None:
    if not settings.redis_url:
        raise RuntimeError(
            "NEWSFEED_REDIS_URL is not set (`newsfeed serve` starts an embedded Redis for you)"
        )
    check_keys(settings)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="newsfeed",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Swagger UI's assets ship in the package (api/static/vendor/README.md): /docs works
        # offline; no validator badge, which would call out to the validator's site.
        OPENAPI_SWAGGER_UI_URL=web.SWAGGER_UI_URL,
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
    )
    logging.getLogger("feed").setLevel(settings.log_level.upper())


def check_keys(settings: Settings) -> None:
    """Refuse to start with keys that would reject every token or make cursors forgeable."""
    if not (settings.jwt_secret or settings.jwt_public_key):
        raise RuntimeError("set NEWSFEED_JWT_SECRET (or NEWSFEED_JWT_PUBLIC_KEY) to verify tokens")
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        raise RuntimeError(f"NEWSFEED_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    if settings.jwt_public_key:
        if any(alg.startswith("HS") for alg in settings.jwt_algorithms):
            raise RuntimeError(
                "with NEWSFEED_JWT_PUBLIC_KEY set NEWSFEED_JWT_ALGORITHMS to RS256/ES256"
            )
        if not settings.cursor_secret:
            raise RuntimeError("with NEWSFEED_JWT_PUBLIC_KEY set NEWSFEED_CURSOR_SECRET too")


def init_metrics(app: Flask) -> Metrics:
    # Imported here, in the gunicorn worker: prometheus_client picks per-process or
    # multiprocess values when first imported, and `newsfeed serve` has imported this package
    # before gunicorn's on_starting hook sets PROMETHEUS_MULTIPROC_DIR.
    from api import metrics

    return metrics.init_metrics(app)


def init_services(app: Flask, settings: Settings, observer: FeedObserver | None = None) -> None:
    app.extensions[EXTENSION] = build_services(settings, observer=observer)


def init_redis_budget(app: Flask, settings: Settings) -> None:
    """A request waits for Redis at most the configured socket timeout in all (rate limit,
    reads, writes, retries together): a frozen Redis is a 503 within that, not a sum of them.
    Registered before the rate limiter's hook, whose Redis call it covers too."""

    @app.before_request
    def start_redis_budget() -> None:
        start_request_budget(settings.redis_socket_timeout)

    @app.teardown_request
    def end_redis_budget(_error: BaseException | None) -> None:
        end_request_budget()


def init_proxies(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]


def init_security_headers(app: Flask) -> None:
    """Browsers take every response as the type it declares (a JSON error is never sniffed
    into HTML); the page at / adds its own Content-Security-Policy (api/web.py)."""

    @app.after_request
    def no_sniffing(response: Response) -> Response:
        response.headers.update(hot_path.ALWAYS)
        return response


def register_api(app: Flask) -> None:
    api = NewsfeedApi(
        app,
        spec_kwargs={
            "info": {
                "description": (
                    "Personalized news feed: follow categories, get a ranked, cached, paged feed. "
                    'Every error is `{"error": {"status", "code", "message", "details"?}}`.'
                )
            }
        },
    )
    api.spec.components.security_scheme("bearerAuth", SECURITY_SCHEME)
    for blueprint in (
        categories.blp,
        articles.blp,
        users.blp,
        events.blp,
        experiments.blp,
        rankers.blp,
        sources.blp,
        model.blp,
        jobs.blp,
    ):
        api.register_blueprint(blueprint)
    app.register_blueprint(health.blp)
    app.register_blueprint(web.blp)
    app.register_blueprint(console.blp)
