"""Request ids: taken from the client when sane, returned on every response, stamped on logs."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from config.logs import current_request_id

REQUEST_ID_HEADER = "X-Request-ID"
# An id from a client or a proxy (a uuid, a trace id) is kept when it is short and plain:
# anything else could forge fields in text logs or bloat every line, so it is replaced.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")


def request_id() -> str:
    """This request's id: the client's X-Request-ID when it is sane, else a new one."""
    found: str | None = g.get("request_id")
    if found is None:
        found = g.request_id = chosen_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
        # Log lines of this thread carry it until the request ends (config.logs).
        current_request_id.set(found)
    return found


def chosen_request_id(sent: str) -> str:
    """The id a request with this X-Request-ID header ("" if none) goes by."""
    return sent if REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def init_request_ids(app: Flask) -> None:
    """Every response, errors and 429s included, names its request."""

    @app.before_request
    def take_request_id() -> None:
        request_id()

    @app.after_request
    def tell_request_id(response: Response) -> Response:
        # request_id() again: a hook that ran before ours (the rate limiter) may have answered.
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response

    @app.teardown_request
    def forget_request_id(_error: BaseException | None) -> None:
        # The thread serves other requests next: its log lines must not carry this id.
        current_request_id.set(None)
