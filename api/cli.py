"""The `newsfeed` command: serve, ingest, reindex, token, evaluate, poll, worker, jobs."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
import redis
from marshmallow import ValidationError

from api.evaluate import evaluate_command
from api.poll import poll_command
from api.schemas import ArticleInSchema
from api.tokens import issue_token
from api.worker import jobs_command, worker_command, worker_process
from config import ENV_PREFIX, Settings
from feed import articles, categories
from feed.articles import Rejection
from feed.connection import open_redis
from feed.exceptions import InvalidId
from feed.ingest import MAX_BATCH
from feed.migrate import upgrade
from feed.redis_server import RedisServer
from feed.reindex import fit_under_lock

REDIS_URL_FILE = "redis.url"  # under data_dir while an embedded Redis runs, for other commands
SECRET_FILE = "jwt-secret"  # under data_dir: the development signing secret
DEMO_ARTICLES = 400


def main() -> None:
    cli()


@click.group(help="newsfeed: a personalized news-feed backend.")
def cli() -> None:
    pass


cli.add_command(evaluate_command)
cli.add_command(poll_command)
cli.add_command(worker_command)
cli.add_command(jobs_command)


@cli.command()
@click.option("--demo", is_flag=True, help="Load the demo corpus if empty; print a demo token.")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Also run `newsfeed worker` [default: with the embedded Redis in queue mode].",
)
def serve(demo: bool, worker: bool | None) -> None:
    """Run the API under gunicorn (with an embedded Redis when none is configured)."""
    settings = Settings.from_env()
    embedded: RedisServer | None = None
    if not settings.redis_url:
        if not settings.local_defaults:
            raise click.ClickException(f"set {ENV_PREFIX}REDIS_URL (no local defaults here)")
        embedded = _start_embedded(settings)
    settings = _dev_secret(Settings.from_env())
    if worker is None:
        worker = embedded is not None and settings.reindex_mode == "queue"
    if not worker and settings.reindex_mode == "queue":
        click.echo("reindex mode is queue: run `newsfeed worker` too, or models are never fitted")
    # Gunicorn's master exits on SIGTERM via SystemExit, so the finally below always runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _upgrade_layout(_redis(settings))
        if demo:
            os.environ[ENV_PREFIX + "DEV_MODE"] = "true"  # the web page gets tokens from /dev/token
            _load_demo(settings)
        # Started after the demo load, so its first periodic fit sees the corpus.
        with worker_process() if worker else nullcontext():
            _run_gunicorn()
    finally:
        if embedded is not None:
            (Path(settings.data_dir) / REDIS_URL_FILE).unlink(missing_ok=True)
            embedded.stop()


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--no-reindex", is_flag=True, help="Leave fitting to the running service.")
def ingest(path: str, no_reindex: bool) -> None:
    """Upsert articles from a JSON Lines file (one article object per line)."""
    settings = Settings.from_env()
    client = _redis(settings)
    created = updated = 0
    rejected: list[Rejection] = []
    with click.open_file(path) as handle:
        for batch, bad in _batches(handle):
            result = articles.upsert(client, batch)
            created += len(result.created)
            updated += len(result.updated)
            rejected.extend([*bad, *result.rejected])
    for rejection in rejected:
        click.echo(f"line {rejection.index}: {rejection.id}: {rejection.message}", err=True)
    click.echo(f"created {created}, updated {updated}, rejected {len(rejected)}")
    if not no_reindex:
        _reindex(client, settings)


@cli.command()
def migrate() -> None:
    """Move data stored under an older key layout to the current one (serve does this too)."""
    _upgrade_layout(_redis(Settings.from_env()))


def _upgrade_layout(client: redis.Redis) -> None:
    moved = upgrade(client)
    if moved:
        click.echo(f"moved {moved} keys from the old key layout to the current one")


@cli.command("reindex")
def reindex_command() -> None:
    """Fit a new model on the live window of the corpus and publish it to every worker."""
    settings = Settings.from_env()
    _reindex(_redis(settings), settings)


@cli.command()
@click.option("--user", "user_id", required=True, help="The token's subject (a user id).")
@click.option("--admin", is_flag=True, help="Allow article and category writes.")
@click.option("--ttl", type=int, default=None, help="Lifetime in seconds.")
def token(user_id: str, admin: bool, ttl: int | None) -> None:
    """Print a bearer token signed with the configured secret."""
    try:
        click.echo(issue_token(_dev_secret(Settings.from_env()), user_id, admin=admin, ttl=ttl))
    except (ValueError, InvalidId) as exc:
        raise click.ClickException(str(exc)) from exc


def _batches(lines: Any) -> Iterator[tuple[list[tuple[int, Any]], list[Rejection]]]:
    schema = ArticleInSchema()
    batch: list[tuple[int, Any]] = []
    bad: list[Rejection] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append((number, schema.load(json.loads(line))))
        except (ValueError, ValidationError) as error:
            message = error.messages if isinstance(error, ValidationError) else str(error)
            bad.append(Rejection(None, "invalid", str(message), number))
        if len(batch) == MAX_BATCH:
            yield batch, bad
            batch, bad = [], []
    yield batch, bad


def _reindex(client: redis.Redis, settings: Settings) -> None:
    outcome = fit_under_lock(client, live_window_days=settings.live_window_days)
    if outcome.result is None:
        click.echo("another process is fitting a model; the service refits after it")
        return
    meta = outcome.result.meta
    click.echo(
        f"model {meta.version}: {meta.articles} articles, "
        f"fitted in {outcome.result.fit_seconds:.2f}s"
    )


def _redis(settings: Settings) -> redis.Redis:
    return open_redis(
        _redis_url(settings),
        socket_timeout=settings.redis_socket_timeout,
        connect_timeout=settings.redis_connect_timeout,
    )


def _redis_url(settings: Settings) -> str:
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


def _start_embedded(settings: Settings) -> RedisServer:
    data_dir = Path(settings.data_dir)
    server = RedisServer(data_dir / "redis", appendonly=True, appendfsync="everysec")
    server.start(timeout=60)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / REDIS_URL_FILE).write_text(server.url)
    os.environ[ENV_PREFIX + "REDIS_URL"] = server.url
    click.echo(f"embedded Redis {server.url} (data in {server.data_dir})")
    return server


def _dev_secret(settings: Settings) -> Settings:
    """Without a configured key, use a random secret kept under data_dir (development only)."""
    if settings.jwt_secret or settings.jwt_public_key or not settings.local_defaults:
        return settings
    path = Path(settings.data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    os.environ[ENV_PREFIX + "JWT_SECRET"] = path.read_text().strip()
    click.echo(f"using the development JWT secret in {path}", err=True)
    return Settings.from_env()


def _load_demo(settings: Settings) -> None:
    from feed.demo import DEMO_CATEGORIES, generate_articles

    client = _redis(settings)
    current = categories.names(client)
    for slug, name in DEMO_CATEGORIES.items():
        if current.get(slug) != name:  # a rename drops every cached feed: only when needed
            categories.put(client, slug, name)
    if articles.count(client) == 0:
        schema = ArticleInSchema()
        batch = [(i, schema.load(a)) for i, a in enumerate(generate_articles(DEMO_ARTICLES))]
        articles.upsert(client, batch)
        _reindex(client, settings)
    user = issue_token(settings, "demo-user")
    admin = issue_token(settings, "demo-admin", admin=True)
    base = f"http://{settings.host}:{settings.port}"
    click.echo(
        f"\nDemo data loaded. Try:\n"
        f"  export TOKEN={user}\n"
        f"  curl {base}/v1/categories\n"
        f'  curl -X PUT -H "Authorization: Bearer $TOKEN" '
        f"{base}/v1/users/demo-user/categories/syria\n"
        f"  curl -H \"Authorization: Bearer $TOKEN\" '{base}/v1/users/demo-user/feed?limit=5'\n"
        f"  open {base}/docs for the API reference\n"
        f"Admin token (article writes): {admin}\n"
    )


def _run_gunicorn() -> None:
    from gunicorn.app.wsgiapp import WSGIApplication

    sys.argv = ["gunicorn", "--config", "python:config.gunicorn", "wsgi:app"]
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


if __name__ == "__main__":  # `python -m api.cli worker`: how `newsfeed serve` starts a worker
    main()
