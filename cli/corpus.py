"""Commands on the corpus and its model: ingest, reindex, migrate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click
import redis
from marshmallow import ValidationError

from api.schemas import ArticleInSchema
from cli.common import open_client, reindex_and_report
from config import Settings
from feed.corpus import articles
from feed.corpus.articles import Rejection
from feed.corpus.ingest import MAX_BATCH
from feed.model.migrate import upgrade


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--no-reindex", is_flag=True, help="Leave fitting to the running service.")
def ingest(path: str, no_reindex: bool) -> None:
    """Upsert articles from a JSON Lines file (one article object per line)."""
    settings = Settings.from_env()
    client = open_client(settings)
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
        reindex_and_report(client, settings)


@click.command()
def migrate() -> None:
    """Move data stored under an older key layout to the current one (serve does this too)."""
    upgrade_layout(open_client(Settings.from_env()))


def upgrade_layout(client: redis.Redis) -> None:
    moved = upgrade(client)
    if moved:
        click.echo(f"moved {moved} keys from the old key layout to the current one")


@click.command("reindex")
def reindex_command() -> None:
    """Fit a new model on the live window of the corpus and publish it to every worker."""
    settings = Settings.from_env()
    reindex_and_report(open_client(settings), settings)


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
