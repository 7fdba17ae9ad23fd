"""Wire schemas: what clients send and receive (the OpenAPI document is generated from these)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sized
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, utils, validate

from feed.corpus.articles import Article, Rejection, iso
from feed.corpus.ingest import MAX_BATCH
from feed.ids import ID_PATTERN, ID_RULE, SLUG_PATTERN, SLUG_RULE
from feed.readers.events import KINDS, Event, EventRejection
from feed.readers.events import MAX_BATCH as MAX_EVENTS

T = TypeVar("T")
R = TypeVar("R")
MAX_FOLLOWED = 200  # categories one user may follow; bounds the subscription set
MAX_CATEGORIES_PER_ARTICLE = 10
FUTURE_TOLERANCE = timedelta(hours=1)  # clock skew between the CMS or a device and us
# Older publish dates are typos; it also keeps every stored date a four-digit year that reads
# back (year 1 with an offset overflows, and years below 1000 do not round-trip as ISO 8601).
EARLIEST_PUBLISHED = datetime(1900, 1, 1, tzinfo=UTC)
MAX_EVENT_AGE = timedelta(days=7)  # offline devices upload late, but not forever
NO_CONTROL_CHARS = validate.Regexp(
    r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters"
)


class StrictSchema(Schema):
    """Unknown fields are an error: a typo in a field name must not be silently dropped."""

    class Meta:
        unknown = RAISE


class FullMatch(validate.Regexp):
    """Regexp over the whole value: `$` alone would let a trailing newline into Redis keys.

    A Regexp subclass, so the OpenAPI document still shows the pattern.
    """

    def __init__(self, pattern: str, error: str) -> None:
        super().__init__(pattern, error=error)
        self._whole = re.compile(pattern)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self._whole.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class LengthFirst(fields.Field):
    """A List or Dict whose Length validators run before its items are loaded: a 10 MB body
    of a million items is refused at once, not after minutes spent validating each one."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        self.check_length(value)
        return super()._deserialize(value, attr, data, **kwargs)

    def check_length(self, value: Any) -> None:
        if isinstance(value, Sized) and not isinstance(value, str | bytes):
            for validator in self.validators:
                if isinstance(validator, validate.Length):
                    validator(value)


class List(LengthFirst, fields.List):
    pass


class Dict(LengthFirst, fields.Dict):
    pass


class WholeNumber(fields.Integer):
    """A JSON integer: 1.5 is refused rather than truncated to 1, as are "12" and true."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Flag(fields.Boolean):
    """A JSON true or false, not marshmallow's "yes", "on" or 1."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class WebUrl(fields.Url):
    """An absolute http(s) URL whose port, if any, is one a server can listen on (a port past
    65535 parses, then breaks every later use of the URL)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(schemes={"http", "https"}, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        url: str = super()._deserialize(value, attr, data, **kwargs)
        try:
            port = urlsplit(url.strip()).port
        except ValueError:
            port = 0
        if port == 0:
            raise ValidationError("the port must be a number from 1 to 65535")
        return url


def ident(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(ID_PATTERN, error=f"must be {ID_RULE}"), **kwargs)


def slug(**kwargs: Any) -> fields.String:
    return fields.String(validate=FullMatch(SLUG_PATTERN, error=f"must be {SLUG_RULE}"), **kwargs)


def path_parameter(name: str, pattern: str, description: str) -> dict[str, Any]:
    """OpenAPI doc of a path parameter: the charset its view accepts (400 invalid_id outside)."""
    return {
        "in": "path",
        "name": name,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


USER_ID_PARAM = path_parameter("user_id", ID_PATTERN, f"The reader: {ID_RULE}")
ARTICLE_ID_PARAM = path_parameter("article_id", ID_PATTERN, f"The article: {ID_RULE}")
SLUG_PARAM = path_parameter("slug", SLUG_PATTERN, f"The category: {SLUG_RULE}")
EXPERIMENT_NAME_PARAM = path_parameter(
    "name", SLUG_PATTERN, f"The experiment: {SLUG_RULE}; any other name is not found (404)"
)


class CategorySchema(StrictSchema):
    slug = slug(dump_only=True)
    name = fields.String(dump_only=True)
    article_count = fields.Integer(dump_only=True)


class CategoryListSchema(StrictSchema):
    categories = fields.List(fields.Nested(CategorySchema), dump_only=True)


class CategoryPutSchema(StrictSchema):
    name = fields.String(
        required=True,
        validate=[validate.Length(1, 100), NO_CONTROL_CHARS],
        metadata={"example": "Israel-Hamas War"},
    )


def in_utc(moment: datetime, field: str) -> datetime:
    """The moment in UTC; a date at the edge of the calendar whose offset moves it past year
    1 or 9999 is a validation error, not an OverflowError."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError("is outside the supported range of dates", field) from None


class ArticleInSchema(StrictSchema):
    id = ident(required=True)
    url = WebUrl(required=True, validate=validate.Length(max=2048))
    title = fields.String(required=True, validate=validate.Length(1, 500))
    summary = fields.String(required=True, validate=validate.Length(0, 5000))
    body = fields.String(load_default="", validate=validate.Length(max=100_000))
    categories = List(
        slug(), required=True, validate=validate.Length(1, MAX_CATEGORIES_PER_ARTICLE)
    )
    published_at = fields.AwareDateTime(
        required=True,
        format="iso",
        default_timezone=UTC,
        metadata={"description": "ISO 8601; without an offset it is taken as UTC"},
    )
    source = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))

    @post_load
    def make_article(self, data: dict[str, Any], **_: Any) -> Article:
        published = in_utc(data["published_at"], "published_at")
        if published > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValidationError("must not be more than an hour in the future", "published_at")
        if published < EARLIEST_PUBLISHED:
            raise ValidationError("must not be before 1900", "published_at")
        return Article(
            id=data["id"],
            url=data["url"],
            title=data["title"],
            summary=data["summary"],
            categories=tuple(dict.fromkeys(data["categories"])),
            published_at=published,
            source=data["source"],
            body=data["body"],
        )


class InvalidItem:
    def __init__(self, index: int, item: Any, messages: Any) -> None:
        self.index = index
        self._item = item if isinstance(item, dict) else {}
        self.id = self.named("id")
        self.messages = messages

    def named(self, field: str) -> str | None:
        """The item's value for ``field`` when it is a string (it failed validation as a
        whole, but may still say whom it is about)."""
        value = self._item.get(field)
        return value if isinstance(value, str) else None


class PerItemList(List):
    """A list whose items are validated one by one: a bad item is reported, not fatal."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> list[Any]:
        if not utils.is_collection(value):
            raise self.make_error("invalid")
        self.check_length(value)
        loaded: list[Any] = []
        for index, item in enumerate(value):
            try:
                loaded.append(self.inner.deserialize(item, **kwargs))
            except ValidationError as error:
                loaded.append(InvalidItem(index, item, error.messages))
        return loaded


class ArticleBatchSchema(StrictSchema):
    articles = PerItemList(
        fields.Nested(ArticleInSchema), required=True, validate=validate.Length(1, MAX_BATCH)
    )


def split_items(
    items: list[Any], valid: type[T], reject: Callable[[InvalidItem], R]
) -> tuple[list[tuple[int, T]], list[R]]:
    """Valid items with their request index, and a rejection for each invalid one."""
    accepted = [(i, item) for i, item in enumerate(items) if isinstance(item, valid)]
    rejected = [reject(item) for item in items if isinstance(item, InvalidItem)]
    return accepted, rejected


def split_batch(items: list[Any]) -> tuple[list[tuple[int, Article]], list[Rejection]]:
    return split_items(
        items, Article, lambda e: Rejection(e.id, "invalid", _flat(e.messages), e.index)
    )


def _flat(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in messages.items())
    if isinstance(messages, list):
        return " ".join(_flat(m) for m in messages)
    return str(messages)


class RejectionSchema(StrictSchema):
    index = fields.Integer(metadata={"description": "position in the request's list"})
    id = fields.String(allow_none=True)
    reason = fields.String(metadata={"description": "invalid, duplicate_id or duplicate_url"})
    message = fields.String()
    duplicate_of = fields.String(allow_none=True)


class UpsertResultSchema(StrictSchema):
    created = fields.List(fields.String())
    updated = fields.List(fields.String())
    rejected = fields.List(fields.Nested(RejectionSchema))


class ArticleOutSchema(StrictSchema):
    id = fields.String()
    url = fields.String()
    title = fields.String()
    summary = fields.String()
    body = fields.String()
    categories = fields.List(fields.String())
    published_at = fields.Function(
        lambda article: iso(article.published_at),
        metadata={"type": "string", "description": "ISO 8601, UTC"},
    )
    source = fields.String(allow_none=True)


class SubscriptionsSchema(StrictSchema):
    categories = List(slug(), required=True, validate=validate.Length(max=MAX_FOLLOWED))


class ExplainPartSchema(StrictSchema):
    name = fields.String(required=True, metadata={"example": "follow_similarity"})
    value = fields.Float(required=True)


class ExplainSchema(StrictSchema):
    total = fields.Float(required=True, metadata={"description": "The unrounded score"})
    parts = fields.List(
        fields.Nested(ExplainPartSchema),
        required=True,
        metadata={"description": "What the ranker added up to the score: they sum to total"},
    )
    factors = fields.List(
        fields.Nested(ExplainPartSchema),
        required=True,
        metadata={"description": "Inputs behind the parts that are not addends (freshness, ...)"},
    )


# The feed is rendered as bytes (feed/serving/service.py), not dumped: `required` documents that
# every member is always there, so the fuzz test holds the renderer to this schema.
class FeedItemSchema(StrictSchema):
    id = fields.String(required=True)
    title = fields.String(required=True)
    url = fields.String(required=True)
    summary = fields.String(required=True)
    categories = fields.List(fields.String(), required=True)
    published_at = fields.String(required=True, metadata={"description": "ISO 8601, UTC"})
    source = fields.String(required=True, allow_none=True)
    score = fields.Float(required=True)
    reason = fields.String(required=True, metadata={"example": "Because you follow Syria"})
    explain = fields.Nested(ExplainSchema, metadata={"description": "Only with explain=true"})


class FeedSchema(StrictSchema):
    feed_id = fields.String(
        required=True, metadata={"description": "This response's id; send it with events"}
    )
    experiment = fields.String(
        required=True, allow_none=True, metadata={"description": "Experiment served, or null"}
    )
    variant = fields.String(
        required=True, allow_none=True, metadata={"description": "Its variant, or null"}
    )
    items = fields.List(fields.Nested(FeedItemSchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "null on the last page"}
    )
    ranker = fields.String(metadata={"description": "Only with explain=true: the ranker used"})
    model_version = fields.Integer(metadata={"description": "Only with explain=true"})


class EventInSchema(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(KINDS))
    user_id = ident(required=True)
    article_id = ident(required=True)
    feed_id = fields.String(validate=validate.Length(1, 64), load_default=None)
    position = WholeNumber(validate=validate.Range(0, 10_000), load_default=None)
    ts = fields.AwareDateTime(
        format="iso",
        default_timezone=UTC,
        load_default=None,
        metadata={"description": "When it happened (ISO 8601); default: when received"},
    )
    dwell_ms = WholeNumber(validate=validate.Range(0, 86_400_000), load_default=None)

    @post_load
    def make_event(self, data: dict[str, Any], **_: Any) -> Event:
        now = datetime.now(UTC)
        when = in_utc(data["ts"], "ts") if data["ts"] else now
        if when > now + FUTURE_TOLERANCE:
            raise ValidationError("must not be more than an hour in the future", "ts")
        if when < now - MAX_EVENT_AGE:
            raise ValidationError(f"must be within the last {MAX_EVENT_AGE.days} days", "ts")
        return Event(
            type=data["type"],
            user_id=data["user_id"],
            article_id=data["article_id"],
            ts=when.timestamp(),
            feed_id=data["feed_id"],
            position=data["position"],
            dwell_ms=data["dwell_ms"],
        )


class EventBatchSchema(StrictSchema):
    events = PerItemList(
        fields.Nested(EventInSchema), required=True, validate=validate.Length(1, MAX_EVENTS)
    )


def split_events(items: list[Any]) -> tuple[list[tuple[int, Event]], list[EventRejection]]:
    return split_items(
        items, Event, lambda e: EventRejection(e.index, "invalid", _flat(e.messages))
    )


class EventRejectionSchema(StrictSchema):
    index = fields.Integer()
    reason = fields.String(metadata={"description": "invalid or unknown_article"})
    message = fields.String()


class EventResultSchema(StrictSchema):
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(EventRejectionSchema))
