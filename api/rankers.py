"""/v1/rankers: the rankers an experiment's variants may name, with their parameters (admin)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.admin_schemas import RankerListSchema
from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from recommender.registry import RANKERS, parameters

blp = Blueprint("rankers", __name__, url_prefix="/v1/rankers", description="Rankers")


@blp.route("")
class Rankers(MethodView):
    @admin_only
    @blp.doc(operationId="listRankers", security=BEARER)
    @blp.response(200, RankerListSchema)
    def get(self) -> dict[str, Any]:
        """Every ranker a variant may name, with its parameters' defaults (admin)"""
        return {"rankers": [{"name": n, "params": parameters(n)} for n in sorted(RANKERS)]}
