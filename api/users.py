"""/v1/users/{user_id}/...: a reader's follows and their ranked feed."""

from __future__ import annotations

from typing import Any

from flask import Response
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
    @blp.doc(security=BEARER)
    @blp.response(200, SubscriptionsSchema)
    def get(self, user_id: str) -> dict[str, list[str]]:
        """The categories this user follows"""
        return {"categories": services().feed.follows(user_id)}

    @self_only
    @blp.doc(security=BEARER)
    @blp.arguments(SubscriptionsSchema)
    @blp.response(200, SubscriptionsSchema)
    def put(self, body: dict[str, list[str]], user_id: str) -> dict[str, list[str]]:
        """Replace the followed set (404 naming any unknown category)"""
        return {"categories": services().feed.replace_follows(user_id, body["categories"])}


@blp.route("/categories/<slug>", parameters=[USER_ID_PARAM, SLUG_PARAM])
class Follow(MethodView):
    @self_only
    @blp.doc(security=BEARER)
    @blp.response(200, SubscriptionsSchema)
    def put(self, user_id: str, slug: str) -> dict[str, list[str]]:
        """Follow one category (idempotent)"""
        return {"categories": services().feed.follow(user_id, check_slug(slug))}

    @self_only
    @blp.doc(security=BEARER)
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


@blp.route("/feed", parameters=[USER_ID_PARAM])
class Feed(MethodView):
    @self_only
    @blp.doc(security=BEARER)
    @blp.arguments(FEED_QUERY, location="query")
    @blp.response(200, FeedSchema, headers=CACHE_HEADER)
    def get(self, query: dict[str, Any], user_id: str) -> Response:
        """This user's ranked feed, one page; follow next_cursor for the next"""
        page = services().feed.page(user_id, query["limit"], query.get("cursor"))
        # Already JSON: the cached page is served as stored, without a schema dump.
        return Response(
            page.body,
            mimetype="application/json",
            headers={"X-Feed-Cache": "hit" if page.cache_hit else "miss"},
        )
