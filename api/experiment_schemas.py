"""Wire schemas of /v1/experiments: definitions in, definitions and results out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate

from api.schemas import Dict, FullMatch, List, StrictSchema, ident, slug
from feed.corpus.articles import iso
from feed.experiments.assignment import (
    DEFAULT_SURFACE,
    MAX_VARIANTS,
    MIN_VARIANTS,
    Experiment,
    Variant,
)
from feed.experiments.exposures import INTERVALS, MAX_BUCKETS
from feed.experiments.results import SRM_ALPHA, SRM_METHOD
from feed.ids import SLUG_PATTERN, SLUG_RULE
from recommender.registry import RANKERS

# apispec documents Range(min_inclusive=False) as an inclusive minimum; OpenAPI 3.0 says so here.
EXCLUSIVE_MINIMUM = {"exclusiveMinimum": True}
TIMESTAMP = {"type": "string", "description": "ISO 8601; null until it happens"}
# A ranker takes a handful of parameters; the bound keeps a definition (and the message naming
# its unknown parameters) small.
MAX_PARAMS = 32


class Number(fields.Float):
    """A JSON number: unlike Float, the string "0.5" is refused, as are NaN and infinities."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> float:
        if isinstance(value, str | bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _when(attribute: str) -> Callable[[Experiment], str | None]:
    def dump(experiment: Experiment) -> str | None:
        value: float | None = getattr(experiment, attribute)
        if value is None:
            return None
        return iso(datetime.fromtimestamp(value, UTC))

    return dump


class VariantInSchema(StrictSchema):
    name = slug(required=True, metadata={"example": "control"})
    ranker = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        metadata={
            "description": "the ranker (422 invalid_experiment for any other)",
            "enum": sorted(RANKERS),
            "example": "tfidf",
        },
    )
    params = Dict(
        keys=fields.String(validate=validate.Length(1, 64)),
        values=Number(),
        load_default=dict,
        validate=validate.Length(max=MAX_PARAMS),
        metadata={"description": 'ranker parameters (numbers), e.g. {"mmr_lambda": 0.7}'},
    )
    weight = Number(
        required=True,
        validate=validate.Range(min=0, min_inclusive=False),
        metadata={
            "description": "relative share of the experiment's traffic, > 0",
            **EXCLUSIVE_MINIMUM,
        },
    )


class ExperimentInSchema(StrictSchema):
    name = slug(required=True, metadata={"example": "mmr-vs-tfidf"})
    variants = List(
        fields.Nested(VariantInSchema),
        required=True,
        validate=validate.Length(MIN_VARIANTS, MAX_VARIANTS),
        metadata={"description": "the first variant is the control"},
    )
    traffic = Number(
        required=True,
        validate=validate.Range(min=0, max=1, min_inclusive=False),
        metadata={
            "description": "share of the namespace's users in the experiment, (0, 1]",
            **EXCLUSIVE_MINIMUM,
        },
    )
    salt = ident(
        load_default=None,
        metadata={"description": "hash salt; default: the experiment's name"},
    )
    surface = fields.String(
        load_default=DEFAULT_SURFACE,
        validate=FullMatch(SLUG_PATTERN, error=f"must be {SLUG_RULE}"),
    )
    namespace = fields.Tuple(
        (Number(validate=validate.Range(0, 1)), Number(validate=validate.Range(0, 1))),
        load_default=None,
        metadata={
            "description": "[start, end) share of the surface's users this experiment may use, "
            "start < end; experiments in disjoint namespaces run together. Default [0, 1]",
            # A Tuple has no OpenAPI 3.0 form of its own: two numbers in [0, 1].
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 2,
            "maxItems": 2,
        },
    )

    @post_load
    def make_experiment(self, data: dict[str, Any], **_: Any) -> Experiment:
        namespace = data["namespace"] or (0.0, 1.0)
        if not namespace[0] < namespace[1]:
            raise ValidationError("start must be below end", "namespace")
        return Experiment(
            name=data["name"],
            variants=tuple(
                Variant(v["name"], v["ranker"], v["params"], v["weight"]) for v in data["variants"]
            ),
            traffic=data["traffic"],
            salt=data["salt"] or data["name"],
            surface=data["surface"],
            namespace=namespace,
        )


class VariantSchema(StrictSchema):
    name = fields.String()
    ranker = fields.String()
    params = fields.Dict(keys=fields.String(), values=fields.Float())
    weight = fields.Float()


class ExperimentSchema(StrictSchema):
    name = fields.String()
    status = fields.String(metadata={"description": "draft, running or stopped"})
    surface = fields.String()
    salt = fields.String()
    traffic = fields.Float()
    namespace = fields.List(fields.Float(), metadata={"description": "[start, end)"})
    control = fields.Function(
        lambda e: e.control.name, metadata={"type": "string", "description": "1st variant"}
    )
    variants = fields.List(fields.Nested(VariantSchema))
    created_at = fields.Function(
        _when("created_at"), metadata={"type": "string", "description": "ISO 8601"}
    )
    started_at = fields.Function(_when("started_at"), allow_none=True, metadata=TIMESTAMP)
    stopped_at = fields.Function(_when("stopped_at"), allow_none=True, metadata=TIMESTAMP)


class ExperimentListSchema(StrictSchema):
    experiments = fields.List(fields.Nested(ExperimentSchema))


class IntervalSchema(StrictSchema):
    low = fields.Float()
    high = fields.Float()


class VariantResultSchema(StrictSchema):
    name = fields.String()
    ranker = fields.String()
    params = fields.Dict(keys=fields.String(), values=fields.Float())
    weight = fields.Float(metadata={"description": "normalised share of the traffic"})
    is_control = fields.Boolean()
    users = fields.Integer(metadata={"description": "exposed users (the randomisation unit)"})
    pages = fields.Integer(metadata={"description": "feed pages served"})
    impressions = fields.Integer()
    clicks = fields.Integer()
    ctr = fields.Float(allow_none=True, metadata={"description": "clicks / impressions"})
    ctr_ci = fields.Nested(IntervalSchema, allow_none=True)
    relative_lift = fields.Float(
        allow_none=True, metadata={"description": "CTR / control CTR - 1; null for the control"}
    )
    relative_lift_ci = fields.Nested(IntervalSchema, allow_none=True)
    p_value = fields.Float(allow_none=True, metadata={"description": "two-sided, see method"})
    significant = fields.Boolean(allow_none=True)
    naive_p_value = fields.Float(allow_none=True, metadata={"description": "see naive_method"})


class SrmSchema(StrictSchema):
    chi2 = fields.Float()
    dof = fields.Integer()
    p_value = fields.Float()
    mismatch = fields.Boolean(metadata={"description": "p_value < alpha: do not trust results"})
    expected = fields.List(fields.Float(), metadata={"description": "users per variant"})
    alpha = fields.Constant(SRM_ALPHA, metadata={"type": "number", "description": "flag threshold"})
    method = fields.Constant(SRM_METHOD, metadata={"type": "string"})


class ExperimentResultsSchema(StrictSchema):
    experiment = fields.Function(lambda res: res.experiment.name, metadata={"type": "string"})
    status = fields.Function(lambda res: res.experiment.status, metadata={"type": "string"})
    started_at = fields.Function(
        lambda res: _when("started_at")(res.experiment), allow_none=True, metadata=TIMESTAMP
    )
    stopped_at = fields.Function(
        lambda res: _when("stopped_at")(res.experiment), allow_none=True, metadata=TIMESTAMP
    )
    confidence = fields.Float()
    method = fields.String(metadata={"description": "test behind p_value and relative_lift_ci"})
    naive_method = fields.String()
    ctr_ci_method = fields.String()
    variants = fields.List(fields.Nested(VariantResultSchema))
    srm = fields.Nested(SrmSchema, metadata={"description": "sample-ratio-mismatch check"})


class ExposureQuerySchema(StrictSchema):
    interval = fields.String(
        load_default="hour",
        validate=validate.OneOf(sorted(INTERVALS)),
        metadata={"description": "bucket size: an hour, or a UTC day"},
    )


class VariantExposureSchema(StrictSchema):
    name = fields.String(required=True)
    users = fields.List(
        fields.Integer(),
        required=True,
        metadata={"description": "users first exposed in each bucket (they sum to the results')"},
    )
    pages = fields.List(
        fields.Integer(), required=True, metadata={"description": "feed pages served per bucket"}
    )


class ExposureSeriesSchema(StrictSchema):
    experiment = fields.String(required=True)
    interval = fields.String(required=True, metadata={"description": "hour or day"})
    starts = fields.Function(
        lambda s: [iso(datetime.fromtimestamp(t, UTC)) for t in s.starts],
        required=True,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": f"each bucket's start (ISO 8601, UTC), oldest first; the latest "
            f"{MAX_BUCKETS} buckets from the experiment's start to its stop or now",
        },
    )
    variants = fields.List(
        fields.Nested(VariantExposureSchema),
        required=True,
        metadata={"description": "in the experiment's order, the control first"},
    )
