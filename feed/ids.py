"""The accepted shape of every identifier that ends up inside a Redis key."""

from __future__ import annotations

import re

from feed.exceptions import InvalidId

# Braces are excluded on purpose: they delimit Redis Cluster hash tags in our keys.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
ID_RULE = "1-128 characters from A-Z a-z 0-9 . _ : @ -, starting with a letter or digit"
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
SLUG_RULE = "1-64 characters from a-z 0-9 and -, not starting or ending with -"

_ID = re.compile(ID_PATTERN)
_SLUG = re.compile(SLUG_PATTERN)


def is_valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


def is_valid_slug(value: str) -> bool:
    return bool(_SLUG.fullmatch(value))


def check_id(value: str, what: str = "id") -> str:
    if not is_valid_id(value):
        raise InvalidId(f"{what} {value[:200]!r} is not valid: {ID_RULE}", field=what)
    return value


def check_slug(value: str) -> str:
    if not is_valid_slug(value):
        raise InvalidId(f"category slug {value[:200]!r} is not valid: {SLUG_RULE}", field="slug")
    return value
