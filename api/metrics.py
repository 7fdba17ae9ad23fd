"""GET /metrics: Prometheus metrics of requests, the feed cache, events and the state in Redis.

Under gunicorn every worker counts in its own files under PROMETHEUS_MULTIPROC_DIR (set up by
config/gunicorn.py) and a scrape, whichever worker answers it, adds them all up. Without that
variable (tests, a single process) the app's own registry is served.

prometheus_client chooses between the two when it is first imported, so this module is
imported by ``create_app`` (in the worker), never at the top of a module the gunicorn master
loads before the variable is set.

State that lives in Redis (model, corpus, experiment counters) is read when scraped, not
counted here: every worker would count the same thing. Each ``StateReader`` yields a few
metric families; add one to ``STATE_READERS`` for another gauge.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api.extensions import services
from feed import experiments
from feed.corpus import articles
from feed.jobs import open_queue, status
from feed.model import lag as model_lag
from feed.model import learning, versions
from feed.model import store as model_store
from feed.readers.events import EventResult

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's variable, not a setting of ours
EXTENSION = "newsfeed.metrics"
# Any other method (a client may send anything to an unknown path) is one label value, so a
# scanner cannot grow the number of series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
# Cached feed pages take about a millisecond; the default buckets start at 5 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REJECTION_REASONS = ("invalid", "unknown_article")

StateReader = Callable[[redis.Redis], Iterable[Metric]]

blp = Blueprint("metrics", __name__)


class FeedMetrics:
    """The feed service's observer (feed.serving.observer): pages by cache result, build times."""

    def __init__(self, pages: Counter, builds: Histogram) -> None:
        # labels() validates and locks on every call: each page reuses its series instead.
        self._pages = {True: pages.labels("hit"), False: pages.labels("miss")}
        self._builds = builds

    def page_served(self, cache_hit: bool) -> None:
        self._pages[cache_hit].inc()

    def feed_built(self, seconds: float) -> None:
        self._builds.observe(seconds)


class Metrics:
    """What this process counts as it serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_redis: redis.Redis | None = None  # opened by the first scrape
        self.requests = Histogram(
            "newsfeed_http_request_duration_seconds",
            "Time to answer a request, by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feed_pages = Counter(
            "newsfeed_feed_pages",
            "Feed pages served, by whether the cache answered",
            ["cache"],
            registry=self.registry,
        )
        self.feed_build = Histogram(
            "newsfeed_feed_build_duration_seconds",
            "Time to rank and store a user's feed on a cache miss",
            buckets=BUILD_BUCKETS,
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "newsfeed_events_accepted", "Reader events kept", registry=self.registry
        )
        self.events_rejected = Counter(
            "newsfeed_events_rejected",
            "Reader events refused one by one, by reason",
            ["reason"],
            registry=self.registry,
        )
        # Series that exist from the start (FeedMetrics makes the pages' ones), so rates and
        # ratios work before the first page or event.
        self.feed = FeedMetrics(self.feed_pages, self.feed_build)
        for reason in REJECTION_REASONS:
            self.events_rejected.labels(reason)
        # labels() validates and locks on every call; each request reuses its series instead.
        self._request_series: dict[tuple[str, str, int], Histogram] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.requests.labels(route, method, str(status))
        series.observe(seconds)

    def count_events(self, result: EventResult) -> None:
        self.events_accepted.inc(result.accepted)
        for rejection in result.rejected:
            self.events_rejected.labels(rejection.reason).inc()


def init_metrics(app: Flask) -> Metrics:
    if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"prometheus_client was imported before {MULTIPROC_ENV} was set: each worker "
            "would report only its own counts"
        )
    metrics = Metrics()
    app.extensions[EXTENSION] = metrics
    app.before_request(_start_clock)
    app.after_request(_observe)
    app.register_blueprint(blp)
    return metrics


def _queue_redis() -> redis.Redis | None:
    """The job queue's Redis, opened on the first scrape; None where there is no queue (a
    cluster without NEWSFEED_QUEUE_URL, in thread mode)."""
    metrics = _metrics()
    if metrics.queue_redis is None:
        try:
            metrics.queue_redis = open_queue(services().settings)
        except RuntimeError as error:
            log.info("metrics: no job queue gauges: %s", error)
            return None
    return metrics.queue_redis


def _metrics() -> Metrics:
    found: Metrics = current_app.extensions[EXTENSION]
    return found


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    metrics = _metrics()
    started: float | None = g.get("request_started")
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        method = request.method if request.method in METHODS else "other"
        metrics.observe_request(route, method, response.status_code, time.perf_counter() - started)
    recorded: EventResult | None = g.get("events_recorded")
    if recorded is not None:
        metrics.count_events(recorded)
    return response


@blp.get("/metrics")
def scrape() -> Response:
    """Not under /v1 and not rate limited; keep it off the public internet."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_metrics().registry)
    registry.register(StateCollector(services().redis))
    queue_redis = _queue_redis()
    if queue_redis is not None:
        registry.register(StateCollector(queue_redis, (job_queue,)))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)


# -- state read from Redis at scrape time


def model_state(r: redis.Redis) -> Iterator[Metric]:
    current, _ = versions.read_with(r)
    yield GaugeMetricFamily(
        "newsfeed_corpus_version",
        "Corpus version (bumped by every article or category write)",
        value=current.corpus,
    )
    yield GaugeMetricFamily(
        "newsfeed_model_version",
        "Version of the published model (0: none yet)",
        value=current.model,
    )
    meta = model_store.current_meta(r)
    if meta is not None:
        yield GaugeMetricFamily(
            "newsfeed_model_age_seconds",
            "Seconds since the published model was fitted",
            value=max(0.0, time.time() - meta.fitted_at),
        )
        yield GaugeMetricFamily(
            "newsfeed_model_articles",
            "Articles the published model was fitted on",
            value=meta.articles,
        )
        yield GaugeMetricFamily(
            "newsfeed_model_corpus_version",
            "Corpus version the published model was fitted at (the workers' refit backlog is "
            "newsfeed_corpus_version minus this)",
            value=meta.corpus_version,
        )
        lag = model_lag.measure(r, meta, current.corpus)
        yield GaugeMetricFamily(
            "newsfeed_model_lag_versions",
            "Corpus versions of writes that feeds rank without (neither fitted nor extended "
            "into the model)",
            value=lag.versions,
        )
        yield GaugeMetricFamily(
            "newsfeed_model_lag_seconds",
            "How long feeds have ranked without some acknowledged write (0: none missing)",
            value=lag.seconds,
        )


def corpus_size(r: redis.Redis) -> Iterator[Metric]:
    yield GaugeMetricFamily("newsfeed_corpus_articles", "Stored articles", value=articles.count(r))


EXPERIMENT_COUNTERS = {
    "users": "Readers exposed to the variant (counted once each)",
    "pages": "Feed pages served by the variant",
    "impressions": "Impressions by readers exposed to the variant",
    "clicks": "Clicks by readers exposed to the variant",
}


def experiment_exposures(r: redis.Redis) -> Iterator[Metric]:
    """The running experiments' own counters (kept in Redis as things happen, never re-counted)."""
    families = {
        name: CounterMetricFamily(
            f"newsfeed_experiment_{name}", help_text, labels=["experiment", "variant"]
        )
        for name, help_text in EXPERIMENT_COUNTERS.items()
    }
    for experiment in experiments.running(r):
        counts = experiments.counts(r, experiment.name)
        for variant in experiment.variants:
            found = counts.get(variant.name, {})
            for name, family in families.items():
                family.add_metric([experiment.name, variant.name], found.get(name, 0))
    yield from families.values()


def job_queue(queue_redis: redis.Redis) -> Iterator[Metric]:
    """Background jobs by state over every queue (from the queue's Redis), and live workers."""
    depths = status.queue_depths(queue_redis)
    workers = depths.pop("workers")
    family = GaugeMetricFamily("newsfeed_jobs", "Background jobs by state", labels=["state"])
    for state, count in depths.items():
        family.add_metric([state], count)
    yield family
    yield GaugeMetricFamily("newsfeed_workers", "Job workers alive", value=workers)


def learned_state(r: redis.Redis) -> Iterator[Metric]:
    """Which learned model serves (0: none, tfidf's weights), what it learned from, how it was
    judged, its weights, and when the latest training ran and whether it published."""
    found = learning.status(r)
    serving = found["serving"] or {}
    yield GaugeMetricFamily(
        "newsfeed_learned_model_version",
        "Learned ranker model serving (0: none published, it ranks as tfidf)",
        value=serving.get("version") or 0,
    )
    for name, help_text in (
        ("events", "Stream events the serving learned model was trained on"),
        ("impressions", "Impressions the serving learned model was trained on"),
        ("clicks", "Clicks (positives) the serving learned model was trained on"),
        ("validation_auc", "Serving learned model's AUC on the latest pages, held out"),
        ("baseline_auc", "tfidf's AUC on the same pages"),
    ):
        if serving.get(name) is not None:
            yield GaugeMetricFamily(f"newsfeed_learned_{name}", help_text, value=serving[name])
    if serving.get("weights"):
        family = GaugeMetricFamily(
            "newsfeed_learned_weight",
            "Serving learned model's coefficient per standardized feature",
            labels=["feature"],
        )
        for feature, weight in serving["weights"].items():
            family.add_metric([feature], weight)
        yield family
    last = found["last_training"]
    if last is not None:
        yield GaugeMetricFamily(
            "newsfeed_learned_last_training_timestamp_seconds",
            "When the latest learned ranker training ran",
            value=last["at"],
        )
        yield GaugeMetricFamily(
            "newsfeed_learned_last_training_published",
            "Whether the latest training published its model (0: the gate kept it out)",
            value=int(last.get("published") is not None),
        )


STATE_READERS: tuple[StateReader, ...] = (
    model_state,
    corpus_size,
    experiment_exposures,
    learned_state,
)


class StateCollector:
    """Reads the shared state at scrape time; what Redis cannot answer is left out and logged."""

    def __init__(self, r: redis.Redis, readers: Iterable[StateReader] = STATE_READERS) -> None:
        self._redis = r
        self._readers = tuple(readers)

    def collect(self) -> Iterator[Metric]:
        for read in self._readers:
            try:
                found = list(read(self._redis))
            except (redis.ConnectionError, redis.TimeoutError) as error:
                # The other readers would wait out the same timeout: the scrape would too.
                log.warning("metrics: redis unreachable, state gauges skipped: %s", error)
                return
            except redis.RedisError as error:
                log.warning("metrics: %s skipped: %s", read.__name__, error)
                continue
            yield from found
