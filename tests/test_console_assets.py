"""The browser assets ship in the package and are served locally: /docs (Swagger UI) and the
console load nothing from a CDN, under the pages' Content-Security-Policy."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "api"
VENDOR = API / "static" / "vendor"


def get(client, path):
    """The body read and the file closed (send_file streams it)."""
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def test_docs_load_swagger_ui_from_this_origin_under_the_page_policy(client) -> None:
    response = get(client, "/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html, "no external assets"
    assert "<script>" not in html, "no inline script: the policy refuses them"
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/static/vendor/swagger-ui/{asset}" in html
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("/static/vendor/swagger-ui/swagger-ui-standalone-preset.js", "text/javascript"),
        ("/static/vendor/swagger-ui/swagger-ui.css", "text/css"),
        ("/static/vendor/swagger-ui/favicon-32x32.png", "image/png"),
        ("/static/vendor/chartjs/chart.umd.min.js", "text/javascript"),
        ("/static/docs.js", "text/javascript"),
    ],
)
def test_vendored_assets_are_served(client, path: str, mimetype: str) -> None:
    response = get(client, path)
    assert response.status_code == 200
    assert response.mimetype == mimetype


def test_vendored_files_are_the_pinned_ones_with_their_licenses() -> None:
    sums = (VENDOR / "sha256sums").read_text().split("\n")
    listed = {}
    for line in filter(None, sums):
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    on_disk = {
        str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and p.parent != VENDOR
    }
    assert on_disk == set(listed), "every vendored file is pinned in sha256sums"
    for license_file in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "chartjs/LICENSE.md"):
        assert license_file in listed


def test_the_package_data_ships_every_static_file_and_template() -> None:
    """`pip install .` (the image) installs the pages and assets, not only the modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api"]
    shipped = {p for pattern in patterns for p in API.glob(pattern) if p.is_file()}
    wanted = {p for folder in ("static", "templates") for p in (API / folder).rglob("*")}
    missing = sorted(str(p.relative_to(API)) for p in wanted if p.is_file() and p not in shipped)
    assert not missing, f"not in [tool.setuptools.package-data] api: {missing}"
