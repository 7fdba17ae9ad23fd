"""/v1/experiments: A/B tests of rankers on the feed (admin only)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api.auth import BEARER, admin_only
from api.blueprint import Blueprint
from api.experiment_schemas import (
    ExperimentInSchema,
    ExperimentListSchema,
    ExperimentResultsSchema,
    ExperimentSchema,
    ExposureQuerySchema,
    ExposureSeriesSchema,
)
from api.extensions import services
from api.schemas import EXPERIMENT_NAME_PARAM
from feed import experiments
from feed.experiments import Experiment, ExperimentResults, ExposureSeries

blp = Blueprint(
    "experiments", __name__, url_prefix="/v1/experiments", description="Ranker experiments"
)


@blp.route("")
class ExperimentList(MethodView):
    @admin_only
    @blp.doc(operationId="createExperiment", security=BEARER)
    @blp.arguments(ExperimentInSchema)
    @blp.response(201, ExperimentSchema)
    def post(self, experiment: Experiment) -> Experiment:
        """Create a draft experiment; names are never reused (admin)

        Each variant names a ranker and its parameters; the first variant is the control.
        A definition never changes: to change one, stop it and create another.
        """
        return experiments.create(services().redis, experiment)

    @admin_only
    @blp.doc(operationId="listExperiments", security=BEARER)
    @blp.response(200, ExperimentListSchema)
    def get(self) -> dict[str, Any]:
        """List every experiment, newest first (admin)"""
        return {"experiments": experiments.list_all(services().redis)}


@blp.route("/<name>", parameters=[EXPERIMENT_NAME_PARAM])
class ExperimentItem(MethodView):
    @admin_only
    @blp.doc(operationId="getExperiment", security=BEARER)
    @blp.response(200, ExperimentSchema)
    def get(self, name: str) -> Experiment:
        """Read one experiment's definition and status (admin)"""
        return experiments.get(services().redis, name)


@blp.route("/<name>/start", parameters=[EXPERIMENT_NAME_PARAM])
class ExperimentStart(MethodView):
    @admin_only
    @blp.doc(operationId="startExperiment", security=BEARER)
    @blp.response(200, ExperimentSchema)
    def post(self, name: str) -> Experiment:
        """Start a draft; 409 if a running experiment shares its surface's namespace (admin)"""
        return experiments.start(services().redis, name)


@blp.route("/<name>/stop", parameters=[EXPERIMENT_NAME_PARAM])
class ExperimentStop(MethodView):
    @admin_only
    @blp.doc(operationId="stopExperiment", security=BEARER)
    @blp.response(200, ExperimentSchema)
    def post(self, name: str) -> Experiment:
        """Stop a running experiment for good; its users get the default ranker (admin)"""
        return experiments.stop(services().redis, name)


@blp.route("/<name>/results", parameters=[EXPERIMENT_NAME_PARAM])
class ExperimentResultsView(MethodView):
    @admin_only
    @blp.doc(operationId="getExperimentResults", security=BEARER)
    @blp.response(200, ExperimentResultsSchema)
    def get(self, name: str) -> ExperimentResults:
        """Per-variant exposure, CTR with CI, lift vs. control with p-value, SRM check (admin)

        The lift's p-value and interval use the delta method on per-user CTR, since users,
        not impressions, are randomised; the naive two-proportion z-test is reported beside it.
        """
        return experiments.results(services().redis, name)


@blp.route("/<name>/exposures", parameters=[EXPERIMENT_NAME_PARAM])
class ExperimentExposures(MethodView):
    @admin_only
    @blp.doc(operationId="getExperimentExposures", security=BEARER)
    @blp.arguments(ExposureQuerySchema, location="query")
    @blp.response(200, ExposureSeriesSchema)
    def get(self, query: dict[str, str], name: str) -> ExposureSeries:
        """Users first exposed and pages served per variant, per hour or UTC day (admin)

        Counted as pages are served, from this release on: exposures served before it are in
        the results' totals but in no bucket.
        """
        return experiments.exposure_series(services().redis, name, query["interval"])
