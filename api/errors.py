"""One JSON error shape for every failure, built in one place."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from flask_smorest import Api
from marshmallow import Schema, fields
from redis.exceptions import RedisClusterException
from werkzeug.exceptions import HTTPException, InternalServerError

from feed.exceptions import (
    ExperimentConflict,
    FeedError,
    InvalidCursor,
    InvalidExperiment,
    InvalidId,
    NotFound,
    ServiceUnavailable,
    SourceConflict,
    WriteConflict,
)
from feed.storage.deadline import RedisNotWaited

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2  # how soon a client should retry when Redis or the model is not ready

STATUS_FOR: list[tuple[type[FeedError], int]] = [
    (InvalidId, 400),
    (InvalidCursor, 400),
    (NotFound, 404),
    (WriteConflict, 409),
    (ServiceUnavailable, 503),
    (InvalidExperiment, 422),
    (ExperimentConflict, 409),
    (SourceConflict, 409),
]
CODE_FOR_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ErrorBodySchema(Schema):
    status = fields.Integer(required=True, metadata={"description": "HTTP status code"})
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code"})
    message = fields.String(required=True, metadata={"description": "What went wrong, for humans"})
    details = fields.Dict(metadata={"description": "Field errors or the offending values"})


class ErrorSchema(Schema):
    """Every error response: ``{"error": {"status", "code", "message", "details"?}}``."""

    error = fields.Nested(ErrorBodySchema, required=True)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ResponseReturnValue:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details:
        body["details"] = details
    response = jsonify(error=body)
    response.status_code = status
    response.headers.update(headers or {})
    return response


class NewsfeedApi(Api):
    """flask-smorest's Api with our error shape for HTTP errors and validation failures."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        if isinstance(error, InternalServerError):
            return _internal(error.original_exception or error)
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages")
        if messages:
            return error_response(
                status,
                CODE_FOR_STATUS.get(status, "error"),
                summarise_messages(messages),
                {"fields": messages},
                data.get("headers"),
            )
        message = data.get("message") or error.description or error.name
        return error_response(
            status, CODE_FOR_STATUS.get(status, "error"), message, headers=data.get("headers")
        )


# Redis answers, but cannot serve this command for now: a demoted primary or a replica during
# failover (READONLY, MASTERDOWN). Unreachable, timed out or still loading its data after a
# restart (LOADING: BusyLoadingError is a ConnectionError) is handled the same way: 503.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,
    # A cluster with a slot no node serves (CLUSTERDOWN, MASTERDOWN, or the client finding no
    # owner for a slot), or one moving slots for longer than the client retries (TRYAGAIN).
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    # Not waited for: the request's time for Redis was spent, or the node was seen frozen.
    RedisNotWaited,
)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(FeedError, _domain_error)
    for error in REDIS_UNAVAILABLE:
        app.register_error_handler(error, _redis_down)
    app.register_error_handler(redis.ResponseError, _redis_refused)
    app.register_error_handler(RedisClusterException, _cluster_unreachable)


def _domain_error(error: FeedError) -> ResponseReturnValue:
    status = next((s for cls, s in STATUS_FOR if isinstance(error, cls)), 400)
    retryable = isinstance(error, WriteConflict | ServiceUnavailable)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retryable else None
    return error_response(status, error.code, error.message, error.details or None, headers)


def _redis_down(error: Exception) -> ResponseReturnValue:
    log.warning("redis unavailable: %s", error)
    return error_response(
        503,
        "unavailable",
        "storage is unreachable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _redis_refused(error: redis.ResponseError) -> ResponseReturnValue:
    # Redis 6.2 reports a write refused inside a script by a demoted primary as a generic
    # script error quoting READONLY (7.0 raises ReadOnlyError): unavailable all the same.
    if "READONLY" in str(error):
        return _redis_down(error)
    if isinstance(error, redis.exceptions.MovedError):
        # Only a single-node client sees MOVED (the cluster client follows it): the URL names
        # a cluster node that was not answering at start, when such URLs are refused.
        log.error("NEWSFEED_REDIS_URL names a Redis Cluster node: use a redis+cluster:// URL")
        return _redis_down(error)
    return _internal(error)


def _cluster_unreachable(error: RedisClusterException) -> ResponseReturnValue:
    # The cluster client found no node answering while it refreshed its slot map (every node
    # frozen, down or partitioned away): unavailable, like any connection error or timeout.
    if _caused_by(error, (redis.ConnectionError, redis.TimeoutError)):
        return _redis_down(error)
    return _internal(error)


def _caused_by(error: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = error.__cause__ or error.__context__
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _internal(error: BaseException) -> ResponseReturnValue:
    log.error("unhandled error", exc_info=error)
    message = repr(error) if current_app.debug else "internal error; it has been logged"
    return error_response(500, "internal_error", message)


def summarise_messages(messages: Any, limit: int | None = 5) -> str:
    """`json.articles.3.url: Not a valid URL.` for the first ``limit`` field errors (None:
    all): the API's messages and `newsfeed ingest`'s rejections."""
    flat: list[str] = []

    def located(path: list[str], message: str) -> str:
        return f"{'.'.join(path)}: {message}" if path else message

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                # Errors of a whole object (marshmallow's `_schema`) belong to its path.
                walk(value, path if key == "_schema" else [*path, str(key)])
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            flat.append(located(path, " ".join(node)))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*path, str(index)])
        else:
            flat.append(located(path, str(node)))

    walk(messages, [])
    shown = flat if limit is None else flat[:limit]
    more = f" (and {len(flat) - len(shown)} more)" if len(shown) < len(flat) else ""
    return "; ".join(shown) + more if flat else "invalid request"
