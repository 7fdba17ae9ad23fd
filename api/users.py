"""/v1/users/{user_id}/...: a reader's follows and their ranked feed."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, request
from flask.views import MethodView

from api.auth import BEARER, self_only
from api.blueprint import Blueprint
from api.extensions import services
from api.schemas import (
    SLUG_PARAM,
    USER_ID_PARAM,
    FeedQuerySchema,
    FeedSchema,
    SubscriptionsSchema,
)
from feed.ids import check_slug

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


def page_etag(body: bytes, feed_id: str) -> str:
    """Hash of the body after its per-response feed_id, so a new feed_id keeps the ETag."""
    stable = body[len(b'{"feed_id":"') + len(feed_id) + len(b'",') :]
    return hashlib.blake2b(stable, digest_size=16).hexdigest()


@blp.route("/feed", parameters=[USER_ID_PARAM])
class Feed(MethodView):
    @self_only
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
    def get(self, query: dict[str, Any], user_id: str) -> Response:
        """This user's ranked feed, one page; follow next_cursor for the next"""
        # An empty cursor is the first page: clients build `?cursor=` from a null next_cursor.
        page = services().feed.page(user_id, query["limit"], query.get("cursor") or None)
        etag = page_etag(page.body, page.feed_id)
        headers = {"X-Feed-Cache": "hit" if page.cache_hit else "miss"}
        # Only If-None-Match applies (no ranges or dates), so it is checked here rather than by
        # werkzeug's make_conditional, which costs a tenth of a cached page's time.
        if "If-None-Match" in request.headers and request.if_none_match.contains_weak(etag):
            response = Response(status=304, headers=headers)
        else:
            # Already JSON: the cached page is served as stored, without a schema dump.
            response = Response(page.body, mimetype="application/json", headers=headers)
        response.set_etag(etag)
        return response
