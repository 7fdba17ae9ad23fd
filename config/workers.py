"""The gunicorn worker the service runs (config/gunicorn.py: ``worker_class``).

gunicorn's ``gthread`` waits for a connection's first bytes in its poller, then hands the
connection to a thread that reads the rest of the request from the socket: a client sending
it a byte at a time holds that thread for as long as it likes, and a few dozen such clients
hold every thread, so nobody else is answered. This worker reads the whole request (head and
body, within the size limits) in the poller, which waits on any number of sockets at once,
under one deadline; a thread gets the request only when all of it is there, and so spends
its time on the application alone. The same threads, pool and settings as ``gthread`` (so
numpy and Redis round trips still overlap, and the model keeper thread is untouched).

Its own answers (a request gunicorn cannot parse, one over a limit, one too slow to arrive)
are in the API's JSON error shape (config/http_errors.py), not gunicorn's HTML pages.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.config import Config
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.message import Message
from gunicorn.http.unreader import IterUnreader
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers import gthread

from config import Settings, http_errors
from config.request_framing import Limits, RequestScanner, Verdict

# A new connection that sends nothing is closed after this long (gthread's wait, too).
FIRST_BYTE_TIMEOUT_S = gthread.DEFAULT_WORKER_DATA_TIMEOUT
# The longest a thread waits on a client's socket: writing a response the client does not
# read, or reading a request gunicorn refuses before it is whole (it never waits otherwise).
THREAD_SOCKET_TIMEOUT_S = 10.0
RECV_BYTES = 64 * 1024
# On SIGTERM, a request half received may still arrive whole within this long.
SHUTDOWN_READ_GRACE_S = 5.0
# Every connection may buffer this much; beyond it, requests share a per-worker budget (at
# least two of the largest bodies), and wait for room when it is spent, so a few dozen
# large uploads cannot take all the memory. The small requests of readers never wait.
SMALL_REQUEST_BYTES = 64 * 1024
LARGE_BUFFER_BUDGET = 64 * 1024 * 1024
# After an answer that closes the connection, what the client still sends is read and
# dropped (up to this much, for this long) so that it gets the answer rather than a reset.
CLOSE_LINGER_S = 2.0
CLOSE_DRAIN_BYTES = 64 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def can_buffer(cfg: Config) -> bool:
    """Plain HTTP/1.x only: TLS, the PROXY protocol, HTTP/2 and uwsgi read what comes first
    differently, and are left to gthread's own handling."""
    return (
        not cfg.is_ssl
        and cfg.proxy_protocol == "off"
        and cfg.http2_cleartext == "off"
        and getattr(cfg, "protocol", "http") == "http"
    )


class BufferedConn(gthread.TConn):
    """A connection and the request being read for it by the poller."""

    def __init__(self, cfg: Config, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.inbox = bytearray()
        self.scanner: RequestScanner | None = None
        self.idle_deadline = 0.0  # closed quietly if no byte of the next request by then
        self.read_deadline: float | None = None  # answered 408 if not whole by then
        self.continue_sent = False
        self.paused = False  # waiting for room in the worker's buffer budget
        self.budgeted = 0  # bytes of inbox counted against that budget
        self.drained = 0  # bytes read and dropped while closing
        self.closed = False

    @property
    def deadline(self) -> float:
        return self.idle_deadline if self.read_deadline is None else self.read_deadline

    def init(self) -> None:
        super().init()
        # handle() made the socket blocking: every wait in a thread is bounded instead.
        self.sock.settimeout(THREAD_SOCKET_TIMEOUT_S)


class BufferingThreadWorker(gthread.ThreadWorker):
    """gthread, with each request read whole by the poller before a thread handles it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffering = can_buffer(self.cfg)
        self.reading: dict[BufferedConn, None] = {}  # insertion-ordered set
        self.closing: dict[BufferedConn, float] = {}  # lingering closes and their deadlines
        self.paused: deque[BufferedConn] = deque()
        self.budgeted = 0
        self.budget = LARGE_BUFFER_BUDGET
        self.limits = Limits(0, 0, 0, 0)
        # A request must have arrived whole this long after its first byte, or it is answered
        # 408 and closed (NEWSFEED_REQUEST_READ_TIMEOUT_SECONDS). With no thread held
        # meanwhile, it only bounds how long a connection and its buffer are kept.
        self.read_timeout = 30.0

    def init_process(self) -> None:
        settings = Settings.from_env()
        body_limit = settings.max_request_bytes
        self.read_timeout = settings.request_read_timeout_seconds
        cfg = self.cfg
        # gunicorn's parser refuses a head longer than its request line and header buffer.
        fields = cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 4
        self.limits = Limits(
            request_line=cfg.limit_request_line,
            field_size=cfg.limit_request_field_size,
            head=cfg.limit_request_line + 2 + fields,
            body=body_limit,
        )
        self.budget = max(LARGE_BUFFER_BUDGET, 2 * body_limit)
        if not self.buffering:
            self.log.warning("TLS, PROXY or HTTP/2 configured: slow clients can hold threads")
        super().init_process()  # runs the worker: last

    # -- connections in, requests read by the poller ------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        if not self.buffering:
            super().accept(listener)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        self._read_request(conn, b"", FIRST_BYTE_TIMEOUT_S)

    def _read_request(self, conn: BufferedConn, pending: bytes, idle: float) -> None:
        """Read the connection's next request; ``pending``: its bytes already read."""
        now = time.monotonic()
        conn.inbox = bytearray(pending)
        conn.scanner = RequestScanner(self.limits)
        conn.idle_deadline = now + idle
        conn.read_deadline = now + self.read_timeout if pending else None
        conn.continue_sent = False
        self.reading[conn] = None
        self._count(conn)
        if pending and self._advance(conn):
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: BufferedConn, _sock: Any) -> None:
        if self.budgeted >= self.budget and len(conn.inbox) >= SMALL_REQUEST_BYTES:
            self._unwatch(conn)
            conn.paused = True
            self.paused.append(conn)
            return
        data = _receive(conn)
        if data is None:
            return
        if not data:  # the client went away
            self._leave(conn)
            self._close(conn)
            return
        if conn.read_deadline is None:
            conn.read_deadline = time.monotonic() + self.read_timeout
        conn.inbox += data
        self._count(conn)
        self._advance(conn)

    def _advance(self, conn: BufferedConn) -> bool:
        """Act on what has arrived; True once the connection is no longer being read."""
        assert conn.scanner is not None
        verdict = conn.scanner.scan(conn.inbox)
        if verdict is Verdict.WAIT:
            if conn.scanner.expects_continue and not conn.continue_sent:
                # The client waits for this before it sends the body (RFC 9110 10.1.1).
                conn.continue_sent = True
                self._send(conn, CONTINUE)
            return False
        self._leave(conn)
        if verdict is Verdict.READY:
            conn.parser.unreader.unread(bytes(conn.inbox))
            conn.inbox = bytearray()
            conn.data_ready = True
            self.enqueue_req(conn)
        elif verdict is Verdict.HEAD_TOO_LARGE:
            self._refuse(conn, http_errors.head_too_large(self.limits.head))
        elif verdict is Verdict.FIELD_TOO_LARGE:
            self._refuse(conn, http_errors.field_too_large(self.limits.field_size))
        else:
            self._refuse(conn, http_errors.body_too_large(self.limits.body))
        return True

    def _count(self, conn: BufferedConn) -> None:
        budgeted = max(0, len(conn.inbox) - SMALL_REQUEST_BYTES)
        self.budgeted += budgeted - conn.budgeted
        conn.budgeted = budgeted

    def _leave(self, conn: BufferedConn) -> None:
        """The connection is no longer read by the poller (its buffer is handed on)."""
        self.reading.pop(conn, None)
        self.budgeted -= conn.budgeted
        conn.budgeted = 0
        if conn.paused:
            conn.paused = False  # its entry in self.paused is skipped
        else:
            self._unwatch(conn)
        self._resume()

    def _resume(self) -> None:
        while self.paused and self.budgeted < self.budget:
            conn = self.paused.popleft()
            if conn.paused:
                conn.paused = False
                self.poller.register(
                    conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn)
                )

    # -- answers and closes from the poller ------------------------------------------------------

    def _refuse(self, conn: BufferedConn, answer: http_errors.ErrorAnswer) -> None:
        self.log.warning("Refused request from ip=%s: %s", _ip(conn.client), answer.message)
        self._send(conn, answer.render())
        self._close_gracefully(conn)

    def _send(self, conn: BufferedConn, data: bytes) -> None:
        # A few hundred bytes on a fresh socket: the kernel takes them whole; if it cannot,
        # the client is not reading and loses the answer.
        try:
            conn.sock.send(data)
        except OSError:
            pass

    def _close_gracefully(self, conn: BufferedConn) -> None:
        """Half-close, then drain what the client still sends, without blocking the poller
        (gthread lingers up to 2 s per connection in its main loop)."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self.closing[conn] = time.monotonic() + CLOSE_LINGER_S
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_closing, conn))

    def _on_closing(self, conn: BufferedConn, _sock: Any) -> None:
        data = _receive(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > CLOSE_DRAIN_BYTES:
            self._close(conn)

    def _close(self, conn: BufferedConn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.closing.pop(conn, None)
        self._unwatch(conn)
        conn.close()
        self.nr_conns -= 1

    def _unwatch(self, conn: BufferedConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass  # not registered

    def murder_pending(self) -> None:
        """Called by gthread's main loop about every second: deadlines of reads and closes."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.reading if c.deadline <= now]:
            self._leave(conn)
            if conn.read_deadline is None:
                self._close(conn)  # an idle connection: nothing to answer
            else:
                self._refuse(conn, http_errors.timed_out(self.read_timeout))
        for conn in [c for c, deadline in self.closing.items() if deadline <= now]:
            self._close(conn)

    def _cap_keepalive(self, deadline: float) -> None:
        """On shutdown: idle connections close by ``deadline`` (gthread's linger), and a
        request still arriving gets SHUTDOWN_READ_GRACE_S more, not its whole read timeout,
        which would hold the stop for the full graceful timeout under slow clients."""
        super()._cap_keepalive(deadline)
        last_read = time.monotonic() + SHUTDOWN_READ_GRACE_S
        for conn in self.reading:
            conn.idle_deadline = min(conn.idle_deadline, deadline)
            if conn.read_deadline is not None:
                conn.read_deadline = min(conn.read_deadline, last_read)

    # -- threads ---------------------------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool:
        if self.buffering:
            # The body is here already: the client was sent a 100 Continue if it waited.
            req._expected_100_continue = False
            if isinstance(req.body.reader, ChunkedReader):
                # Decoded here, from the buffer (never the socket): a malformed chunk or
                # trailer is then gunicorn's 400 (handle_error), not an exception raised
                # inside the application's read, which would be a 500.
                data = req.body.read()
                req.body = Body(LengthReader(IterUnreader([data]), len(data)))
        return bool(super().handle_request(req, conn))

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        """On the main thread after a request: read the next one, or close."""
        if not self.buffering:
            super().finish_request(conn, fs)
            return
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        if result is not True:
            self._close_gracefully(conn)
            return
        try:
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        # Bytes read ahead (a pipelined request) start the next request.
        pending = conn.parser.unreader.take_buffered()
        idle = self.cfg.keepalive if self.alive else gthread.STOP_KEEPALIVE_LINGER
        self._read_request(conn, pending, idle)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not serve, in the API's error shape."""
        request_start = datetime.now()
        answer = http_errors.for_exception(exc, self.cfg)
        try:
            util.write_nonblock(client, answer.render())
        except Exception:
            self.log.debug("Failed to send error message.")
        if answer.client_error:
            # What was refused, not the exception's text: that quotes the client's bytes.
            self.log.warning(
                "Invalid request from ip=%s: %s (%s)", _ip(addr), answer.message, type(exc).__name__
            )
            found = getattr(exc, "req", None)  # a header error knows its request
            if req is None and isinstance(found, Message):
                req = found
        else:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        if req is not None:
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"] = _ip(addr)
            resp = Response(req, client, self.cfg)
            resp.status = f"{answer.status} {answer.reason}"
            resp.response_length = len(answer.render())
            self.log.access(resp, req, environ, datetime.now() - request_start)


def _ip(addr: Any) -> str:
    return str(addr[0]) if isinstance(addr, tuple) and addr else ""


def _receive(conn: BufferedConn) -> bytes | None:
    """What the client sent, up to RECV_BYTES: None when nothing is there yet, b"" when it went
    away (a reset counts as gone)."""
    try:
        return conn.sock.recv(RECV_BYTES)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
