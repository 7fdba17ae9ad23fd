"""CORS on /v1 for the configured browser origins (flask-cors), and the same headers for the
feed's hot path, which answers before Flask's after-request hooks run."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_cors import CORS
from flask_cors.core import get_cors_headers, get_cors_options
from werkzeug.datastructures import EnvironHeaders

from api.logs import REQUEST_ID_HEADER
from config import Settings

RESOURCE = r"/v1/*"
EXPOSED_HEADERS = [
    "X-Feed-Cache",
    "ETag",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    REQUEST_ID_HEADER,
]
OPTIONS: dict[str, Any] = {
    "allow_headers": ["Authorization", "Content-Type", REQUEST_ID_HEADER],
    "expose_headers": EXPOSED_HEADERS,
    "max_age": 600,
}


class CorsHeaders:
    """The headers flask-cors's after-request hook adds to a GET under /v1, computed by its
    own functions from the same options."""

    def __init__(self, app: Flask, origins: list[str]) -> None:
        self._options = get_cors_options(app, OPTIONS, {"origins": origins})

    def for_get(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        found = get_cors_headers(self._options, EnvironHeaders(environ), "GET")
        # As flask-cors's set_cors_headers adds them: the first value of each.
        return [(name, str(value)) for name, value in found.items()]


def init_cors(app: Flask, settings: Settings) -> CorsHeaders | None:
    """Allow the configured browser origins to call /v1; nothing is open by default."""
    if not settings.cors_origins:
        return None
    origins = list(settings.cors_origins)
    CORS(app, resources={RESOURCE: {"origins": origins}}, **OPTIONS)
    return CorsHeaders(app, origins)
