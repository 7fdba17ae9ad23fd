"""Which addresses feed fetches may reach: the public internet, plus an operator's allowlist.

A feed URL is an admin's input, and the poller runs inside the deployment's network: without
this check a source at ``http://127.0.0.1:6379/`` or ``http://169.254.169.254/`` makes the
poller talk to Redis or to the cloud's metadata service. Names are judged by every address they
resolve to (feed.sources.fetch connects only to an address judged here), so a name that points
inside is refused like the address itself.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services by name; refused before any lookup, so the answer does not depend
# on whether this machine's resolver knows them. Their addresses (169.254.169.254,
# fd00:ec2::254, 100.100.100.200) are refused as link-local, ULA and CGNAT below.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)

# Spelled out rather than left to ipaddress.is_global, whose tables change between Python
# versions (multicast, for one, is "global" there).
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 included
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (Alibaba's metadata service is 100.100.100.200)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, the metadata address 169.254.169.254
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments (Oracle's metadata at 192.0.0.192)
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 included
    )
)
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local (AWS's metadata at fd00:ec2::254)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class AddressNotAllowed(Exception):
    """The host names, or resolves to, an address outside the public internet and the
    allowlist."""


class Unresolvable(Exception):
    """The host name has no address."""


@dataclass(frozen=True)
class Endpoint:
    """One resolved address of a host, checked, in the form ``socket.connect`` takes."""

    address: IPAddress
    family: int
    sockaddr: tuple[object, ...]


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (IPv4 inside IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        if any(address in network for network in _REFUSED_V6):
            return False
    elif any(address in network for network in _REFUSED_V4):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv4-mapped, 6to4 or NAT64 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class Allowlist:
    """Destinations an operator lets fetches reach although they are not public.

    ``networks`` admit any address inside them, ``endpoints`` one address and port, and
    ``names`` a host name as written in the URL (with any port, or one), whatever it resolves to.
    """

    networks: tuple[Network, ...] = ()
    endpoints: tuple[tuple[IPAddress, int], ...] = ()
    names: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """From entries such as ``10.0.0.0/8``, ``fd00::/8``, ``192.168.1.5``,
        ``127.0.0.1:8080``, ``[::1]:8080``, ``feeds.intranet`` or ``feeds.intranet:8443``."""
        networks: list[Network] = []
        endpoints: list[tuple[IPAddress, int]] = []
        names: list[tuple[str, int | None]] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                    continue
                host, port = _split_port(entry)
                address = _ip(host)
                if address is None:
                    names.append((_hostname(host), port))
                elif port is None:
                    networks.append(ipaddress.ip_network(address))
                else:
                    endpoints.append((address, port))
            except ValueError:
                raise ValueError(f"{entry!r} is neither a CIDR nor a host[:port]") from None
        return cls(tuple(networks), tuple(endpoints), tuple(names))

    def admits_name(self, host: str, port: int) -> bool:
        name = normal_host(host)
        return any(name == n and p in (None, port) for n, p in self.names)

    def admits(self, address: IPAddress, port: int) -> bool:
        return any(address in network for network in self.networks) or (
            (address, port) in self.endpoints
        )


def resolve(host: str, port: int, allow: Allowlist) -> list[Endpoint]:
    """Every address of ``host``, each one allowed, or :class:`AddressNotAllowed` before any
    connection: one internal address among public ones refuses the host."""
    name = normal_host(host)
    by_name = allow.admits_name(name, port)
    if name in METADATA_HOSTS and not by_name:
        raise AddressNotAllowed(host)
    try:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise Unresolvable(host) from None
    endpoints = []
    for family, _type, _proto, _name, sockaddr in found:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if not (by_name or is_public(address) or allow.admits(address, port)):
            raise AddressNotAllowed(host)
        endpoints.append(Endpoint(address, family, tuple(sockaddr)))
    if not endpoints:
        raise Unresolvable(host)
    return endpoints


def refused_literal(host: str, port: int, allow: Allowlist) -> bool:
    """Whether ``host`` is refused as written, without a lookup: a metadata service's name,
    or an address (any spelling the resolver accepts, ``0x7f.1`` too) that is not allowed."""
    name = normal_host(host)
    if allow.admits_name(name, port):
        return False
    if name in METADATA_HOSTS:
        return True
    address = _ip(name)
    if address is None and _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        try:  # the legacy forms inet_aton reads: 2130706433, 0x7f.1, 127.1
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False
    if address is None:
        return False
    return not (is_public(address) or allow.admits(address, port))


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(entry)
        return host, _port(rest[1:])
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _port(port)
    return entry, None


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(text)
    return port


def _hostname(host: str) -> str:
    name = normal_host(host)
    if not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", name):
        raise ValueError(host)
    return name
