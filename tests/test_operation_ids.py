"""Every operation has a stable, readable operationId: generated SDKs name their methods from
it (`get_feed`, `follow_category`), not from the path."""

from __future__ import annotations

import re
from pathlib import Path

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CAMEL_CASE = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)*$")
# The reader flow's names are promised in docs/api.md: renaming one breaks every client.
PROMISED = {
    ("get", "/v1/categories"): "listCategories",
    ("get", "/v1/users/{user_id}/categories"): "listFollows",
    ("put", "/v1/users/{user_id}/categories"): "replaceFollows",
    ("put", "/v1/users/{user_id}/categories/{slug}"): "followCategory",
    ("delete", "/v1/users/{user_id}/categories/{slug}"): "unfollowCategory",
    ("get", "/v1/users/{user_id}/feed"): "getFeed",
    ("post", "/v1/events"): "recordEvents",
}


def operations(client) -> dict[tuple[str, str], dict]:
    spec = client.get("/openapi.json").json
    return {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_every_operation_has_a_unique_camel_case_operation_id(client) -> None:
    found = operations(client)
    ids = {key: op.get("operationId") for key, op in found.items()}
    missing = sorted(f"{m.upper()} {p}" for (m, p), op_id in ids.items() if not op_id)
    assert not missing, f"operations without an operationId: {missing}"
    not_camel = sorted(op_id for op_id in ids.values() if not CAMEL_CASE.match(op_id))
    assert not not_camel, f"operationIds not in camelCase: {not_camel}"
    names = list(ids.values())
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_reader_flow_keeps_its_documented_names(client) -> None:
    found = operations(client)
    assert {key: found[key]["operationId"] for key in PROMISED} == PROMISED


def test_every_operation_id_is_documented(client) -> None:
    reference = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    undocumented = sorted(
        op["operationId"]
        for op in operations(client).values()
        if f"`{op['operationId']}`" not in reference
    )
    assert not undocumented, f"operationIds missing from docs/api.md: {undocumented}"
