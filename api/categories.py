"""/v1/categories: the catalog readers pick their follows from."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.extensions import services
from api.schemas import SLUG_PARAM, CategoryListSchema, CategoryPutSchema, CategorySchema
from feed.corpus import categories

blp = Blueprint("categories", __name__, url_prefix="/v1/categories", description="Category catalog")


@blp.route("")
class CategoryList(MethodView):
    @blp.doc(operationId="listCategories")
    @blp.response(200, CategoryListSchema)
    def get(self) -> dict[str, Any]:
        """List every category with its article count (public)"""
        return {"categories": categories.list_all(services().redis)}


@blp.route("/<slug>", parameters=[SLUG_PARAM])
class CategoryItem(MethodView):
    @admin_only
    @blp.doc(operationId="putCategory", security=BEARER)
    @blp.arguments(CategoryPutSchema)
    @blp.response(200, CategorySchema)
    @blp.alt_response(201, schema=CategorySchema, description="Created")
    def put(self, body: dict[str, str], slug: str) -> tuple[categories.Category, int]:
        """Create or rename a category (admin)"""
        category, created = categories.put(services().redis, slug, body["name"])
        return category, 201 if created else 200
