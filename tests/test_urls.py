"""Canonical URLs: the same story under a different link is recognised as one."""

from __future__ import annotations

import pytest

from feed.corpus.urls import canonical_url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://News.Example.com/a/b/", "https://news.example.com/a/b"),
        ("https://news.example.com/a?utm_source=x&utm_medium=y", "https://news.example.com/a"),
        ("https://news.example.com/a?fbclid=1&id=7&gclid=2", "https://news.example.com/a?id=7"),
        ("https://news.example.com/a?b=2&a=1", "https://news.example.com/a?a=1&b=2"),
        ("https://news.example.com:443/a#comments", "https://news.example.com/a"),
        ("http://news.example.com:8080/a", "http://news.example.com:8080/a"),
        ("https://news.example.com", "https://news.example.com/"),
    ],
)
def test_canonical_url(url, canonical):
    assert canonical_url(url) == canonical


def test_different_stories_stay_different():
    assert canonical_url("https://x.com/a?id=1") != canonical_url("https://x.com/a?id=2")
    assert canonical_url("https://x.com/A") != canonical_url("https://x.com/a")
