"""What every command shares: settings, the Redis to talk to, the development secret."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace
from pathlib import Path

import click
import redis

from config import ENV_PREFIX, Settings
from feed.model.reindex import fit_under_lock
from feed.storage.connection import open_redis

REDIS_URL_FILE = "redis.url"  # under data_dir while an embedded Redis runs, for other commands
SECRET_FILE = "jwt-secret"  # under data_dir: the development signing secret


def reindex_and_report(client: redis.Redis, settings: Settings) -> None:
    outcome = fit_under_lock(client, live_window_days=settings.live_window_days)
    if outcome.result is None:
        click.echo("another process is fitting a model; the service refits after it")
        return
    meta = outcome.result.meta
    click.echo(
        f"model {meta.version}: {meta.articles} articles, "
        f"fitted in {outcome.result.fit_seconds:.2f}s"
    )


def open_client(settings: Settings) -> redis.Redis:
    return open_redis(
        redis_url(settings),
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
    )


def redis_url(settings: Settings) -> str:
    """NEWSFEED_REDIS_URL, else the embedded Redis of a running `newsfeed serve`."""
    url = settings.redis_url
    url_file = Path(settings.data_dir) / REDIS_URL_FILE
    if not url and url_file.exists():
        url = url_file.read_text().strip()
    if not url:
        raise click.ClickException(
            f"{ENV_PREFIX}REDIS_URL is not set and no embedded Redis is running "
            "(start one with `newsfeed serve`)"
        )
    return url


def dev_secret(settings: Settings, *, announce: bool = False) -> Settings:
    """Without a configured key, use a random secret kept under data_dir (development only).

    With ``announce``, say so on stderr, on every run and not only when the file is created:
    `serve` and `token` do, as they verify and sign tokens with it, and a person whose token
    is refused needs to know which secret is in play. `worker` stays quiet (it signs only page
    cursors, which never leave the service); the other commands sign nothing and never ask.
    """
    if settings.jwt_secret or settings.jwt_public_key or not settings.local_defaults:
        return settings
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    os.environ[ENV_PREFIX + "JWT_SECRET"] = path.read_text().strip()
    if announce:
        click.echo(f"using the development JWT secret in {path}", err=True)
    return Settings.from_env()


def settings_with_redis() -> Settings:
    """Settings for commands that talk to the service's Redis: NEWSFEED_REDIS_URL, else the
    embedded Redis of a running `newsfeed serve`."""
    settings = Settings.from_env()
    return replace(settings, redis_url=redis_url(settings))
