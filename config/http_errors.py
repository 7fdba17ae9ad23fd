"""The answers gunicorn gives itself (a request it cannot parse, one over its size limits, or
one the worker gave up reading), in the API's one error shape (api/errors.py, docs/api.md)
instead of gunicorn's HTML pages. Messages name the limit, never the parser's internals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from ssl import SSLError
from typing import Any

from gunicorn.config import Config
from gunicorn.http import errors as http_errors

# The same codes as api.errors.CODE_FOR_STATUS for the statuses both give; config/ cannot
# import api/ (it is imported by everything), so the few the server answers are listed here.
CODE_FOR_STATUS = {
    400: "bad_request",
    403: "forbidden",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "header_too_large",
    500: "internal_error",
    501: "not_implemented",
}


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return HTTPStatus(self.status).phrase

    @property
    def client_error(self) -> bool:
        return self.status < 500

    def render(self) -> bytes:
        """A whole HTTP/1.1 response that closes the connection."""
        error: dict[str, Any] = {
            "status": self.status,
            "code": CODE_FOR_STATUS[self.status],
            "message": self.message,
        }
        if self.details:
            error["details"] = self.details
        body = json.dumps({"error": error}).encode()
        head = (
            f"HTTP/1.1 {self.status} {self.reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "\r\n"
        )
        return head.encode("latin-1") + body


def timed_out(seconds: float) -> ErrorAnswer:
    return ErrorAnswer(
        408,
        f"the request was not received within {seconds:g} s of its first byte",
        {"limit_seconds": seconds},
    )


def head_too_large(limit: int) -> ErrorAnswer:
    return ErrorAnswer(
        431, f"the request headers exceed {limit} bytes in total", {"limit_bytes": limit}
    )


def field_too_large(limit: int) -> ErrorAnswer:
    return ErrorAnswer(431, f"a request header exceeds {limit} bytes", {"limit_bytes": limit})


def body_too_large(limit: int) -> ErrorAnswer:
    return ErrorAnswer(413, f"the request body exceeds {limit} bytes", {"limit_bytes": limit})


def for_exception(exc: BaseException, cfg: Config) -> ErrorAnswer:
    """What to answer for an exception gunicorn's worker reports (Worker.handle_error)."""
    if isinstance(exc, http_errors.LimitRequestLine):
        limit = cfg.limit_request_line
        return ErrorAnswer(
            414,
            f"the request line (method, URL and version) exceeds {limit} bytes",
            {"limit_bytes": limit},
        )
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return _header_limit(str(exc), cfg)
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return ErrorAnswer(501, "unsupported Transfer-Encoding; use chunked or Content-Length")
    if isinstance(exc, http_errors.ExpectationFailed):
        return ErrorAnswer(417, "unsupported Expect header; only 100-continue is understood")
    if isinstance(exc, http_errors.InvalidHeader) and not isinstance(
        exc, http_errors.InvalidResponseHeader
    ):
        return ErrorAnswer(400, _invalid_header(exc))
    if isinstance(exc, http_errors.ForbiddenProxyRequest | SSLError):
        return ErrorAnswer(403, "request refused")
    # A header the application tried to send is the application's fault: a 500 (below).
    if isinstance(exc, http_errors.InvalidResponseHeader | http_errors.InvalidResponseHeaderName):
        return ErrorAnswer(500, "internal error; it has been logged")
    for kind, message in _BAD_REQUESTS:
        if isinstance(exc, kind):
            return ErrorAnswer(400, message)
    return ErrorAnswer(500, "internal error; it has been logged")


def _header_limit(reason: str, cfg: Config) -> ErrorAnswer:
    # gunicorn's reasons: "limit request headers fields" (how many), "... fields size" (one
    # field), "max buffer headers" / "... trailer section size" (all of them).
    if reason.endswith("fields size"):
        return field_too_large(cfg.limit_request_field_size)
    if reason.endswith("fields"):
        count = cfg.limit_request_fields
        return ErrorAnswer(431, f"more than {count} request headers", {"limit_headers": count})
    return ErrorAnswer(431, "the request headers are too large in total")


def _invalid_header(exc: http_errors.InvalidHeader) -> str:
    # Named only when it is a framing header: other values may carry a client's secrets.
    name = str(exc.hdr)
    if name in ("CONTENT-LENGTH", "TRANSFER-ENCODING", "EXPECT"):
        return f"invalid or conflicting {name.title()} header"
    if name.startswith("bare LF"):
        return "request lines must end with CRLF"
    return "malformed or repeated request header"


_BAD_REQUESTS: tuple[tuple[type[Exception], str], ...] = (
    (http_errors.InvalidRequestLine, "malformed request line"),
    (http_errors.InvalidRequestMethod, "invalid request method"),
    (http_errors.InvalidHTTPVersion, "unsupported HTTP version"),
    (http_errors.ObsoleteFolding, "obsolete line folding in a request header"),
    (http_errors.InvalidHeaderName, "malformed request header name"),
    (http_errors.InvalidSchemeHeaders, "contradictory scheme headers"),
    (http_errors.InvalidChunkSize, "malformed chunked body"),
    (http_errors.ChunkMissingTerminator, "malformed chunked body"),
    (http_errors.InvalidChunkExtension, "malformed chunked body"),
    (http_errors.InvalidProxyLine, "malformed PROXY protocol line"),
    (http_errors.InvalidH2CPreface, "expected an HTTP/2 connection preface"),
)
