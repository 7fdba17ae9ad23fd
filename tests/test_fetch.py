"""Fetching feeds: conditional and bounded, and never into the network behind the poller.

A source is an admin's URL; the poller runs next to Redis and the cloud's metadata service.
Fetches refuse loopback, private, link-local and other non-public addresses (unless the
operator's allowlist admits them) before connecting, judge the address actually connected to,
on every redirect too, and fail with messages that do not tell what is reachable inside.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from feed import sources
from feed.sources import polling
from feed.sources.addresses import Allowlist, is_public
from feed.sources.fetch import CANNOT_CONNECT, NOT_ALLOWED, FetchError, FetchOptions, fetch
from tests.feedserver import feed_server

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title>
<item><title>A story</title><link>https://news.example.org/1</link><guid>1</guid></item>
</channel></rss>"""
REFUSED = "not_allowed: " + NOT_ALLOWED  # what a poll records and answers, always the same


class Listener:
    """A TCP port that records every connection made to it (and the bytes sent)."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]

    def received(self) -> list[bytes]:
        """What each connection made so far sent; a client's connect() has returned once it is
        queued here, so a fetch that connected before this call is always seen."""
        found = []
        while select.select([self.sock], [], [], 0)[0]:
            conn, _ = self.sock.accept()
            conn.settimeout(1)
            try:
                found.append(conn.recv(65536))
            except OSError:
                found.append(b"")
            conn.close()
        return found


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener("127.0.0.1")
    yield port
    port.sock.close()


def refused(url: str, options: FetchOptions | None = None) -> FetchError:
    with pytest.raises(FetchError) as error:
        fetch(url, options or FetchOptions(timeout=5))
    assert (error.value.reason, error.value.message) == ("not_allowed", NOT_ALLOWED)
    return error.value


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- the finding: a source at Redis's port ------------------------------------------------


def test_a_source_at_redis_is_refused_and_redis_never_hears_from_the_poller(
    redis_server, redis_client
):
    log_before = redis_server.log_path.read_text(errors="replace")
    source = sources.create(redis_client, f"http://127.0.0.1:{redis_server.port}/", ["world"])
    outcome = polling.poll(redis_client, source.id, FetchOptions(timeout=5))
    assert outcome.status == "error" and outcome.error == REFUSED
    assert sources.get(redis_client, source.id).state.last_error == REFUSED
    log_after = redis_server.log_path.read_text(errors="replace")
    assert "SECURITY ATTACK" not in log_after[len(log_before) :]


def test_a_refused_address_gets_no_byte(listener):
    refused(f"http://127.0.0.1:{listener.port}/feed.xml")
    refused(f"https://127.0.0.1:{listener.port}/feed.xml")
    assert listener.received() == []


def test_a_name_resolving_to_loopback_is_refused(listener):
    refused(f"http://localhost:{listener.port}/feed.xml")
    refused(f"http://LOCALHOST.:{listener.port}/feed.xml")
    assert listener.received() == []


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_is_refused_and_admitted_by_the_allowlist():
    v6 = Listener("::1")
    try:
        refused(f"http://[::1]:{v6.port}/feed.xml")
        refused(f"http://[::ffff:127.0.0.1]:{v6.port}/feed.xml")
        assert v6.received() == []
    finally:
        v6.sock.close()
    with feed_server(host="::1") as server:
        url = server.serve("/v6.xml", FEED)
        refused(url)
        assert server.requests == []
        assert fetch(url, server.options()).body == FEED.encode()


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",  # the cloud metadata service
        "metadata.google.internal",
        "metadata",
        "instance-data.ec2.internal",
        "[fd00:ec2::254]",
        "100.100.100.200",
        "[::ffff:169.254.169.254]",  # IPv4-mapped
        "[64:ff9b::a9fe:a9fe]",  # NAT64
        "[2002:a9fe:a9fe::1]",  # 6to4
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "127.0.0.2",
        "2130706433",  # 127.0.0.1 in decimal
        "0x7f.1",
        "127.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "[::]",
        "[fe80::1]",
        "[ff02::1]",
        "[::127.0.0.1]",
    ],
)
def test_internal_and_metadata_addresses_are_refused(host):
    refused(f"http://{host}/latest/meta-data/")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_public(address):
    assert is_public(ipaddress.ip_address(address))


# --- redirects ------------------------------------------------------------------------------


def test_a_redirect_to_an_internal_address_is_refused(listener):
    with feed_server() as server:
        for i, target in enumerate(
            [
                f"http://127.0.0.1:{listener.port}/",
                f"http://localhost:{listener.port}/",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/",
            ]
        ):
            url = server.serve(f"/moved-{i}.xml", "", status=302, location=target)
            refused(url, server.options())
            assert len(server.hits(f"/moved-{i}.xml")) == 1  # the allowed hop was fetched
        # A relative redirect stays on the allowed server.
        server.serve("/ok.xml", FEED)
        relative = server.serve("/relative.xml", "", status=307, location="/ok.xml")
        assert fetch(relative, server.options()).url == server.url("/ok.xml")
    assert listener.received() == []


def test_a_poll_redirected_inside_records_the_one_message(redis_client, listener):
    with feed_server() as server:
        url = server.serve(
            "/moved.xml", "", status=301, location=f"http://127.0.0.1:{listener.port}/"
        )
        source = sources.create(redis_client, url, ["world"])
        outcome = polling.poll(redis_client, source.id, server.options())
    assert outcome.error == REFUSED
    assert listener.received() == []


# --- the allowlist --------------------------------------------------------------------------


def test_the_allowlist_admits_the_local_feed_server_and_nothing_else():
    with feed_server() as server:
        url = server.serve("/feed.xml", FEED)
        refused(url)  # the default: loopback refused
        assert server.requests == []
        assert fetch(url, server.options()).body == FEED.encode()
        by_network = FetchOptions(timeout=5, allow=Allowlist.parse(["127.0.0.0/8"]))
        assert fetch(url, by_network).status == 200
        by_name = FetchOptions(timeout=5, allow=Allowlist.parse([f"localhost:{server.port}"]))
        assert fetch(server.url("/feed.xml", host="localhost"), by_name).status == 200
        other_port = FetchOptions(timeout=5, allow=Allowlist.parse(["127.0.0.1:1"]))
        refused(url, other_port)


@pytest.mark.parametrize(
    ("entries", "admitted", "refused_"),
    [
        (["10.0.0.0/8"], [("10.9.8.7", 80)], [("11.0.0.1", 80), ("192.168.0.1", 80)]),
        (["192.168.1.5"], [("192.168.1.5", 443)], [("192.168.1.6", 443)]),
        (["192.168.1.5:8080"], [("192.168.1.5", 8080)], [("192.168.1.5", 80)]),
        (["[fd00::1]:8443", "fd12::/16"], [("fd00::1", 8443), ("fd12::9", 1)], [("fd00::1", 1)]),
    ],
)
def test_allowlist_entries(entries, admitted, refused_):
    allow = Allowlist.parse(entries)
    for address, port in admitted:
        assert allow.admits(ipaddress.ip_address(address), port)
    for address, port in refused_:
        assert not allow.admits(ipaddress.ip_address(address), port)


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "host:0", "host:99999", "a b", "[::1]x", ":80"])
def test_a_malformed_allowlist_entry_is_an_error_naming_it(entry):
    with pytest.raises(ValueError, match="neither a CIDR nor a host"):
        Allowlist.parse([entry])


# --- DNS rebinding, Host and TLS --------------------------------------------------------


class Resolver:
    """The system resolver, except that each of ``names`` answers its turns in order (the last
    one from then on), as a rebinding DNS server would; counts the lookups of those names."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, names: dict[str, list[tuple[str, ...]]]
    ) -> None:
        self.names = names
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def getaddrinfo(self, host, port, *args, **kwargs):
        turns = self.names.get(host)
        if turns is None:
            return self._real(host, port, *args, **kwargs)
        turn = turns[min(self.lookups.count(host), len(turns) - 1)]
        self.lookups.append(host)
        return [info for address in turn for info in self._real(address, port, *args, **kwargs)]


def test_the_connection_goes_to_the_address_checked_and_the_host_header_keeps_the_name(
    monkeypatch,
):
    with feed_server() as server:
        server.serve("/feed.xml", FEED)
        # Checked as 127.0.0.1 (admitted), then rebound to 127.0.0.2, which nothing admits.
        resolver = Resolver(monkeypatch, {"feeds.rebind.test": [("127.0.0.1",), ("127.0.0.2",)]})
        fetched = fetch(server.url("/feed.xml", host="feeds.rebind.test"), server.options())
        assert fetched.status == 200
        assert resolver.lookups == ["feeds.rebind.test"]
        assert server.hits("/feed.xml")[0]["host"] == f"feeds.rebind.test:{server.port}"


def test_a_name_with_one_internal_address_among_public_ones_is_refused(monkeypatch, listener):
    Resolver(monkeypatch, {"feeds.mixed.test": [("8.8.8.8", "127.0.0.1")]})
    refused(f"http://feeds.mixed.test:{listener.port}/")
    assert listener.received() == []


def _certificates(directory: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (written to a file for SSL_CERT_FILE) and a server context with a certificate for
    ``name`` signed by it."""
    now = datetime.now(UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("newsfeed test CA", ca_key, "newsfeed test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(name, key, "newsfeed test CA", ca_key, False)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + leaf.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


def test_tls_verifies_the_certificate_for_the_name_and_sends_it_as_sni(monkeypatch, tmp_path):
    ca_file, context = _certificates(tmp_path, "feeds.tls.test")
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment]
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    Resolver(monkeypatch, {"feeds.tls.test": [("127.0.0.1",)]})
    with feed_server(tls=context) as server:
        server.serve("/feed.xml", FEED)
        fetched = fetch(server.url("/feed.xml", host="feeds.tls.test"), server.options())
        assert fetched.body == FEED.encode()
        assert names == ["feeds.tls.test"]
        assert server.hits("/feed.xml")[0]["host"] == f"feeds.tls.test:{server.port}"
        # The same server by its address: the certificate does not name it.
        with pytest.raises(FetchError) as error:
            fetch(server.url("/feed.xml"), server.options())
        assert error.value.reason == "tls_error"


# --- errors that do not map the network -----------------------------------------------------


def test_connection_failures_to_allowed_addresses_share_one_message(listener):
    closed = Listener("127.0.0.1")
    port = closed.port
    closed.sock.close()  # nothing listens there now: connection refused
    allow = FetchOptions(timeout=5, allow=Allowlist.parse(["127.0.0.1/32"]))
    with pytest.raises(FetchError) as error:
        fetch(f"http://127.0.0.1:{port}/", allow)
    assert (error.value.reason, error.value.message) == ("unreachable", CANNOT_CONNECT)
    assert "refused" not in str(error.value).lower() and "errno" not in str(error.value).lower()


def test_a_server_that_does_not_speak_http_is_one_generic_error(redis_server):
    allow = FetchOptions(timeout=5, allow=Allowlist.parse([f"127.0.0.1:{redis_server.port}"]))
    with pytest.raises(FetchError) as error:
        fetch(f"http://127.0.0.1:{redis_server.port}/", allow)
    assert error.value.reason == "invalid_response"
    assert "redis" not in error.value.message.lower()


# --- what fetching always did: conditional, bounded, http(s) only ---------------------------


def test_fetch_sends_user_agent_and_validators_and_caps_size():
    with feed_server() as server:
        options = server.options(max_bytes=2000, user_agent="newsfeed/1 (+ops@example.com)")
        url = server.serve("/small.xml", FEED)
        first = fetch(url, options)
        assert first.status == 200 and first.etag
        assert server.hits("/small.xml")[0]["user-agent"] == "newsfeed/1 (+ops@example.com)"
        again = fetch(url, options, etag=first.etag, last_modified="Sat, 28 Feb 2026 00:00:00 GMT")
        assert again.status == 304 and again.body == b"" and again.etag == first.etag
        sent = server.hits("/small.xml")[1]
        assert sent["if-none-match"] == first.etag
        assert sent["if-modified-since"] == "Sat, 28 Feb 2026 00:00:00 GMT"

        big = server.serve("/big.xml", "x" * 2001)
        with pytest.raises(FetchError) as error:
            fetch(big, options)
        assert error.value.reason == "too_large"

        failing = server.serve("/down.xml", "", status=500)
        with pytest.raises(FetchError) as error:
            fetch(failing, options)
        assert error.value.reason == "http_error" and error.value.status == 500
        assert error.value.message == "HTTP 500 Internal Server Error"


def test_fetch_refuses_other_schemes_and_credentials_even_through_a_redirect():
    for url in ("file:///etc/passwd", "ftp://example.com/feed", "http://user:pw@example.com/"):
        with pytest.raises(FetchError) as error:
            fetch(url, FetchOptions())
        assert error.value.reason == "invalid_url"
    with feed_server() as server:
        for i, target in enumerate(["ftp://example.com/feed", "http://u:p@example.com/"]):
            url = server.serve(f"/moved-{i}.xml", "", status=302, location=target)
            with pytest.raises(FetchError) as error:
                fetch(url, server.options())
            assert error.value.reason == "invalid_url"
        ok = server.serve("/ok.xml", FEED)
        moved = server.serve("/here.xml", "", status=301, location=ok)
        assert fetch(moved, server.options()).body == FEED.encode()
        loop = server.serve("/loop.xml", "", status=302, location="/loop.xml")
        with pytest.raises(FetchError) as error:
            fetch(loop, server.options())
        assert error.value.reason == "too_many_redirects"
