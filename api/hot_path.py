"""The feed's hot path: a reader's plain page request answered before Flask is entered.

Cached feed pages are most of a feed backend's traffic, so their cost is most of its hosting
bill; for them Flask's request context, routing, hook dispatch, webargs and flask-smorest's
decorators cost more than the answer itself. This WSGI layer, in front of the Flask app,
answers ``GET /v1/users/<id>/feed`` with nothing but ``limit`` and ``cursor`` in the query
(``api.feed_query.plain_query``) by calling the same per-request pieces the Flask hooks and
view call, in the same order:

request id (``api.logs``) → Redis wait budget (``feed.storage.deadline``) → caller
(``api.auth.verify``) → rate limits (``api.limits.RateLimits``) → claims and self check
(``api.auth``) → the page (``FeedService.page``) and its reply (``api.users.feed_reply``) →
request metrics (``api.metrics``), with the headers every response carries (and CORS's).

Anything else goes to Flask untouched: another path, method or query. With CORS on
(NEWSFEED_CORS_ORIGINS), the headers flask-cors's hook would add come from its own functions
(``api.cors.CorsHeaders``). Once a piece has run,
any failure (a 401, 403 or 429, a bad cursor, Redis down, a bug) is *handed off*: Flask gets
the request with what was decided (request id, caller, clock, the rate-limit denial) and the
exception, raised by its first hook, so its error handlers and after-request hooks write the
answer exactly as for any request, and nothing is done twice (the rate limit is counted
once). tests/test_hot_path.py proves both paths give the same answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, g, request

from api.auth import Caller, check_self, claims_of, verify
from api.cors import CorsHeaders
from api.extensions import EXTENSION
from api.feed_query import plain_query
from api.limits import RateLimits, client_ip, refuse
from api.logs import REQUEST_ID_HEADER, chosen_request_id
from api.users import feed_reply
from config.logs import current_request_id
from feed.ids import is_valid_id
from feed.services import Services
from feed.storage.deadline import end_request_budget, start_request_budget
from feed.storage.ratelimit import Denial

if TYPE_CHECKING:
    from api.metrics import Metrics

HANDOFF = "newsfeed.handoff"  # the environ key of a request handed to Flask
FEED_ENDPOINT = "users.Feed"
PREFIX, SUFFIX = "/v1/users/", "/feed"  # under /v1: rate limited (api.limits), as in Flask
# Every answer of the app carries these (api/__init__.py's after-request hook adds them).
ALWAYS = {"X-Content-Type-Options": "nosniff"}
STATUS_LINES = {200: "200 OK", 304: "304 NOT MODIFIED"}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Handoff:
    """What the hot path decided before it gave a request to Flask, and why it gave it."""

    request_id: str
    started: float
    caller: Caller | None
    denial: Denial | None
    error: Exception


class FeedHotPath:
    def __init__(
        self,
        flask_app: WsgiApp,
        services: Services,
        metrics: Metrics,
        limits: RateLimits | None,
        cors: CorsHeaders | None,
        *,
        route: str,
    ) -> None:
        self.flask_app = flask_app
        self._services = services
        self._metrics = metrics
        self._limits = limits
        self._cors = cors
        self._route = route  # the metrics label, as Flask's rule names it
        self._budget = services.settings.redis_socket_timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if (
            environ["REQUEST_METHOD"] != "GET"
            or not path.startswith(PREFIX)
            or not path.endswith(SUFFIX)
        ):
            return self.flask_app(environ, start_response)
        user_id = path[len(PREFIX) : -len(SUFFIX)]
        query = plain_query(environ.get("QUERY_STRING", ""))
        # An id Flask would route differently (a slash) or refuse (invalid) is Flask's to answer.
        if query is None or not is_valid_id(user_id):
            return self.flask_app(environ, start_response)
        return self._serve(environ, start_response, user_id, *query)

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        user_id: str,
        limit: int,
        cursor: str | None,
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = chosen_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        logged_as = current_request_id.set(request_id)
        start_request_budget(self._budget)
        caller: Caller | None = None
        denial: Denial | None = None
        try:
            caller = verify(self._services.tokens, environ.get("HTTP_AUTHORIZATION", ""))
            if self._limits is not None:
                denial = self._limits.check(client_ip(environ.get("REMOTE_ADDR")), caller.claims)
                if denial is not None:
                    refuse(denial)
            check_self(claims_of(caller), user_id)
            page = self._services.feed.page(user_id, limit, cursor)
            status, headers, body = feed_reply(page, environ.get("HTTP_IF_NONE_MATCH"))
            headers.update(ALWAYS)
            headers[REQUEST_ID_HEADER] = request_id
            if status == 200:
                headers["Content-Length"] = str(len(body))
            reply = list(headers.items())
            if self._cors is not None:
                reply += self._cors.for_get(environ)
            self._metrics.observe_request(self._route, "GET", status, time.perf_counter() - started)
        except Exception as error:  # noqa: BLE001 - Flask answers it, as it would any error
            environ[HANDOFF] = Handoff(request_id, started, caller, denial, error)
            return self.flask_app(environ, start_response)
        finally:
            end_request_budget()
            current_request_id.reset(logged_as)
        start_response(STATUS_LINES[status], reply)
        return (body,)


def take_handoff() -> None:
    """Flask's first before-request hook: a handed-off request resumes where the hot path
    stopped (its id, caller and clock, the rate limit already counted) and its error is
    raised here, to be answered by the app's error handlers and after-request hooks."""
    handoff: Handoff | None = request.environ.get(HANDOFF)
    if handoff is None:
        return
    g.request_id = handoff.request_id
    current_request_id.set(handoff.request_id)
    g.request_started = handoff.started
    if handoff.caller is not None:
        g.caller = handoff.caller
    if handoff.denial is not None:
        g.rate_limit_denial = handoff.denial
    raise handoff.error


def install(
    app: Flask, metrics: Metrics, limits: RateLimits | None, cors: CorsHeaders | None
) -> None:
    """Put the hot path in front of the app's WSGI callable (inside ProxyFix, which is
    installed after it), and its handoff hook before every other hook."""
    route = next(rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == FEED_ENDPOINT)
    app.wsgi_app = FeedHotPath(  # type: ignore[method-assign]
        app.wsgi_app, app.extensions[EXTENSION], metrics, limits, cors, route=route
    )
    app.before_request_funcs.setdefault(None, []).insert(0, take_handoff)
