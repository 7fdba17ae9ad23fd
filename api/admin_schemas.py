"""Wire schemas of /v1/model, /v1/jobs and /v1/rankers: what operators (and the console) read."""

from __future__ import annotations

from datetime import datetime

from marshmallow import fields

from api.schemas import StrictSchema
from feed.corpus.articles import iso

EPOCH = {"description": "epoch seconds"}


def _when(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


class ModelSchema(StrictSchema):
    corpus_version = fields.Integer(required=True)
    articles = fields.Integer(required=True, metadata={"description": "in the corpus now"})
    model_version = fields.Integer(
        required=True, metadata={"description": "the model that ranks feeds; 0: none fitted yet"}
    )
    model_corpus_version = fields.Integer(
        required=True, allow_none=True, metadata={"description": "the corpus it was fitted on"}
    )
    model_articles = fields.Integer(required=True, allow_none=True)
    fitted_at = fields.Float(required=True, allow_none=True, metadata=EPOCH)
    age_seconds = fields.Float(required=True, allow_none=True, metadata={"description": "since"})
    lag_versions = fields.Integer(
        required=True, metadata={"description": "corpus versions whose writes feeds rank without"}
    )
    lag_seconds = fields.Float(required=True, metadata={"description": "for how long; 0: none"})
    max_lag_seconds = fields.Float(
        required=True, metadata={"description": "past this /readyz says degraded; 0: never"}
    )
    reindex_mode = fields.String(
        required=True, metadata={"description": "who fits: queue (a worker) or thread"}
    )
    learned = fields.Dict(
        required=True,
        metadata={"description": "the learned ranker's serving model and latest training"},
    )


class JobSchema(StrictSchema):
    id = fields.String(required=True)
    queue = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "started or queued"})
    description = fields.String(required=True)
    enqueued_at = fields.Function(
        lambda j: _when(j.enqueued_at), required=True, allow_none=True, metadata={"type": "string"}
    )
    started_at = fields.Function(
        lambda j: _when(j.started_at), required=True, allow_none=True, metadata={"type": "string"}
    )


class FailedJobSchema(StrictSchema):
    id = fields.String(required=True)
    description = fields.String(required=True)
    ended_at = fields.Function(
        lambda j: _when(j.ended_at), required=True, allow_none=True, metadata={"type": "string"}
    )
    error = fields.String(required=True, metadata={"description": "the exception's last line"})


class JobsSchema(StrictSchema):
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={
            "description": "jobs per state over every queue (queued, started, scheduled, "
            "deferred, failed, finished) and the live workers"
        },
    )
    active = fields.List(
        fields.Nested(JobSchema),
        required=True,
        metadata={"description": "running, then queued, in the order workers take them"},
    )
    failed = fields.List(
        fields.Nested(FailedJobSchema),
        required=True,
        metadata={"description": "the newest failed jobs (out of retries), newest first"},
    )


class ReindexSchema(StrictSchema):
    mode = fields.String(
        required=True, metadata={"description": "queue: a worker fits; thread: this service"}
    )
    job_id = fields.String(
        required=True, allow_none=True, metadata={"description": "the queued job (queue mode)"}
    )


class RankerSchema(StrictSchema):
    name = fields.String(required=True)
    params = fields.Dict(
        keys=fields.String(),
        values=fields.Float(allow_none=True),
        required=True,
        metadata={"description": "each tunable parameter with its default (null: off)"},
    )


class RankerListSchema(StrictSchema):
    rankers = fields.List(fields.Nested(RankerSchema), required=True)
