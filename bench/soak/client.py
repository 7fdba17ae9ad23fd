"""The soak's HTTP client: keep-alive connections that survive a server's restarts."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any, NamedTuple

from bench.common import HOST
from bench.soak.common import CLIENT_TIMEOUT_S, IDLE_RECONNECT_S


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: http.client.HTTPMessage


class Client:
    """One keep-alive connection, replaced after an error or when it has been idle too long."""

    def __init__(self, port: int, timeout: float = CLIENT_TIMEOUT_S) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def request(self, method: str, path: str, auth: str | None = None, body: Any = None) -> Reply:
        now = time.monotonic()
        if self._conn is None or now - self._last_used > IDLE_RECONNECT_S:
            self.close()
            self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        headers = {"Authorization": auth} if auth else {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        self._last_used = time.monotonic()
        return Reply(response.status, data, response.headers)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def error_code(reply: Reply) -> str:
    try:
        return str(json.loads(reply.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "?"


def status_key(reply: Reply) -> str:
    return str(reply.status) if reply.status < 400 else f"{reply.status} {error_code(reply)}"


def probe(port: int, path: str, timeout: float = 5.0) -> Reply | None:
    client = Client(port, timeout)
    try:
        return client.request("GET", path)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        client.close()
