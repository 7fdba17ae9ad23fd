"""/v1/jobs: background jobs running, queued and failed; a reindex on request (admin)."""

from __future__ import annotations

from typing import Any

import redis
from flask import current_app
from flask.views import MethodView

from api.admin_schemas import JobsSchema, ReindexSchema
from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.extensions import services
from feed.exceptions import ServiceUnavailable
from feed.jobs import manual, open_queue, status
from feed.jobs.manual import ReindexRequest

QUEUE_EXTENSION = "newsfeed.queue"
LISTED_JOBS = 20  # per state and queue: a page an operator reads, not an export

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Background jobs")


def queue_redis() -> redis.Redis:
    """The job queue's connection, opened by the first request that needs it."""
    found: redis.Redis | None = current_app.extensions.get(QUEUE_EXTENSION)
    if found is None:
        try:
            found = open_queue(services().settings)
        except RuntimeError as exc:  # a cluster without NEWSFEED_QUEUE_URL: no queue to read
            raise ServiceUnavailable(str(exc)) from None
        current_app.extensions[QUEUE_EXTENSION] = found
    return found


@blp.route("")
class Jobs(MethodView):
    @admin_only
    @blp.doc(operationId="listJobs", security=BEARER)
    @blp.response(200, JobsSchema)
    def get(self) -> dict[str, Any]:
        """Jobs per state and live workers; the running, queued and newest failed jobs (admin)"""
        connection = queue_redis()
        return {
            "counts": status.queue_depths(connection),
            "active": status.active_jobs(connection, LISTED_JOBS),
            "failed": status.failed_jobs(connection, LISTED_JOBS),
        }


@blp.route("/reindex")
class Reindex(MethodView):
    @admin_only
    @blp.doc(operationId="reindexNow", security=BEARER)
    @blp.response(202, ReindexSchema)
    def post(self) -> ReindexRequest:
        """Fit and publish a model now, even if the current one covers the corpus (admin)

        Answers at once: in queue mode a worker runs the job (see listJobs); in thread mode
        this service fits in the background. Feeds use the new model once it is published.
        """
        svc = services()
        mode = svc.settings.reindex_mode
        return manual.reindex_now(mode, svc.keeper, queue_redis() if mode == "queue" else None)
