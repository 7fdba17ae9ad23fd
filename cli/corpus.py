"""Commands on the corpus and its model: ingest, reindex, migrate."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO

import click
import redis
from marshmallow import ValidationError

from api.errors import summarise_messages
from api.schemas import ArticleInSchema
from cli.common import open_client, reindex_and_report
from config import Settings
from feed.corpus import articles
from feed.corpus.articles import Article, Rejection
from feed.corpus.ingest import MAX_BATCH
from feed.model.migrate import upgrade

LINES_PER_REDRAW = 100  # of the progress bar over a pipe

# Built with json.dumps, so the line the help shows is one the command accepts.
EXAMPLE_LINE = json.dumps(
    {
        "id": "a-17",
        "url": "https://example.com/a-17",
        "title": "Rates rise",
        "summary": "By a quarter point.",
        "categories": ["business"],
        "published_at": "2024-05-01T08:00:00Z",
    }
)
INGEST_HELP = f"""Upsert articles from a JSON Lines file, one article object per line; a PATH of
`-` reads stdin.

Each object has id, url (http or https), title, summary, categories (a list of category
slugs) and published_at (ISO 8601; UTC without an offset), and may have body and source; any
other field is an error. A bad line is reported with its number and skipped; the others are
stored, and the model is refitted unless --no-reindex. An example line:

\b
{EXAMPLE_LINE}
"""


@click.command(help=INGEST_HELP)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--no-reindex", is_flag=True, help="Leave fitting to the running service.")
def ingest(path: str, no_reindex: bool) -> None:
    settings = Settings.from_env()
    client = open_client(settings)
    created = updated = 0
    rejected: list[Rejection] = []
    # Bytes: json.loads decodes them, and the progress bar counts what was read exactly.
    with click.open_file(path, "rb") as handle, _progress(handle) as lines:
        for batch, bad in _batches(lines):
            result = articles.upsert(client, batch)
            created += len(result.created)
            updated += len(result.updated)
            rejected.extend([*bad, *result.rejected])
    for rejection in sorted(rejected, key=lambda r: r.index or 0):
        click.echo(rejection_line(rejection), err=True)
    click.echo(f"created {created}, updated {updated}, rejected {len(rejected)}")
    if not no_reindex:
        reindex_and_report(client, settings)


def rejection_line(rejection: Rejection) -> str:
    """`line 2 (id "a-17"): url: Not a valid URL.`; without the id when the line had none."""
    where = f"line {rejection.index}"
    if rejection.id is not None:
        where += f" (id {json.dumps(rejection.id, ensure_ascii=False)})"
    return f"{where}: {rejection.message}"


@click.command()
def migrate() -> None:
    """Move data stored under an older key layout to the current one (serve does this too)."""
    if not upgrade_layout(open_client(Settings.from_env())):
        click.echo("nothing to migrate: the store already uses the current key layout")


def upgrade_layout(client: redis.Redis) -> int:
    """Answers how many keys were moved, and says so when there were some."""
    moved = upgrade(client)
    if moved:
        click.echo(f"moved {moved} keys from the old key layout to the current one")
    return moved


@click.command("reindex")
def reindex_command() -> None:
    """Fit a new model on the live window of the corpus and publish it to every worker."""
    settings = Settings.from_env()
    reindex_and_report(open_client(settings), settings)


@contextmanager
def _progress(handle: IO[bytes]) -> Iterator[Iterable[bytes]]:
    """The lines of ``handle``, with a progress bar on stderr when that is a terminal: over
    the bytes of a file, over the lines of a pipe (whose size is unknown)."""
    if not sys.stderr.isatty() or handle.isatty():  # no bar under lines typed by hand
        yield handle
        return
    size = _file_size(handle)
    if size is None:
        # The count changes every line: redraw every LINES_PER_REDRAW lines, not every line.
        with click.progressbar(
            handle,
            label="lines read",
            show_pos=True,
            file=sys.stderr,
            update_min_steps=LINES_PER_REDRAW,
        ) as bar:
            yield bar
    else:
        with click.progressbar(length=size, label="ingesting", file=sys.stderr) as bytes_bar:
            yield _advancing(handle, bytes_bar.update)


def _file_size(handle: IO[bytes]) -> int | None:
    try:
        info = os.fstat(handle.fileno())
    except (OSError, ValueError):  # a stream without a file descriptor
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _advancing(lines: Iterable[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for line in lines:
        advance(len(line))
        yield line


def _batches(lines: Iterable[bytes]) -> Iterator[tuple[list[tuple[int, Article]], list[Rejection]]]:
    schema = ArticleInSchema()
    batch: list[tuple[int, Article]] = []
    bad: list[Rejection] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as error:  # not JSON, or not UTF-8
            bad.append(Rejection(None, "invalid", _not_json(error), number))
            continue
        try:
            batch.append((number, schema.load(raw)))
        except ValidationError as error:
            # The schema refused the line before reading its id: take it from the object.
            found = raw.get("id") if isinstance(raw, dict) else None
            line_id = found if isinstance(found, str) else None
            bad.append(
                Rejection(
                    line_id, "invalid", summarise_messages(error.messages, limit=None), number
                )
            )
        if len(batch) == MAX_BATCH:
            yield batch, bad
            batch, bad = [], []
    yield batch, bad


def _not_json(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON: {error.msg} (column {error.colno})"
    return f"not valid JSON: {error}"
