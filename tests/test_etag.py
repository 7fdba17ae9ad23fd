"""Feed pages carry a strong ETag; If-None-Match answers 304 until the page changes."""

from __future__ import annotations

import hashlib

import pytest

from tests.factories import demo_corpus

FEED = "/v1/users/alice/feed?limit=5"


@pytest.fixture
def alice(client, tokens):
    demo_corpus(client, tokens.admin(), 200)
    headers = tokens.user("alice")
    client.put("/v1/users/alice/categories/syria", headers=headers)
    return headers


def test_a_page_has_an_etag_and_a_repeat_gets_304(client, alice):
    first = client.get(FEED, headers=alice)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get(FEED, headers={**alice, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["X-Feed-Cache"] == "hit"


def test_a_new_feed_id_does_not_change_the_etag(client, alice):
    one = client.get(FEED, headers=alice)
    two = client.get(FEED, headers=alice)
    assert one.json["feed_id"] != two.json["feed_id"]
    assert one.headers["ETag"] == two.headers["ETag"]


def test_next_pages_have_their_own_etag(client, alice):
    first = client.get(FEED, headers=alice)
    url = f"{FEED}&cursor={first.json['next_cursor']}"
    second = client.get(url, headers=alice)
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert (
        client.get(url, headers={**alice, "If-None-Match": second.headers["ETag"]}).status_code
        == 304
    )


def test_a_follow_change_gives_200_with_a_new_etag(client, alice):
    etag = client.get(FEED, headers=alice).headers["ETag"]
    client.put("/v1/users/alice/categories/tech", headers=alice)
    changed = client.get(FEED, headers={**alice, "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json["items"]
    assert changed.headers["ETag"] != etag


@pytest.mark.parametrize("form", ["*", '"other", {etag}', "W/{etag}"])
def test_if_none_match_lists_wildcards_and_weak_forms_match(client, alice, form):
    etag = client.get(FEED, headers=alice).headers["ETag"]
    header = form.format(etag=etag)
    assert client.get(FEED, headers={**alice, "If-None-Match": header}).status_code == 304


def test_a_stale_or_foreign_etag_gets_the_page(client, alice):
    response = client.get(FEED, headers={**alice, "If-None-Match": '"not-the-etag"'})
    assert response.status_code == 200 and response.json["items"]


def test_the_openapi_documents_304_and_the_etag(client):
    spec = client.get("/openapi.json").json
    responses = spec["paths"]["/v1/users/{user_id}/feed"]["get"]["responses"]
    assert "304" in responses
    assert "ETag" in responses["200"]["headers"]


def test_the_etag_is_the_hash_of_the_page_after_its_feed_id(client, alice):
    """Clients keep ETags across deploys: the validator's definition must not drift."""
    response = client.get(FEED, headers=alice)
    feed_id = response.json["feed_id"]
    after_id = response.data[len(b'{"feed_id":"') + len(feed_id) + len(b'",') :]
    assert response.data.startswith(b'{"feed_id":"' + feed_id.encode() + b'",')
    assert response.headers["ETag"] == f'"{hashlib.blake2b(after_id, digest_size=16).hexdigest()}"'
