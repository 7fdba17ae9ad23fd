"""The app class: Flask, with lean views for the hottest routes.

A cached feed page is most of a feed backend's traffic, and webargs' parsing, flask-smorest's
decorators and MethodView's dispatch cost as much as the rest of its answer. A *lean view*
answers its route's plain requests without those layers and returns None for anything else,
which the documented view then answers; every hook (request id, metrics, rate limits, Redis
budget, security headers, CORS) and every error handler run for both alike, because only the
view call is replaced. tests/test_lean_views.py proves both answer the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue

# Called with the route's arguments; a response, or None: "not plain, ask the documented view".
LeanView = Callable[..., Response | None]


class NewsfeedFlask(Flask):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lean_views: dict[str, LeanView] = {}  # by endpoint; GET only

    def dispatch_request(self) -> ResponseReturnValue:
        req = request_ctx.request
        rule = req.url_rule
        if req.routing_exception is None and rule is not None and req.method == "GET":
            lean = self.lean_views.get(rule.endpoint)
            if lean is not None:
                found = lean(**req.view_args)  # type: ignore[arg-type]
                if found is not None:
                    return found
        return super().dispatch_request()
