"""Fetching a feed document: one conditional GET, bounded, to allowed addresses only.

Every hop (the feed URL, then each redirect) is resolved once, every address it resolves to
is checked (feed.sources.addresses), and the connection goes to a checked address: a name
that answers a public address to the check and an internal one to the connection (DNS
rebinding) gets nowhere. The Host header, TLS SNI and certificate verification use the URL's
host name. Proxy variables (HTTP_PROXY...) are not used, because the check must judge the
address connected to; certificates come from the system store, or SSL_CERT_FILE.

Errors tell an admin what to fix without mapping the network behind the poller: a refused
address is the one message "address not allowed", decided before any connection, and a
failure to connect to an allowed address is "cannot connect" whatever the cause (refused,
timed out, unreachable); the cause is logged for operators only.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from contextlib import closing
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote, urljoin, urlsplit

from feed.sources.addresses import AddressNotAllowed, Allowlist, Endpoint, Unresolvable, resolve

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5  # feeds that moved once or twice are common; longer chains are loops
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Characters kept as they are in a request target; anything else is percent-encoded.
_TARGET_SAFE = "!$&'()*+,/:;=?@%~[]"

NOT_ALLOWED = "address not allowed"
CANNOT_CONNECT = "cannot connect to the feed's server"
TLS_FAILED = "the TLS handshake failed (is the certificate valid for the host name?)"
NOT_HTTP = "the server's answer is not HTTP or broke off"


class FetchError(Exception):
    """The feed could not be fetched; ``reason`` is a stable short code."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    user_agent: str = "newsfeed"
    # Non-public destinations fetches may reach (NEWSFEED_FETCH_ALLOW); none by default.
    allow: Allowlist = field(default_factory=Allowlist)


@dataclass(frozen=True)
class Fetched:
    status: int  # 200 (body present) or 304 (not modified, empty body)
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    url: str = ""


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) and without brackets
    port: int
    path: str  # path and query, as sent

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def fetch(
    url: str,
    options: FetchOptions,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """GET ``url`` conditionally, following redirects; raise :class:`FetchError` on any
    failure, before connecting when an address is not allowed."""
    headers = {
        "User-Agent": options.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    target = _target(url, redirected=False)
    for _hop in range(MAX_REDIRECTS + 1):
        with closing(_open(target, options)) as connection:
            with _get(connection, target, headers, options) as response:
                if response.status not in REDIRECTS:
                    return _result(response, target, options, etag, last_modified)
                location = response.getheader("Location")
        if not location:
            raise FetchError(
                "http_error", f"HTTP {response.status} without a Location", response.status
            )
        target = _target(urljoin(target.url, location.strip()), redirected=True)
    raise FetchError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")


def _target(url: str, *, redirected: bool) -> _Target:
    subject = "the redirect target" if redirected else "the feed URL"
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise FetchError("invalid_url", f"{subject} is not a valid URL: {url[:200]!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise FetchError("invalid_url", f"{subject} is not http(s): {url[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise FetchError("invalid_url", f"{subject} carries credentials")
    if not host:
        raise FetchError("invalid_url", f"{subject} has no host: {url[:200]!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port or DEFAULT_PORTS[scheme],
        path=quote(path, safe=_TARGET_SAFE),
    )


def _open(target: _Target, options: FetchOptions) -> http.client.HTTPConnection:
    """A connection to one checked address of the target's host, TLS set up for its name."""
    try:
        endpoints = resolve(target.host, target.port, options.allow)
    except AddressNotAllowed:
        log.warning("fetch %s: refused, the host is not an allowed address", target.url[:200])
        raise FetchError("not_allowed", NOT_ALLOWED) from None
    except Unresolvable:
        raise FetchError("unresolvable", "the host name does not resolve") from None
    sock = _connect(target, endpoints, options.timeout)
    if target.scheme == "https":
        try:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        except (OSError, ssl.CertificateError) as error:
            sock.close()
            log.warning("fetch %s: TLS failed: %s", target.url[:200], error)
            raise FetchError("tls_error", TLS_FAILED) from None
    connection = http.client.HTTPConnection(target.host, target.port, timeout=options.timeout)
    connection.sock = sock  # connected above, to the address that was checked
    return connection


def _connect(target: _Target, endpoints: list[Endpoint], timeout: float) -> socket.socket:
    """A socket connected to the first endpoint that answers, in the resolver's order."""
    failures = []
    for endpoint in endpoints:
        sock = socket.socket(endpoint.family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.sockaddr)
        except OSError as error:
            sock.close()
            failures.append(f"{endpoint.address}: {error}")
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    log.warning("fetch %s: cannot connect (%s)", target.url[:200], "; ".join(failures))
    raise FetchError("unreachable", CANNOT_CONNECT)


def _get(
    connection: http.client.HTTPConnection,
    target: _Target,
    headers: dict[str, str],
    options: FetchOptions,
) -> http.client.HTTPResponse:
    try:
        connection.request("GET", target.path, headers={"Host": target.host_header, **headers})
        return connection.getresponse()
    except TimeoutError:
        raise FetchError("timeout", f"no answer within {options.timeout:g}s") from None
    except (OSError, http.client.HTTPException) as error:
        log.warning("fetch %s: bad answer: %r", target.url[:200], error)
        raise FetchError("invalid_response", NOT_HTTP) from None


def _result(
    response: http.client.HTTPResponse,
    target: _Target,
    options: FetchOptions,
    etag: str | None,
    last_modified: str | None,
) -> Fetched:
    if response.status == 304:
        return Fetched(
            status=304,
            etag=response.getheader("ETag") or etag,
            last_modified=response.getheader("Last-Modified") or last_modified,
            url=target.url,
        )
    if not 200 <= response.status < 300:
        raise FetchError("http_error", _status_text(response.status), response.status)
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > options.max_bytes:
        raise _too_large(options.max_bytes)
    try:
        body = response.read(options.max_bytes + 1)
    except TimeoutError:
        raise FetchError("timeout", f"no answer within {options.timeout:g}s") from None
    except (OSError, http.client.HTTPException) as error:
        log.warning("fetch %s: body broke off: %r", target.url[:200], error)
        raise FetchError("invalid_response", NOT_HTTP) from None
    if len(body) > options.max_bytes:
        raise _too_large(options.max_bytes)
    return Fetched(
        status=response.status,
        body=body,
        etag=response.getheader("ETag"),
        last_modified=response.getheader("Last-Modified"),
        content_type=response.getheader("Content-Type"),
        url=target.url,
    )


def _status_text(status: int) -> str:
    """``HTTP 404 Not Found``: the standard phrase, not the server's (which is any text)."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _too_large(cap: int) -> FetchError:
    return FetchError("too_large", f"the feed is larger than {cap} bytes")
