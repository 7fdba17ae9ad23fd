"""Following and unfollowing categories: idempotent toggles, replace, unknown categories."""

from __future__ import annotations

import pytest

from tests.factories import article, ingest


@pytest.fixture
def catalog(client, tokens):
    ingest(client, tokens.admin(), [article(categories=[c]) for c in ("syria", "tech", "business")])


def test_follow_is_idempotent(client, tokens, catalog):
    alice = tokens.user("alice")
    for _ in range(3):
        response = client.put("/v1/users/alice/categories/syria", headers=alice)
        assert response.status_code == 200
        assert response.json == {"categories": ["syria"]}
    assert client.get("/v1/users/alice/categories", headers=alice).json == {"categories": ["syria"]}


def test_unfollow_is_idempotent(client, tokens, catalog):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/syria", headers=alice)
    client.put("/v1/users/alice/categories/tech", headers=alice)
    for _ in range(2):
        response = client.delete("/v1/users/alice/categories/syria", headers=alice)
        assert response.status_code == 200
        assert response.json == {"categories": ["tech"]}


def test_replace_sets_exactly_the_given_categories(client, tokens, catalog):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/syria", headers=alice)
    response = client.put(
        "/v1/users/alice/categories",
        json={"categories": ["tech", "business", "tech"]},
        headers=alice,
    )
    assert response.status_code == 200
    assert response.json == {"categories": ["business", "tech"]}
    response = client.put("/v1/users/alice/categories", json={"categories": []}, headers=alice)
    assert response.json == {"categories": []}


def test_a_new_user_follows_nothing(client, tokens, catalog):
    response = client.get("/v1/users/newcomer/categories", headers=tokens.user("newcomer"))
    assert response.status_code == 200
    assert response.json == {"categories": []}


@pytest.mark.parametrize("method", ["put", "delete"])
def test_toggling_an_unknown_category_is_a_404_naming_it(client, tokens, catalog, method):
    response = getattr(client, method)(
        "/v1/users/alice/categories/atlantis", headers=tokens.user("alice")
    )
    assert response.status_code == 404
    assert response.json["error"]["code"] == "category_not_found"
    assert "atlantis" in response.json["error"]["message"]


def test_replace_with_unknown_categories_names_them_all_and_changes_nothing(
    client, tokens, catalog
):
    alice = tokens.user("alice")
    client.put("/v1/users/alice/categories/syria", headers=alice)
    response = client.put(
        "/v1/users/alice/categories",
        json={"categories": ["tech", "atlantis", "mu"]},
        headers=alice,
    )
    assert response.status_code == 404
    assert response.json["error"]["details"] == {"categories": ["atlantis", "mu"]}
    assert client.get("/v1/users/alice/categories", headers=alice).json == {"categories": ["syria"]}
