"""Domain errors, one flat family; the API maps each to a status code and a JSON body."""

from __future__ import annotations


class FeedError(Exception):
    """Base class: every error a client can cause, with a stable machine-readable code."""

    code = "feed_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidId(FeedError):
    code = "invalid_id"


class NotFound(FeedError):
    code = "not_found"


class ArticleNotFound(NotFound):
    code = "article_not_found"


class CategoryNotFound(NotFound):
    code = "category_not_found"

    def __init__(self, slugs: list[str]) -> None:
        names = ", ".join(repr(s) for s in slugs)
        noun = "category" if len(slugs) == 1 else "categories"
        super().__init__(f"unknown {noun}: {names}", categories=slugs)


class InvalidCursor(FeedError):
    code = "invalid_cursor"


class StaleCursor(InvalidCursor):
    code = "stale_cursor"


class WriteConflict(FeedError):
    """Concurrent writers kept touching the same records; the request can simply be retried."""

    code = "write_conflict"


class ServiceUnavailable(FeedError):
    """The service cannot answer yet (no model fitted, Redis unreachable); retry later."""

    code = "unavailable"


class InvalidExperiment(FeedError):
    """An experiment definition the service cannot run (bad ranker, weights, ranges...)."""

    code = "invalid_experiment"


class ExperimentConflict(FeedError):
    """The request contradicts the experiment's state or another running experiment."""

    code = "experiment_conflict"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown experiment: {name[:200]!r}", experiment=name[:200])


class SourceNotFound(NotFound):
    code = "source_not_found"

    def __init__(self, source_id: str) -> None:
        super().__init__(f"unknown source: {source_id[:200]!r}", source=source_id[:200])


class SourceConflict(FeedError):
    """A source with the same (canonical) feed URL is already registered."""

    code = "source_conflict"
