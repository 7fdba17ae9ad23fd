"""Cursor codec: round trip, and refusal of anything this service did not sign for this user."""

from __future__ import annotations

import pytest

from feed.exceptions import InvalidCursor
from feed.serving.cursor import Cursor, CursorCodec

CODEC = CursorCodec("secret-" * 6)


def test_round_trip():
    token = CODEC.encode("alice", Cursor("0123abcd", 40))
    assert CODEC.decode("alice", token) == Cursor("0123abcd", 40)


def test_bound_to_the_user():
    token = CODEC.encode("alice", Cursor("0123abcd", 40))
    with pytest.raises(InvalidCursor):
        CODEC.decode("bob", token)


def test_bound_to_the_secret():
    token = CursorCodec("other-" * 8).encode("alice", Cursor("0123abcd", 40))
    with pytest.raises(InvalidCursor):
        CODEC.decode("alice", token)


@pytest.mark.parametrize(
    "token", ["", "=", "a" * 401, "!!!!", "YWJj", "MTIzLjQ1LmFiY2RlZmdoaWprbA"]
)
def test_garbage_is_refused(token):
    with pytest.raises(InvalidCursor):
        CODEC.decode("alice", token)
