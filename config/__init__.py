"""Settings with defaults, read from ``NEWSFEED_*`` environment variables in one place."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import metadata
from typing import Any

ENV_PREFIX = "NEWSFEED_"
REINDEX_MODES = ("queue", "thread")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service; the README's configuration table mirrors this class."""

    # Empty means "embedded default": `newsfeed serve` starts a private redis-server under var/.
    redis_url: str = ""
    redis_socket_timeout: float = 2.0
    redis_connect_timeout: float = 2.0
    data_dir: str = "var"
    # Local conveniences: without redis_url `newsfeed serve` starts a private redis-server under
    # data_dir, and without a JWT key the CLI signs with a development secret kept there. The
    # image turns them off, so a container missing either stops with an error.
    local_defaults: bool = True

    jwt_secret: str = ""
    # A PEM public key verifies tokens signed elsewhere; set jwt_algorithms to RS256 or ES256.
    jwt_public_key: str = ""
    # Signs page cursors; defaults to a key derived from jwt_secret (required with a public key).
    cursor_secret: str = ""
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str = ""
    jwt_issuer: str = ""
    token_ttl_seconds: int = 24 * 3600

    # Ranking: the live window bounds the corpus the model is fitted on.
    live_window_days: float = 30.0
    freshness_half_life_hours: float = 24.0
    feed_size: int = 300

    # Cache: a ranked list answers first pages for feed_ttl, and next pages (cursors) for
    # cursor_ttl after it was built, even once a newer list has replaced it.
    feed_ttl_seconds: int = 15 * 60
    cursor_ttl_seconds: int = 60 * 60

    # Click and impression counts behind the popularity ranker halve over this time.
    popularity_half_life_hours: float = 24.0

    # Model upkeep: each process polls Redis for a newer model and for corpus changes to fit.
    model_poll_seconds: float = 1.0
    auto_reindex: bool = True
    # Who fits: "queue" (web processes only enqueue a job and `newsfeed worker` fits, then
    # precomputes active readers' first pages), or "thread" (web processes fit in a background
    # thread; no worker). `newsfeed serve` on its embedded Redis starts a worker itself.
    reindex_mode: str = "queue"
    # /readyz answers "degraded" once feeds have ranked without some acknowledged write for
    # this long (the model and its extension both lack it: see docs/operations.md); 0: never.
    max_model_lag_seconds: float = 120.0
    # The processes of a host memory-map one file per model version from this directory
    # instead of each holding a copy of the model (feed/model/shared.py); host-local, this
    # user's alone. Empty: every process keeps its own copy.
    model_share_dir: str = os.path.join(tempfile.gettempdir(), f"newsfeed-models-{os.getuid()}")

    # Background work (`newsfeed worker`, RQ). An empty queue_url means redis_url; RQ needs a
    # standalone Redis, so with a cluster redis_url it must name one.
    queue_url: str = ""
    # The worker refits this often even without writes, so that articles leave the model as
    # they age out of the live window; 0: only after writes.
    reindex_interval_seconds: int = 15 * 60
    # The worker polls the due RSS/Atom sources this often; 0: never (run `newsfeed poll`).
    source_poll_seconds: int = 60
    # After a fit the worker precomputes the first pages of the readers active (a feed miss or
    # an event) within this window, the most recent precompute_max_users; 0 users: none.
    active_window_seconds: int = 60 * 60
    precompute_max_users: int = 10_000

    max_request_bytes: int = 10 * 1024 * 1024
    # A request (head and body) must have arrived this long after its first byte, or it is
    # answered 408; the worker reads it without holding a thread (config/workers.py).
    request_read_timeout_seconds: float = 30.0

    # Abuse limits (limits-library syntax), counted per client IP and per token subject in
    # Redis. Generous for people and apps; they stop floods and scrapers, not readers.
    rate_limit_enabled: bool = True
    rate_limit_per_ip: str = "30000/minute"
    rate_limit_per_user: str = "3000/minute"
    # Reverse proxies in front of the service: their X-Forwarded-For hops give the client's IP
    # (for per-IP limits and logs). 0 trusts no header, which is right when clients connect
    # directly; behind a load balancer, without this every request looks like the balancer.
    trusted_proxies: int = 0
    # Browser origins allowed to call /v1 (comma-separated). Empty: no CORS headers at all.
    cors_origins: tuple[str, ...] = ()

    # RSS/Atom polling: every fetch has a timeout and a size cap, and names us in its
    # User-Agent ("newsfeed/<version> (+contact)"); set the contact to a URL or an address.
    poll_timeout_seconds: float = 10.0
    poll_max_bytes: int = 5 * 1024 * 1024
    poll_contact: str = ""
    # Fetches refuse loopback, private, link-local (cloud metadata) and other non-public
    # addresses; these comma-separated CIDRs and host[:port] entries let intranet feeds through.
    fetch_allow: tuple[str, ...] = ()

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 4
    log_level: str = "info"
    # "json": one JSON object per line on stdout, for log shippers; "text" for people at a terminal.
    # Unset, `newsfeed serve` with stdout on a terminal uses text (cli.serve.default_log_format).
    log_format: str = "json"

    # Development only: serve GET /dev/token?user=ID (a signed token for anyone who asks) so the
    # web page at / works without pasting a token. `newsfeed serve --demo` turns it on; never
    # enable it in production.
    dev_mode: bool = False
    # `newsfeed serve --demo` also registers public news feeds (devtools.demo_sources) for
    # real headlines when the machine reaches the internet; the tests turn it off.
    demo_sources: bool = True

    def __post_init__(self) -> None:
        if self.reindex_mode not in REINDEX_MODES:
            raise ValueError(f"{ENV_PREFIX}REINDEX_MODE must be one of {', '.join(REINDEX_MODES)}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Defaults, then ``NEWSFEED_*`` variables, then explicit overrides (tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, getattr(cls(), f.name))
        settings = cls(**values)
        return replace(settings, **dict(overrides or {}))


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if raw.strip().lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.strip().lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: cannot parse {raw!r}") from exc


def installed_version() -> str:
    """The installed distribution's version; "dev" when run from a checkout not installed."""
    try:
        return metadata.version("newsfeed")
    except metadata.PackageNotFoundError:
        return "dev"
