"""Wire schemas of /v1/sources: RSS/Atom feeds polled into the corpus."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from api.extensions import services
from api.schemas import (
    MAX_CATEGORIES_PER_ARTICLE,
    Dict,
    Flag,
    List,
    StrictSchema,
    WebUrl,
    WholeNumber,
    path_parameter,
    slug,
)
from feed.sources import (
    DEFAULT_INTERVAL_SECONDS,
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    InvalidSourceUrl,
    check_url,
)
from feed.sources.addresses import Allowlist

SOURCE_ID_PATTERN = r"^[0-9a-f]{12}$"
SOURCE_ID_PARAM = path_parameter(
    "source_id", SOURCE_ID_PATTERN, "The source: the first 12 hex digits of sha1(canonical url)"
)
MAX_CATEGORY_MAP = 200


def _interval(**kwargs: Any) -> fields.Integer:
    return WholeNumber(
        validate=validate.Range(MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS),
        metadata={"description": "Seconds between polls (doubled per consecutive failure)"},
        **kwargs,
    )


def _categories(**kwargs: Any) -> fields.List:
    return List(
        slug(),
        validate=validate.Length(1, MAX_CATEGORIES_PER_ARTICLE),
        metadata={"description": "Categories every item of this feed gets"},
        **kwargs,
    )


def _category_map(**kwargs: Any) -> fields.Dict:
    return Dict(
        # Any key: tags are compared stripped and lowercased, so an odd key only ever matches
        # an odd tag, and OpenAPI 3.0 cannot state a rule on keys that clients could follow.
        keys=fields.String(),
        values=slug(),
        validate=validate.Length(max=MAX_CATEGORY_MAP),
        metadata={
            "description": "The feed's own category or tag (case-insensitive) -> our category",
            "example": {"Technology": "tech"},
        },
        **kwargs,
    )


class SourceInSchema(StrictSchema):
    url = WebUrl(
        required=True,
        validate=validate.Length(1, 2048),
        metadata={
            "description": "The feed's absolute http(s) URL, without credentials; it determines "
            "the id. A host written as a loopback, private, link-local or other non-public "
            "address is refused unless NEWSFEED_FETCH_ALLOW admits it"
        },
    )
    categories = _categories(required=True)
    poll_interval_seconds = _interval(load_default=DEFAULT_INTERVAL_SECONDS)
    enabled = Flag(load_default=True)
    category_map = _category_map(load_default=dict)

    @validates("url")
    def _fetchable(self, url: str, **_: Any) -> None:
        # Decided from the URL as written, with no lookup: polls check the resolved address.
        try:
            check_url(url, Allowlist.parse(services().settings.fetch_allow))
        except InvalidSourceUrl as error:
            raise ValidationError(str(error)) from None


class SourcePatchSchema(StrictSchema):
    categories = _categories()
    poll_interval_seconds = _interval()
    enabled = Flag()
    category_map = _category_map()


class ItemErrorSchema(StrictSchema):
    index = fields.Integer(metadata={"description": "position of the item in the feed"})
    reason = fields.String(
        metadata={"description": "invalid, too_large, missing_link, missing_title, duplicate_id"}
    )
    message = fields.String()
    guid = fields.String(allow_none=True)


class SourceStateSchema(StrictSchema):
    etag = fields.String(allow_none=True)
    last_modified = fields.String(allow_none=True)
    last_polled_at = fields.Float(allow_none=True, metadata={"description": "epoch seconds"})
    next_poll_at = fields.Float(allow_none=True, metadata={"description": "epoch seconds"})
    consecutive_failures = fields.Integer()
    last_status = fields.String(
        allow_none=True, metadata={"description": "ok, not_modified, error"}
    )
    last_error = fields.String(allow_none=True)
    last_item_errors = fields.List(fields.Nested(ItemErrorSchema))


class SourceSchema(StrictSchema):
    id = fields.String()
    url = fields.String()
    categories = fields.List(fields.String())
    poll_interval_seconds = fields.Integer()
    enabled = fields.Boolean()
    category_map = fields.Dict(keys=fields.String(), values=fields.String())
    created_at = fields.Float(metadata={"description": "epoch seconds"})
    state = fields.Nested(SourceStateSchema)


class SourceListSchema(StrictSchema):
    sources = fields.List(fields.Nested(SourceSchema))


class PollOutcomeSchema(StrictSchema):
    source_id = fields.String()
    status = fields.String(metadata={"description": "ok, not_modified, error or busy"})
    http_status = fields.Integer(allow_none=True)
    entries = fields.Integer(metadata={"description": "items in the fetched document"})
    created = fields.List(fields.String())
    updated = fields.List(fields.String())
    unchanged = fields.Integer()
    duplicates = fields.Integer(metadata={"description": "items another article already has"})
    errors = fields.List(fields.Nested(ItemErrorSchema))
    error = fields.String(allow_none=True, metadata={"description": "why the poll failed"})
    next_poll_at = fields.Float(allow_none=True)
