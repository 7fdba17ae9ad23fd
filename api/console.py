"""The console at /console: experiments, sources, model and jobs for admins, as one static
page (api/static/console.*) on the same JSON API. The page holds no secret: every number it
shows comes from an admin-only /v1 endpoint called with the token the operator gives it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, send_from_directory

from api.web import PAGE_POLICY, STATIC_DIR

# Outside /v1, like the reader's page: loading it is never rate limited; its data calls are.
blp = Blueprint("console", __name__)


@blp.get("/console")
def console() -> Any:
    page = send_from_directory(STATIC_DIR, "console.html", max_age=0)
    page.headers["Content-Security-Policy"] = PAGE_POLICY
    return page
