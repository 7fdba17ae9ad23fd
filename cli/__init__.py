"""The `newsfeed` command line: serve, ingest, reindex, token, worker, jobs, poll, evaluate,
train."""

from __future__ import annotations

import click

from cli.corpus import ingest, migrate, reindex_command
from cli.evaluate import evaluate_command
from cli.poll import poll_command
from cli.serve import serve
from cli.tokens import token
from cli.train import train_command
from cli.worker import jobs_command, worker_command
from config import installed_version


@click.group(help="newsfeed: a personalized news-feed backend.")
@click.version_option(installed_version(), prog_name="newsfeed", message="%(prog)s %(version)s")
def cli() -> None:
    pass


for command in (
    serve,
    ingest,
    reindex_command,
    migrate,
    token,
    worker_command,
    jobs_command,
    poll_command,
    evaluate_command,
    train_command,
):
    cli.add_command(command)


def main() -> None:
    cli()
