"""Wire schemas of the feed inspector's reader view (the explained feed is in api.schemas)."""

from __future__ import annotations

from marshmallow import fields, validate

from api.schemas import StrictSchema

# Reads the inspector shows by default, and at most (the history keeps 200).
DEFAULT_READS = 10
MAX_READS = 50


class ReaderQuerySchema(StrictSchema):
    reads = fields.Integer(load_default=DEFAULT_READS, validate=validate.Range(0, MAX_READS))


class ReadSchema(StrictSchema):
    id = fields.String(required=True)
    title = fields.String(
        required=True, allow_none=True, metadata={"description": "null: since deleted"}
    )
    at = fields.String(required=True, metadata={"description": "ISO 8601, UTC"})


class ReaderSchema(StrictSchema):
    user_id = fields.String(required=True)
    categories = fields.List(
        fields.String(), required=True, metadata={"description": "What they follow"}
    )
    reads = fields.List(
        fields.Nested(ReadSchema),
        required=True,
        metadata={"description": "Their last clicks and reads, newest first"},
    )
    reads_total = fields.Integer(
        required=True, metadata={"description": "Reads the ranker sees (the last 200 at most)"}
    )
