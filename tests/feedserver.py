"""A local HTTP(S) server for feed documents: ETag-aware, counting requests, no network.

It listens on loopback, which fetches refuse by default: tests admit it through an allowlist,
this server's address and port (``FeedServer.options``) or, for apps, ``LOCAL_FEEDS``.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from feed.sources.addresses import Allowlist
from feed.sources.fetch import FetchOptions

# The apps the fixtures build (tests/conftest.py) admit the local feed servers.
LOCAL_FEEDS = ("127.0.0.1/32",)


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    etag: bool = True  # answer an ETag and honour If-None-Match
    location: str | None = None  # with a 3xx status: where to


@dataclass
class FeedServer:
    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "http"
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str, host: str | None = None) -> str:
        """This server's URL for ``path``; ``host`` names it otherwise (a resolver test's name)."""
        netloc = f"{host}:{self.port}" if host else self.netloc
        return f"{self.scheme}://{netloc}{path}"

    def serve(self, path: str, body: bytes | str, **kwargs: object) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Route(data, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def options(self, **kwargs: Any) -> FetchOptions:
        """Fetch options that admit this server (its address and port) and nothing else local."""
        allow = Allowlist.parse([self.netloc])
        return FetchOptions(**{"timeout": 5, "allow": allow, **kwargs})

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]


@contextmanager
def feed_server(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[FeedServer]:
    """A server on ``host`` (``::1`` for IPv6), speaking HTTPS with ``tls``."""
    state = FeedServer(host=host, scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if route.status != 200:
                self.send_response(route.status)
                if route.location:
                    self.send_header("Location", route.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            tag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"'
            if route.etag and self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            if route.etag:
                self.send_header("ETag", tag)
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gives up (a refused certificate) is part of some tests

    server = Server((host, 0), Handler)
    if tls:
        # The handshake happens in the handler thread, so a stalled client blocks no other.
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
