"""The "Personalize Your News" page at / (static files), the development-only token, and the
policy every page (/, /console, /docs) runs under."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, request, send_from_directory

from api.extensions import services
from feed.readers.tokens import issue_token

STATIC_DIR = Path(__file__).parent / "static"
DEV_USER = "demo-user"
DEV_ADMIN = "demo-admin"  # as `newsfeed serve --demo` prints
# The page runs only its own script and style and talks only to this origin's API: anything
# injected into a story's text has nowhere to load from or send to.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

SWAGGER_UI_URL = "/static/vendor/swagger-ui/"
# flask-smorest's Swagger UI page (/docs), shown with our template (api/templates/): its
# scripts and styles are files of this origin, so it runs under the same policy.
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"

# The page uses only the public /v1 API; it is served outside /v1, so it is never rate limited.
blp = Blueprint("web", __name__, static_folder=str(STATIC_DIR), static_url_path="/static")


@blp.after_app_request
def docs_policy(response: Response) -> Response:
    if request.endpoint == DOCS_ENDPOINT:
        response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


@blp.get("/")
def index() -> Any:
    page = send_from_directory(STATIC_DIR, "index.html", max_age=0)
    page.headers["Content-Security-Policy"] = PAGE_POLICY
    return page


@blp.get("/dev/token")
def dev_token() -> Any:
    """A token for ?user=ID (default demo-user), with ?admin=true an admin one (the console's),
    only with NEWSFEED_DEV_MODE: anyone may ask."""
    settings = services().settings
    if not settings.dev_mode or not settings.jwt_secret:
        abort(404)
    admin = request.args.get("admin") == "true"
    user_id = request.args.get("user") or (DEV_ADMIN if admin else DEV_USER)
    return {"token": issue_token(settings, user_id, admin=admin), "user_id": user_id}
