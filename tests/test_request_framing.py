"""config/request_framing.py: the worker hands a request to a thread exactly when all of it
has arrived (so a thread never waits on a slow client), and refuses what can never end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.request_framing import Limits, RequestScanner, Verdict

LIMITS = Limits(request_line=4094, field_size=8190, head=4094 + 2 + 100 * 8192 + 4, body=1000)


def head(*lines: str) -> bytes:
    return ("\r\n".join(["POST /v1/events HTTP/1.1", "Host: t", *lines]) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def arrival(request: bytes, cuts: list[int]) -> list[Verdict]:
    """The verdict after each piece, the request arriving cut at ``cuts``."""
    scanner = RequestScanner(LIMITS)
    verdicts = []
    for end in [*sorted(set(cuts)), len(request)]:
        verdicts.append(scanner.scan(request[:end]))
    return verdicts


REQUESTS = {
    "no body": head(),
    "content-length": head("Content-Length: 11") + b"hello world",
    "chunked": head("Transfer-Encoding: chunked") + chunked(b"hello chunked world", 4),
    "chunked with trailers": head("Transfer-Encoding: chunked")
    + b"5\r\nhello\r\n0\r\nX-Check: 1\r\n\r\n",
    "chunk extension": head("Transfer-Encoding: chunked") + b"5;name=v\r\nhello\r\n0\r\n\r\n",
    "leading empty line": b"\r\n" + head("Content-Length: 2") + b"ok",
}


@pytest.mark.parametrize("name", REQUESTS)
@given(data=st.data())
def test_a_request_is_ready_exactly_when_its_last_byte_arrives(
    name: str, data: st.DataObject
) -> None:
    request = REQUESTS[name]
    cuts = data.draw(st.lists(st.integers(1, len(request) - 1), max_size=8))
    verdicts = arrival(request, cuts)
    assert verdicts[-1] is Verdict.READY
    assert all(v is Verdict.WAIT for v in verdicts[:-1]), verdicts


@pytest.mark.parametrize("name", REQUESTS)
def test_the_end_of_a_request_is_found_before_a_pipelined_one(name: str) -> None:
    request = REQUESTS[name]
    scanner = RequestScanner(LIMITS)
    assert scanner.scan(request + b"GET / HTTP/1.1\r\n") is Verdict.READY
    if scanner.end is not None:
        assert scanner.end == len(request)


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        # Handed on at once: gunicorn's parser refuses these from what is there.
        (b"GET /" + b"c" * 5000, Verdict.READY),
        (b"GET / HTTP/1.1\nHost: t\n", Verdict.READY),
        (head("Content-Length: 1", "Content-Length: 2"), Verdict.READY),
        (head("Content-Length: x"), Verdict.READY),
        (head("Transfer-Encoding: gzip"), Verdict.READY),
        (head("Transfer-Encoding: chunked", "Content-Length: 3"), Verdict.READY),
        (head("Transfer-Encoding: chunked") + b"zz\r\n", Verdict.READY),
        (head("Transfer-Encoding: chunked") + b"2\r\nabXY", Verdict.READY),
        # Refused by the worker itself.
        (head("Content-Length: 1001"), Verdict.BODY_TOO_LARGE),
        (head("Transfer-Encoding: chunked") + b"3e9\r\n", Verdict.BODY_TOO_LARGE),
        (
            head("Transfer-Encoding: chunked") + b"200\r\n" + b"a" * 512 + b"\r\n200\r\n",
            Verdict.BODY_TOO_LARGE,
        ),
        (b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"p" * LIMITS.head, Verdict.HEAD_TOO_LARGE),
        (b"GET / HTTP/1.1\r\nX-Token: " + b"t" * 8190, Verdict.FIELD_TOO_LARGE),
        (b"GET / HTTP/1.1\r\nX-Token: " + b"t" * 8190 + b"\r\nX-More: 1", Verdict.FIELD_TOO_LARGE),
        # Still arriving.
        (b"GET / HTTP/1.1\r\nX-Token: " + b"t" * 8170 + b"\r\nX-More: 1", Verdict.WAIT),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaa", Verdict.WAIT),
        (head("Content-Length: 1000") + b"a" * 999, Verdict.WAIT),
        (head("Transfer-Encoding: chunked") + b"5\r\nhel", Verdict.WAIT),
    ],
)
def test_what_cannot_be_framed_is_handed_on_or_refused_at_once(
    data: bytes, verdict: Verdict
) -> None:
    assert RequestScanner(LIMITS).scan(data) is verdict


def test_a_client_that_expects_100_continue_is_known_once_the_head_is_in() -> None:
    scanner = RequestScanner(LIMITS)
    assert scanner.scan(head("Content-Length: 5", "Expect: 100-continue")) is Verdict.WAIT
    assert scanner.expects_continue
    http10 = head("Content-Length: 5", "Expect: 100-continue").replace(b"HTTP/1.1", b"HTTP/1.0")
    scanner = RequestScanner(LIMITS)
    scanner.scan(http10)
    assert not scanner.expects_continue  # RFC 9110 10.1.1: ignored in HTTP/1.0


def test_a_header_line_over_its_limit_is_refused_while_it_is_still_arriving() -> None:
    scanner = RequestScanner(LIMITS)
    data = b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
    assert scanner.scan(data) is Verdict.WAIT
    for _ in range(100):
        data += b"t" * 100
        if scanner.scan(data) is not Verdict.WAIT:
            break
    assert scanner.scan(data) is Verdict.FIELD_TOO_LARGE
    assert len(data) - len(b"GET / HTTP/1.1\r\nHost: t\r\n") + 2 > LIMITS.field_size


PIECES = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b"\r\n\r\n",
        b":",
        b" ",
        b"a",
        b"0",
        b"5",
        b"GET / HTTP/1.1",
        b"Content-Length: 3",
        b"Transfer-Encoding: chunked",
        b"Expect: 100-continue",
        b";x",
    ]
)


@given(st.lists(PIECES, max_size=40), st.data())
def test_reading_in_pieces_decides_as_reading_all_at_once(
    pieces: list[bytes], data: st.DataObject
) -> None:
    request = b"".join(pieces)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(request)), max_size=10))))
    incremental = RequestScanner(LIMITS)
    for end in [*cuts, len(request)]:
        fresh = RequestScanner(LIMITS)
        verdict = incremental.scan(request[:end])
        assert verdict is fresh.scan(request[:end])
        assert (incremental.end, incremental.expects_continue) == (
            fresh.end,
            fresh.expects_continue,
        )
        if verdict is not Verdict.WAIT:
            break
