"""/v1/events: what readers saw, clicked, read and hid."""

from __future__ import annotations

import time
from typing import Any

from flask import g
from flask.views import MethodView

from api.auth import BEARER, require_self, signed_in
from api.blueprint import Blueprint
from api.extensions import services
from api.schemas import EventBatchSchema, EventResultSchema, InvalidItem, split_events
from feed.readers.events import EventResult

blp = Blueprint("events", __name__, url_prefix="/v1/events", description="Reader events")


@blp.route("")
class Events(MethodView):
    @signed_in
    @blp.doc(operationId="recordEvents", security=BEARER)
    @blp.arguments(EventBatchSchema)
    @blp.response(202, EventResultSchema)
    def post(self, batch: dict[str, Any]) -> EventResult:
        """Record up to 500 events of the token's user; per-event outcome

        Events about unknown articles, or of unknown types, are rejected one by one with a
        reason; the rest are kept. Any event for another user refuses the whole batch (403).
        """
        # Every user an event names, valid or not: one naming another user refuses the batch.
        require_self(
            user
            for item in batch["events"]
            if (user := item.named("user_id") if isinstance(item, InvalidItem) else item.user_id)
        )
        accepted, rejected = split_events(batch["events"])
        svc = services()
        result = svc.events.record(accepted, rejected, time.time())[0]
        if result.accepted:
            svc.feed.seen({event.user_id for _, event in accepted})
        g.events_recorded = result  # counted by api/metrics.py as the response leaves
        return result
