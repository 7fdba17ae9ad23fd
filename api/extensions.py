"""The one accessor views use to reach the app's services (built by feed.services)."""

from __future__ import annotations

from flask import current_app

from feed.services import Services

EXTENSION = "newsfeed"


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
