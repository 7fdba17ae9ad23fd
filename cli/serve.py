"""`newsfeed serve`: the API under gunicorn, with an embedded Redis and demo data for a
first run on a fresh machine."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from api.schemas import ArticleInSchema
from cli.common import REDIS_URL_FILE, dev_secret, open_client, reindex_and_report
from cli.corpus import upgrade_layout
from cli.worker import worker_process
from config import ENV_PREFIX, Settings
from devtools.redis_server import RedisServer
from feed.corpus import articles, categories
from feed.readers.tokens import issue_token
from feed.storage.connection import refuse_cluster_node

DEMO_ARTICLES = 400


@click.command()
@click.option("--demo", is_flag=True, help="Load the demo corpus if empty; print a demo token.")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Also run `newsfeed worker` [default: with the embedded Redis in queue mode].",
)
def serve(demo: bool, worker: bool | None) -> None:
    """Run the API under gunicorn (with an embedded Redis when none is configured)."""
    settings = Settings.from_env()
    default_log_format(settings, tty=sys.stdout.isatty())
    embedded: RedisServer | None = None
    if not settings.redis_url:
        if not settings.local_defaults:
            raise click.ClickException(f"set {ENV_PREFIX}REDIS_URL (no local defaults here)")
        embedded = _start_embedded(settings)
    settings = dev_secret(Settings.from_env(), announce=True)
    if worker is None:
        worker = embedded is not None and settings.reindex_mode == "queue"
    if not worker and settings.reindex_mode == "queue":
        click.echo("reindex mode is queue: run `newsfeed worker` too, or models are never fitted")
    # Gunicorn's master exits on SIGTERM via SystemExit, so the finally below always runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        client = open_client(settings)
        try:  # before gunicorn, whose workers would each fail to boot on it
            refuse_cluster_node(client, settings.redis_url)
        except RuntimeError as exc:
            raise click.ClickException(f"{ENV_PREFIX}REDIS_URL: {exc}") from exc
        upgrade_layout(client)
        if demo:
            os.environ[ENV_PREFIX + "DEV_MODE"] = "true"  # the web page gets tokens from /dev/token
            click.echo(demo_message(settings, load_demo(settings)))
        # Started after the demo load, so its first periodic fit sees the corpus.
        with worker_process() if worker else nullcontext():
            _run_gunicorn()
    finally:
        if embedded is not None:
            (Path(settings.data_dir) / REDIS_URL_FILE).unlink(missing_ok=True)
            embedded.stop()


def default_log_format(settings: Settings, *, tty: bool) -> None:
    """The one rule for the log format gunicorn and the worker get from `newsfeed serve`
    (both read NEWSFEED_LOG_FORMAT from the environment, which they inherit).

    Text for a person at a terminal: stdout a TTY, and local defaults on (the image turns
    them off, so a container keeps JSON even under `docker run -t`). JSON, the setting's
    default, when stdout is a pipe or a file, for log shippers. A NEWSFEED_LOG_FORMAT set
    explicitly always wins.
    """
    if tty and settings.local_defaults:
        os.environ.setdefault(ENV_PREFIX + "LOG_FORMAT", "text")


def _start_embedded(settings: Settings) -> RedisServer:
    data_dir = Path(settings.data_dir)
    server = RedisServer(data_dir / "redis", appendonly=True, appendfsync="everysec")
    server.start(timeout=60)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / REDIS_URL_FILE).write_text(server.url)
    os.environ[ENV_PREFIX + "REDIS_URL"] = server.url
    click.echo(f"embedded Redis {server.url} (data in {server.data_dir})")
    return server


def load_demo(settings: Settings) -> int:
    """Put the demo categories, and the demo corpus when the corpus is empty (a corpus of
    one's own is never mixed with it); answers how many articles were loaded."""
    from devtools.demo import DEMO_CATEGORIES, generate_articles
    from devtools.demo_sources import register_demo_sources

    client = open_client(settings)
    current = categories.names(client)
    for slug, name in DEMO_CATEGORIES.items():
        if current.get(slug) != name:  # a rename drops every cached feed: only when needed
            categories.put(client, slug, name)
    if settings.demo_sources:
        feeds = register_demo_sources(client)
        if feeds:
            click.echo(
                f"{len(feeds)} public news feeds registered as sources: the worker polls them "
                "for real headlines when this machine reaches the internet"
            )
    if articles.count(client) > 0:
        return 0
    schema = ArticleInSchema()
    batch = [(i, schema.load(a)) for i, a in enumerate(generate_articles(DEMO_ARTICLES))]
    loaded = len(articles.upsert(client, batch).created)
    reindex_and_report(client, settings)
    return loaded


def demo_message(settings: Settings, loaded: int) -> str:
    """What `serve --demo` prints: what it loaded, the page, and demo tokens to try the API."""
    user = issue_token(settings, "demo-user")
    admin = issue_token(settings, "demo-admin", admin=True)
    base = f"http://{settings.host}:{settings.port}"
    if loaded:
        news = f"Demo data loaded ({loaded} articles)."
    else:
        news = "The corpus is not empty, so no demo data was loaded."
    return (
        f"\n{news}\n"
        f"Open {base}/ for the reader's page. Or try the API:\n"
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
