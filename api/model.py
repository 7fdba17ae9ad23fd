"""/v1/model: the model that ranks feeds, its age and its lag behind the corpus (admin)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.admin_schemas import ModelSchema
from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.extensions import services
from feed.model import overview

blp = Blueprint("model", __name__, url_prefix="/v1/model", description="The ranking model")


@blp.route("")
class Model(MethodView):
    @admin_only
    @blp.doc(operationId="getModel", security=BEARER)
    @blp.response(200, ModelSchema)
    def get(self) -> dict[str, Any]:
        """The model ranking feeds: version, age, articles, lag behind the corpus (admin)"""
        svc = services()
        found = overview.describe(svc.redis, svc.keeper)
        return {
            **vars(found),
            "max_lag_seconds": svc.settings.max_model_lag_seconds,
            "reindex_mode": svc.settings.reindex_mode,
        }
