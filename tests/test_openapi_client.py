"""A Python client generated from /openapi.json (openapi-python-client) runs the reader's flow
against real gunicorn: its methods are named from the operationIds, and errors come back as
the typed Error model. Skipped where the generator is not installed (`pip install -e .[dev]`).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from devtools.redis_server import RedisServer
from feed.readers.tokens import issue_token
from tests.factories import article
from tests.live import SETTINGS, LiveService, gunicorn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("openapi_python_client") is None,
        reason="needs openapi-python-client (pip install -e '.[dev]')",
    ),
]

PACKAGE = "newsfeed_client"
# No post hooks (ruff format): the generated code is only imported, never read by people.
GENERATOR_CONFIG = "post_hooks: []\n"
READER = "sdk-reader"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    base = tmp_path_factory.mktemp("sdk")
    with RedisServer(base / "redis", appendonly=False) as server:
        with gunicorn(base / "svc", server.url, workers=1) as live:
            live.ingest(
                [article(categories=["business"]) for _ in range(30)]
                + [article(categories=["sports"]) for _ in range(30)]
            )
            yield live


@pytest.fixture(scope="module")
def sdk(service: LiveService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, imported from a temporary directory."""
    out = tmp_path_factory.mktemp("generated")
    spec = out / "openapi.json"
    reply = service.call("GET", "/openapi.json")
    assert reply.status == 200
    spec.write_text(json.dumps(reply.body))
    config = out / "config.yaml"
    config.write_text(GENERATOR_CONFIG)
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_methods_are_named_from_the_operation_ids(sdk: ModuleType) -> None:
    root = Path(sdk.__file__).parent / "api"
    names = {path.stem for path in root.rglob("*.py") if path.stem != "__init__"}
    assert {"list_categories", "follow_category", "unfollow_category", "get_feed"} <= names
    assert not [n for n in names if n.startswith(("get_v1", "put_v1", "post_v1", "delete_v1"))]


def test_the_reader_flow_through_the_generated_client(
    sdk: ModuleType, service: LiveService
) -> None:
    base_url = f"http://127.0.0.1:{service.port}"
    models = module("models")
    list_categories = module("api.categories.list_categories")
    follow_category = module("api.users.follow_category")
    get_feed = module("api.users.get_feed")

    with sdk.Client(base_url=base_url) as anonymous:
        catalog = list_categories.sync(client=anonymous)
    assert isinstance(catalog, models.CategoryList)
    assert {"business", "sports"} <= {c.slug for c in catalog.categories}

    token = issue_token(SETTINGS, READER)
    with sdk.AuthenticatedClient(base_url=base_url, token=token) as reader:
        follows = follow_category.sync(READER, "sports", client=reader)
        assert isinstance(follows, models.Subscriptions)
        assert follows.categories == ["sports"]

        first = get_feed.sync(READER, client=reader, limit=10)
        assert isinstance(first, models.Feed)
        assert len(first.items) == 10
        assert all("sports" in item.categories for item in first.items)
        assert isinstance(first.next_cursor, str)

        second = get_feed.sync(READER, client=reader, limit=10, cursor=first.next_cursor)
        assert isinstance(second, models.Feed)
        assert second.items
        assert not {i.id for i in first.items} & {i.id for i in second.items}

        # Another reader's feed: a 403, parsed into the typed error model.
        denied = get_feed.sync_detailed("someone-else", client=reader)
    assert denied.status_code == 403
    assert isinstance(denied.parsed, models.Error)
    assert denied.parsed.error.status == 403
    assert denied.parsed.error.code == "forbidden"
    assert "someone-else" not in denied.parsed.error.message
