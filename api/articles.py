"""/v1/articles: the corpus, pushed by a CMS."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.extensions import services
from api.schemas import (
    ARTICLE_ID_PARAM,
    ArticleBatchSchema,
    ArticleOutSchema,
    UpsertResultSchema,
    split_batch,
)
from feed.corpus.articles import Article, UpsertResult

blp = Blueprint("articles", __name__, url_prefix="/v1/articles", description="Article corpus")


@blp.route("")
class ArticleBatch(MethodView):
    @admin_only
    @blp.doc(operationId="upsertArticles", security=BEARER)
    @blp.arguments(ArticleBatchSchema)
    @blp.response(200, UpsertResultSchema)
    def post(self, batch: dict[str, Any]) -> UpsertResult:
        """Upsert up to 1,000 articles keyed by id; per-article outcome (admin)

        Invalid articles and duplicates of an already stored canonical URL are rejected one
        by one with a reason; the others are stored together.
        """
        return services().corpus.upsert(*split_batch(batch["articles"]))


@blp.route("/<article_id>", parameters=[ARTICLE_ID_PARAM])
class ArticleItem(MethodView):
    @blp.doc(operationId="getArticle")
    @blp.response(200, ArticleOutSchema)
    def get(self, article_id: str) -> Article:
        """Read one article, body included (public)"""
        return services().corpus.get(article_id)

    @admin_only
    @blp.doc(operationId="deleteArticle", security=BEARER)
    @blp.response(204)
    def delete(self, article_id: str) -> None:
        """Delete an article; it leaves every feed at once (admin)"""
        services().corpus.delete(article_id)
