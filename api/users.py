"""/v1/users/{user_id}/...: a reader's follows and their ranked feed."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.http import parse_etags, quote_etag

from api.auth import BEARER, admin_only, check_self, current_claims, self_only
from api.blueprint import Blueprint
from api.errors import ErrorSchema
from api.explain_schemas import ReaderQuerySchema, ReaderSchema
from api.extensions import services
from api.feed_query import FeedQuerySchema
from api.schemas import SLUG_PARAM, USER_ID_PARAM, FeedSchema, SubscriptionsSchema
from feed.ids import check_id, check_slug
from feed.serving.service import FeedPage
from recommender.registry import make_ranker

blp = Blueprint(
    "users", __name__, url_prefix="/v1/users/<user_id>", description="Follows and feeds"
)


@blp.route("/categories", parameters=[USER_ID_PARAM])
class Follows(MethodView):
    @self_only
    @blp.doc(operationId="listFollows", security=BEARER)
    @blp.response(200, SubscriptionsSchema)
    def get(self, user_id: str) -> dict[str, list[str]]:
        """The categories this user follows"""
        return {"categories": services().feed.follows(user_id)}

    @self_only
    @blp.doc(operationId="replaceFollows", security=BEARER)
    @blp.arguments(SubscriptionsSchema)
    @blp.response(200, SubscriptionsSchema)
    def put(self, body: dict[str, list[str]], user_id: str) -> dict[str, list[str]]:
        """Replace the followed set (404 naming any unknown category)"""
        return {"categories": services().feed.replace_follows(user_id, body["categories"])}


@blp.route("/categories/<slug>", parameters=[USER_ID_PARAM, SLUG_PARAM])
class Follow(MethodView):
    @self_only
    @blp.doc(operationId="followCategory", security=BEARER)
    @blp.response(200, SubscriptionsSchema)
    def put(self, user_id: str, slug: str) -> dict[str, list[str]]:
        """Follow one category (idempotent)"""
        return {"categories": services().feed.follow(user_id, check_slug(slug))}

    @self_only
    @blp.doc(operationId="unfollowCategory", security=BEARER)
    @blp.response(200, SubscriptionsSchema)
    def delete(self, user_id: str, slug: str) -> dict[str, list[str]]:
        """Unfollow one category (idempotent)"""
        return {"categories": services().feed.unfollow(user_id, check_slug(slug))}


# Instances, not classes: webargs would build a new schema object on every request.
FEED_QUERY = FeedQuerySchema()
CACHE_HEADER = {
    "X-Feed-Cache": {
        "description": "Whether the page came from the cache",
        "required": True,
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    }
}
FEED_HEADERS = {
    **CACHE_HEADER,
    "ETag": {
        "description": (
            "Strong validator of the page's items and next_cursor (not of feed_id); send it "
            "back as If-None-Match to get a 304 while the page is unchanged"
        ),
        "required": True,
        "schema": {"type": "string"},
    },
}


@blp.route("/feed", parameters=[USER_ID_PARAM])
class Feed(MethodView):
    @blp.doc(operationId="getFeed", security=BEARER)
    @blp.arguments(FEED_QUERY, location="query")
    @blp.response(200, FeedSchema, headers=FEED_HEADERS)
    @blp.alt_response(
        304,
        description=(
            "Not modified: If-None-Match names this page's current ETag; the body is empty "
            "(reuse the cached page, whose feed_id still joins events)"
        ),
        headers=FEED_HEADERS,
    )
    @blp.alt_response(
        400,
        schema=ErrorSchema,
        description="ranker without explain=true, or explain=true with a cursor",
    )
    @blp.alt_response(
        403,
        schema=ErrorSchema,
        description=(
            "The token is another reader's, or a reader's asking explain=true (admins only)"
        ),
    )
    def get(self, query: dict[str, Any], user_id: str) -> Response:
        """This user's ranked feed, one page; follow next_cursor for the next"""
        if query["explain"] or "ranker" in query:
            return inspected_feed(user_id, query)
        # An empty cursor is the first page: clients build `?cursor=` from a null next_cursor.
        return reader_feed(user_id, query["limit"], query.get("cursor") or None)


def reader_feed(user_id: str, limit: int, cursor: str | None) -> Response:
    """A reader's own page, from the cache when it can be: 200, or 304 for If-None-Match."""
    claims = current_claims()
    check_self(claims, check_id(user_id, "user id"))
    page = services().feed.page(user_id, limit, cursor)
    status, headers, body = feed_reply(page, request.headers.get("If-None-Match"))
    return Response(body, status=status, headers=headers)


def feed_reply(page: FeedPage, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
    """A page as HTTP (status, headers, body), for this view and the hot path (api/hot_path.py).

    Only If-None-Match applies (no ranges or dates), so it is checked here rather than by
    werkzeug's make_conditional, which costs a tenth of a cached page's time.
    """
    headers = {"X-Feed-Cache": "hit" if page.cache_hit else "miss", "ETag": quote_etag(page.etag)}
    if if_none_match and parse_etags(if_none_match).contains_weak(page.etag):
        return 304, headers, b""
    # Already JSON: the cached page is served as stored, without a schema dump.
    return 200, {"Content-Type": "application/json", **headers}, page.body


def inspected_feed(user_id: str, query: dict[str, Any]) -> Response:
    """explain=true (admins: any reader), or a refusal of what only it may ask for."""
    # Not @self_only: an admin may inspect any reader's feed, and only with explain=true.
    claims = current_claims()
    check_id(user_id, "user id")
    if not query["explain"]:
        abort(400, message="ranker needs explain=true")
    if not claims.admin:
        abort(403, message="explain=true needs a token with the 'admin' claim")
    if query.get("cursor"):
        abort(400, message="explain=true shows the first page only: drop the cursor")
    return explained_feed(user_id, query)


def explained_feed(user_id: str, query: dict[str, Any]) -> Response:
    """The feed inspector's page: ranked afresh with each item's parts, never cached."""
    ranker = make_ranker(query["ranker"]) if "ranker" in query else None
    page = services().feed.explain(user_id, query["limit"], ranker)
    response = jsonify(
        {
            "feed_id": uuid.uuid4().hex,  # joins nothing: no exposure was recorded
            "experiment": page.experiment,
            "variant": page.variant,
            "ranker": page.ranker,
            "model_version": page.model_version,
            "items": page.items,
            "next_cursor": None,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blp.route("/profile", parameters=[USER_ID_PARAM])
class Reader(MethodView):
    @admin_only
    @blp.doc(operationId="getReaderProfile", security=BEARER)
    @blp.arguments(ReaderQuerySchema, location="query")
    @blp.response(200, ReaderSchema)
    def get(self, query: dict[str, int], user_id: str) -> dict[str, Any]:
        """A reader's follows and last reads, for the feed inspector (admin)"""
        return services().feed.reader(check_id(user_id, "user id"), query["reads"])
