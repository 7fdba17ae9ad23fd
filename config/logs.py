"""Log lines on stdout, one format for every process (JSON by default), each stamped with the
request it belongs to. Read by gunicorn's config and the worker; the web layer sets the id."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# The id of the request this thread is handling (set and cleared by the web layer).
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

LOG_FORMATS = ("json", "text")

# Gunicorn's access line as a message (and the whole line in text format); the response
# header carries the id because the access log is written after the app's context is gone.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" %({x-request-id}o)s'
# JSON fields of an access line -> gunicorn's access log atoms.
ACCESS_FIELDS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "query": "q",
    "status": "s",
    "bytes": "B",
    "duration_ms": "M",
    "user_agent": "a",
    "request_id": "{x-request-id}o",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "{levelname}{name}{message}{request_id}"
JSON_RENAMES = {"levelname": "level", "name": "logger"}


class RequestIdFilter(logging.Filter):
    """Stamps every record logged while a request is handled with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = current_request_id.get()
        if found is not None:
            record.request_id = found
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_RENAMES, timestamp="time")


class AccessJsonFormatter(JsonFormatter):
    """Gunicorn's access line with its parts as fields, the request id among them."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args
        if isinstance(atoms, Mapping):
            log_data.update({name: atoms[atom] for name, atom in ACCESS_FIELDS.items()})
            if str(log_data["status"]).isdigit():
                log_data["status"] = int(log_data["status"])


def access_json_formatter() -> AccessJsonFormatter:
    return AccessJsonFormatter(
        "{levelname}{name}{message}", style="{", rename_fields=JSON_RENAMES, timestamp="time"
    )


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The dictConfig for gunicorn's master and workers: everything to stdout, one format."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"NEWSFEED_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    json_format = log_format == "json"
    stdout = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "app": (
                {"()": json_formatter}
                if json_format
                else {"()": logging.Formatter, "fmt": TEXT_FORMAT, "defaults": {"request_id": "-"}}
            ),
            "access": (
                {"()": access_json_formatter}
                if json_format
                else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
            ),
        },
        "handlers": {
            "app": {**stdout, "formatter": "app", "filters": ["request_id"]},
            "access": {**stdout, "formatter": "access"},
        },
        "root": {"level": level.upper(), "handlers": ["app"]},
        "loggers": {
            # The error log (startup, worker exits, tracebacks) goes through root's handler.
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
