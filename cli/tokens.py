"""`newsfeed token`: a bearer token for development and scripts."""

from __future__ import annotations

import click

from cli.common import dev_secret
from config import Settings
from feed.exceptions import InvalidId
from feed.readers.tokens import issue_token


@click.command()
@click.option("--user", "user_id", required=True, help="The token's subject (a user id).")
@click.option("--admin", is_flag=True, help="Allow article and category writes.")
@click.option(
    "--ttl",
    type=click.IntRange(min=1),
    default=None,
    help="Lifetime in seconds [default: NEWSFEED_TOKEN_TTL_SECONDS, a day unless set].",
)
def token(user_id: str, admin: bool, ttl: int | None) -> None:
    """Print a bearer token signed with the configured secret."""
    try:
        settings = dev_secret(Settings.from_env(), announce=True)
        click.echo(issue_token(settings, user_id, admin=admin, ttl=ttl))
    except (ValueError, InvalidId) as exc:
        raise click.ClickException(str(exc)) from exc
