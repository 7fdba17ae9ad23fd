"""How much of an HTTP/1.1 request has arrived: the worker's poller reads a request until it
is whole (head and body) before a thread parses it, and this says when that is.

It only frames the request (RFC 9112: the head ends at the first empty line, the body is
Content-Length bytes or a chunked body). It does not validate: anything it cannot frame is
handed on as it is, where gunicorn's parser refuses it from the bytes already there, without
waiting for more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


class Verdict(enum.Enum):
    WAIT = "wait"  # more bytes are needed
    READY = "ready"  # the request is whole, or gunicorn's parser refuses what is here
    HEAD_TOO_LARGE = "head_too_large"  # no end of head within the limit: 431
    FIELD_TOO_LARGE = "field_too_large"  # a header line over its limit, head unfinished: 431
    BODY_TOO_LARGE = "body_too_large"  # the body is over the size limit: 413


@dataclass(frozen=True)
class Limits:
    """gunicorn's own limits (its parser enforces them) and the service's body limit."""

    request_line: int  # limit_request_line
    field_size: int  # limit_request_field_size: also a chunk-size line's limit
    head: int  # the most a head can be before gunicorn refuses it
    body: int  # NEWSFEED_MAX_REQUEST_BYTES


class RequestScanner:
    """Frames one request as its bytes arrive; ``scan`` is called with the whole buffer so
    far and resumes where it stopped."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.head_end: int | None = None  # offset just past the head's empty line
        self.end: int | None = None  # offset just past the body, once known
        self.chunked = False
        self.expects_continue = False  # "Expect: 100-continue" on an HTTP/1.1 request
        self._chunk_pos = 0  # chunked: where the next chunk-size line (or trailer) starts
        self._chunk_data = 0  # chunked: body bytes in the chunks framed so far
        self._in_trailers = False
        self._line_start: int | None = None  # unfinished head: the first unchecked header line
        # Unfinished head: how much was searched, and its LFs and CRLFs so far. Each scan
        # looks at new bytes only: a head sent in many small pieces costs linear time.
        self._searched = 0
        self._lfs = 0
        self._crlfs = 0

    def scan(self, buf: bytes | bytearray) -> Verdict:
        if self.head_end is None:
            verdict = self._scan_head(buf)
            if verdict is not None:
                return verdict
        if self.chunked:
            return self._scan_chunks(buf)
        assert self.end is not None
        return Verdict.READY if len(buf) >= self.end else Verdict.WAIT

    def _scan_head(self, buf: bytes | bytearray) -> Verdict | None:
        """None once the head is framed and the body's length known (self.end or chunked)."""
        # RFC 9112 2.2: one empty line before the request line is ignored, as gunicorn does.
        start = 2 if buf[:2] == b"\r\n" else 0
        searched = self._searched
        found = buf.find(b"\r\n\r\n", max(start, searched - 3))
        if found < 0:
            self._searched = len(buf)
            self._lfs += buf.count(b"\n", searched)
            self._crlfs += buf.count(b"\r\n", max(0, searched - 1))  # one may straddle
            line_end = buf.find(b"\r\n", start)
            if line_end < 0 and len(buf) - start - 2 > self.limits.request_line:
                return Verdict.READY  # gunicorn answers 414 from what is here
            if self._lfs != self._crlfs:
                return Verdict.READY  # a bare LF: gunicorn answers 400 at once
            if len(buf) > self.limits.head:
                return Verdict.HEAD_TOO_LARGE
            if line_end >= 0 and self._field_too_large(buf, line_end + 2):
                return Verdict.FIELD_TOO_LARGE
            return Verdict.WAIT
        self.head_end = found + 4
        return self._frame_body(bytes(buf[start:found]))

    def _field_too_large(self, buf: bytes | bytearray, headers_start: int) -> bool:
        """Whether a header line, finished or still arriving, is over gunicorn's limit (it
        counts the line's CRLF): it would refuse the head once whole, so it need not be."""
        pos = headers_start if self._line_start is None else self._line_start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            if line_end - pos + 2 > self.limits.field_size:
                return True
            pos = line_end + 2
        self._line_start = pos
        return len(buf) - pos + 2 > self.limits.field_size

    def _frame_body(self, head: bytes) -> Verdict | None:
        assert self.head_end is not None
        request_line, *lines = head.split(b"\r\n")
        lengths: list[bytes] = []
        codings: list[bytes] = []
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon:
                return Verdict.READY  # not a header line: gunicorn refuses the head
            name = name.lower()
            value = value.strip(b" \t")
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings += [c.strip(b" \t").lower() for c in value.split(b",")]
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = request_line.endswith(b"HTTP/1.1")
        if codings:
            if lengths or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                return Verdict.READY  # gunicorn refuses the framing from the head alone
            self.chunked = True
            self._chunk_pos = self.head_end
            return None
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            return Verdict.READY  # gunicorn refuses the framing from the head alone
        # RFC 9112 6.3: a request with neither header has no body.
        length = int(lengths[0]) if lengths else 0
        if length > self.limits.body:
            return Verdict.BODY_TOO_LARGE
        self.end = self.head_end + length
        return None

    def _scan_chunks(self, buf: bytes | bytearray) -> Verdict:
        pos = self._chunk_pos
        while not self._in_trailers:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                too_long = len(buf) - pos > self.limits.field_size
                return Verdict.READY if too_long else Verdict.WAIT
            size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_text or not HEX_DIGITS.issuperset(size_text):
                return Verdict.READY  # gunicorn answers 400 for this chunk
            size = int(size_text, 16)
            if self._chunk_data + size > self.limits.body:
                return Verdict.BODY_TOO_LARGE
            if size == 0:
                self._in_trailers = True
                pos = line_end + 2
                break
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                self._chunk_pos = pos
                return Verdict.WAIT
            if buf[data_end : data_end + 2] != b"\r\n":
                return Verdict.READY  # gunicorn answers 400 for this chunk
            self._chunk_data += size
            pos = data_end + 2
        self._chunk_pos = pos
        # The trailer section: empty, or header lines ending with an empty line.
        if buf[pos : pos + 2] == b"\r\n":
            self.end = pos + 2
            return Verdict.READY
        found = buf.find(b"\r\n\r\n", pos)
        if found >= 0:
            self.end = found + 4
            return Verdict.READY
        trailers = buf[pos:]
        if len(trailers) > self.limits.head or trailers.count(b"\n") != trailers.count(b"\r\n"):
            return Verdict.READY  # gunicorn refuses the trailers from what is here
        return Verdict.WAIT
