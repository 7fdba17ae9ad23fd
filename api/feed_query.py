"""The feed's query string: its documented schema, and the plain form the lean view reads.

Most feed requests are ``?limit=20`` or ``?limit=20&cursor=<next_cursor>``. ``plain_query``
reads exactly that form; anything else (another parameter, a repeat, an escape, a limit
written another way or out of range) is left to webargs and ``FeedQuerySchema``, which accept
or refuse it as documented. So the lean view never answers what the schema would answer
differently.
"""

from __future__ import annotations

import re

from marshmallow import fields, validate

from api.schemas import StrictSchema
from recommender.registry import RANKERS

LIMIT_DEFAULT = 20
LIMIT_MIN, LIMIT_MAX = 1, 100
CURSOR_MAX_CHARS = 400
# A limit as the schema would print it (no sign, space or leading zero), and a value that
# URL-decoding leaves as it is (next_cursor is base64url).
PLAIN_LIMIT = re.compile(r"[1-9][0-9]{0,2}")
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.~-]*")


class FeedQuerySchema(StrictSchema):
    limit = fields.Integer(
        load_default=LIMIT_DEFAULT, validate=validate.Range(LIMIT_MIN, LIMIT_MAX)
    )
    cursor = fields.String(
        validate=validate.Length(0, CURSOR_MAX_CHARS),
        metadata={
            "description": "next_cursor from the previous page, unchanged; empty: the first page"
        },
    )
    explain = fields.Boolean(
        load_default=False,
        metadata={
            "description": (
                "Admins: the first page of any reader ranked afresh, each item with `explain` "
                "(its score's parts); never cached or recorded as an exposure. A reader's "
                "token gets 403; with a cursor, 400"
            )
        },
    )
    ranker = fields.String(
        validate=validate.OneOf(sorted(RANKERS)),
        metadata={
            "description": (
                "Only with explain=true (else 400): rank with this ranker (defaults) instead "
                "of the one serving the reader, to compare"
            )
        },
    )


def plain_query(query_string: str) -> tuple[int, str | None] | None:
    """``(limit, cursor)`` of a plain feed query (an empty cursor is None: the first page), or
    None when the query is anything else."""
    limit, cursor = LIMIT_DEFAULT, None
    seen: set[str] = set()
    for part in query_string.split("&") if query_string else ():
        key, equals, value = part.partition("=")
        if key in seen or not equals or not PLAIN_VALUE.fullmatch(value):
            return None
        seen.add(key)
        if key == "limit":
            if not PLAIN_LIMIT.fullmatch(value) or not LIMIT_MIN <= int(value) <= LIMIT_MAX:
                return None
            limit = int(value)
        elif key == "cursor" and len(value) <= CURSOR_MAX_CHARS:
            cursor = value or None
        else:
            return None
    return limit, cursor
