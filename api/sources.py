"""/v1/sources: RSS/Atom feeds polled into the corpus (admin only)."""

from __future__ import annotations

from typing import Any

from flask.blueprints import BlueprintSetupState
from flask.views import MethodView

from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.extensions import EXTENSION, services
from api.source_schemas import (
    SOURCE_ID_PARAM,
    PollOutcomeSchema,
    SourceInSchema,
    SourceListSchema,
    SourcePatchSchema,
    SourceSchema,
)
from feed import sources
from feed.sources import Source, polling
from feed.sources.polling import PollOutcome, fetch_options

blp = Blueprint("sources", __name__, url_prefix="/v1/sources", description="RSS/Atom sources")


@blp.record_once
def _check_fetch_allow(state: BlueprintSetupState) -> None:
    """A malformed NEWSFEED_FETCH_ALLOW stops the app at start, not at the first poll."""
    fetch_options(state.app.extensions[EXTENSION].settings)


@blp.route("")
class SourceList(MethodView):
    @admin_only
    @blp.doc(operationId="createSource", security=BEARER)
    @blp.arguments(SourceInSchema)
    @blp.response(201, SourceSchema)
    def post(self, body: dict[str, Any]) -> Source:
        """Register a feed; its id derives from the canonical URL, so each feed once (admin)

        Every item gets the source's `categories`, plus the categories its own tags map to
        through `category_map`. An enabled source is due for its first poll at once.
        """
        return sources.create(services().redis, **body)

    @admin_only
    @blp.doc(operationId="listSources", security=BEARER)
    @blp.response(200, SourceListSchema)
    def get(self) -> dict[str, Any]:
        """List every source with its poll state (admin)"""
        return {"sources": sources.list_all(services().redis)}


@blp.route("/<source_id>", parameters=[SOURCE_ID_PARAM])
class SourceItem(MethodView):
    @admin_only
    @blp.doc(operationId="getSource", security=BEARER)
    @blp.response(200, SourceSchema)
    def get(self, source_id: str) -> Source:
        """Read one source with its poll state and last errors (admin)"""
        return sources.get(services().redis, source_id)

    @admin_only
    @blp.doc(operationId="updateSource", security=BEARER)
    @blp.arguments(SourcePatchSchema)
    @blp.response(200, SourceSchema)
    def patch(self, changes: dict[str, Any], source_id: str) -> Source:
        """Change categories, category_map, poll interval or enabled; the url is fixed (admin)"""
        return sources.update(services().redis, source_id, changes)

    @admin_only
    @blp.doc(operationId="deleteSource", security=BEARER)
    @blp.response(204)
    def delete(self, source_id: str) -> None:
        """Stop polling a source and forget it; its articles stay (admin)"""
        sources.delete(services().redis, source_id)


@blp.route("/<source_id>/poll", parameters=[SOURCE_ID_PARAM])
class SourcePoll(MethodView):
    @admin_only
    @blp.doc(operationId="pollSource", security=BEARER)
    @blp.response(200, PollOutcomeSchema)
    def post(self, source_id: str) -> PollOutcome:
        """Poll a source now (even a disabled one) and answer the outcome (admin)

        A failed fetch answers 200 with `status: error` and the reason; the source backs off.
        """
        svc = services()
        return polling.poll(
            svc.redis, source_id, fetch_options(svc.settings), upsert=svc.corpus.upsert
        )
