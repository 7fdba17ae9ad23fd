"""The `newsfeed poll` command: poll every enabled RSS/Atom source that is due, once."""

from __future__ import annotations

import click

from cli.common import open_client
from config import Settings
from feed import sources
from feed.sources import polling
from feed.sources.polling import fetch_options


@click.command("poll")
@click.option("--all", "everything", is_flag=True, help="Poll every enabled source, due or not.")
def poll_command(everything: bool) -> None:
    """Poll the enabled RSS/Atom sources that are due, once, and store their new items.

    The running service refits its model on the corpus change by itself.
    """
    settings = Settings.from_env()
    client = open_client(settings)
    options = fetch_options(settings)
    if everything:
        ids = [s.id for s in sources.list_all(client) if s.enabled]
        outcomes = [polling.poll(client, i, options) for i in ids]
    else:
        outcomes = polling.poll_due(client, options)
    failed = 0
    for outcome in outcomes:
        line = (
            f"{outcome.source_id}: {outcome.status}, {len(outcome.created)} created, "
            f"{len(outcome.updated)} updated, {outcome.unchanged} unchanged, "
            f"{outcome.duplicates} duplicates, {len(outcome.errors)} item errors"
        )
        if outcome.error:
            failed += 1
            line += f" ({outcome.error})"
        click.echo(line)
        for error in outcome.errors:
            click.echo(f"  item {error['index']}: {error['reason']}: {error['message']}", err=True)
    click.echo(f"polled {len(outcomes)} sources, {failed} failed")
