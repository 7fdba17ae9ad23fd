"""Which ranker serves a user: the default, or an experiment variant they are assigned to."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import redis

from feed import experiments
from feed.experiments import Assignment
from feed.experiments.buffer import ExposureBuffer
from recommender.ranker import Ranker
from recommender.registry import make_ranker

log = logging.getLogger(__name__)

NO_EXPERIMENT = b'"experiment":null,"variant":null,'


@dataclass(frozen=True)
class Serving:
    key: str  # "<experiment>:<variant>"; "" for the default ranker
    label: bytes  # the response's "experiment" and "variant" members, as JSON
    assignment: Assignment | None


DEFAULT = Serving("", NO_EXPERIMENT, None)


class Variants:
    """Assigns users (no Redis round trip: the running experiments come with the feed's read)
    and builds each variant's ranker once per process. Exposures go to ``exposures`` when
    given (written by its thread, no round trip per page), else straight to Redis."""

    running_key = experiments.RUNNING_KEY

    def __init__(
        self, r: redis.Redis, default: Ranker, exposures: ExposureBuffer | None = None
    ) -> None:
        self._redis = r
        self._default = default
        self._exposures = exposures
        self._rankers: dict[str, Ranker] = {"": default}
        self._assignments: dict[str, Assignment] = {}
        self._labels: dict[str, bytes] = {}  # the response's members, per variant key

    def assign(self, raw_running: bytes | None, user_id: str) -> Serving:
        running = experiments.parse_running(raw_running)
        assignment = experiments.assign(running, user_id) if running else None
        if assignment is None:
            return DEFAULT
        self._assignments.setdefault(assignment.key, assignment)
        label = self._labels.get(assignment.key)
        if label is None:  # once per variant: this runs on every page served
            members = {"experiment": assignment.experiment, "variant": assignment.variant}
            label = self._labels[assignment.key] = json.dumps(members)[1:-1].encode() + b","
        return Serving(assignment.key, label, assignment)

    def ranker(self, key: str) -> Ranker:
        found = self._rankers.get(key)
        if found is None:
            assignment = self._assignments.get(key)
            if assignment is None:  # stopped since: the next request is assigned afresh
                return self._default
            found = make_ranker(assignment.ranker, assignment.params)
            self._rankers[key] = found
        return found

    def exposed(self, variant: Serving, user_id: str) -> None:
        if variant.assignment is None:
            return
        if self._exposures is None:
            experiments.record_exposure(self._redis, variant.assignment, user_id)
        else:
            self._exposures.add(variant.assignment, user_id, time.time())
