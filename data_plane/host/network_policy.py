"""Which addresses an outbound request may reach: a default deny, lifted by FFAAS_OUTBOUND_ALLOW.

Invariants:

- Every address that is not publicly routable is denied by default: loopback, private (RFC 1918,
  fc00::/7, fec0::/10), link-local (169.254.0.0/16 with the cloud metadata service 169.254.169.254,
  fe80::/10), unspecified / "this network" (0.0.0.0/8, ::), shared CGNAT space (100.64.0.0/10),
  multicast, broadcast and the other reserved ranges listed in `_DENIED_V4` / `_DENIED_V6`.
- An IPv6 address that embeds an IPv4 one (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
  NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by the IPv4 address it embeds, so ::ffff:127.0.0.1
  is as loopback as 127.0.0.1.
- The allow list only lifts the default deny; it never restricts. Public addresses are always allowed.
- A decision is about one address, optionally with the hostname that resolved to it: the address is
  allowed if it is public, if it lies in an allowed network, or if the hostname is an allowed one
  (allowing a hostname trusts whatever its DNS answers).
- A malformed allow list fails when parsed, with a ValueError naming FFAAS_OUTBOUND_ALLOW and the entry.

This module only decides; `outbound_http` resolves names and applies the decision to the address it
actually connects to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

ALLOW_SETTING = "FFAAS_OUTBOUND_ALLOW"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# First match wins, so the more specific ranges come first.
_DENIED_V4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(cidr), kind)
    for cidr, kind in (
        ("0.0.0.0/8", "an unspecified address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a reserved (documentation) address"),
        ("192.88.99.0/24", "a reserved address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a reserved (benchmarking) address"),
        ("198.51.100.0/24", "a reserved (documentation) address"),
        ("203.0.113.0/24", "a reserved (documentation) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_DENIED_V6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(cidr), kind)
    for cidr, kind in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("64:ff9b:1::/48", "a private address"),
        ("100::/64", "a reserved (discard) address"),
        ("2001:db8::/32", "a reserved (documentation) address"),
        ("fc00::/7", "a private address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private (site-local) address"),
        ("ff00::/8", "a multicast address"),
    )
)

_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    # :: and ::1 lie in ::/96 but are IPv6's own unspecified and loopback addresses.
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def denied_kind(address: IPAddress) -> str | None:
    """Why the default policy denies `address` ("a loopback address", ...), or None if it is public."""
    if isinstance(address, IPv4Address):
        return next((kind for network, kind in _DENIED_V4 if address in network), None)
    for network, kind in _DENIED_V6:
        if address in network:
            return kind
    embedded = embedded_ipv4(address)
    return denied_kind(embedded) if embedded is not None else None


def normalize_hostname(host: str) -> str:
    """Lower-case, without a trailing dot, internationalized names in their ASCII (IDNA) form."""
    host = host.strip().rstrip(".").lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    return host


def _is_hostname(host: str) -> bool:
    labels = host.split(".")
    return (
        0 < len(host) <= 253
        and all(_LABEL.match(label) for label in labels)
        # A name whose last label is numeric ("127.1", "0x7f.1") reads as an address, not a host.
        and not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1])
    )


@dataclass(frozen=True)
class NetworkPolicy:
    """The outbound network policy: the default deny plus what FFAAS_OUTBOUND_ALLOW allows.

    `NetworkPolicy()` allows nothing beyond public addresses. `hostnames` are exact names;
    `domains` allow every subdomain of theirs (from `*.example.com` entries), not the domain itself.
    """

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, value: str) -> NetworkPolicy:
        """Parse FFAAS_OUTBOUND_ALLOW: comma-separated hostnames, `*.domain`s, IP addresses and CIDRs.

        Blank entries are ignored. Raises ValueError naming the setting and the entry on a malformed
        one (a CIDR with host bits set, a URL, a port, a bare `*`, ...).
        """
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        domains: set[str] = set()
        for raw in value.split(","):
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry:
                try:
                    networks.append(_with_ipv4_form(ip_network(entry, strict=True)))
                except ValueError as exc:
                    raise ValueError(f"{ALLOW_SETTING}: {entry!r} is not a valid CIDR ({exc})") from None
                continue
            try:
                address = ip_address(entry)
            except ValueError:
                pass
            else:
                networks.append(_with_ipv4_form(ip_network(address)))
                continue
            wildcard = entry.startswith("*.")
            try:
                host = normalize_hostname(entry[2:] if wildcard else entry)
            except UnicodeError:
                host = ""
            if not _is_hostname(host):
                raise ValueError(
                    f"{ALLOW_SETTING}: {entry!r} is neither a hostname, a *.domain, an IP address nor a CIDR"
                )
            (domains if wildcard else hostnames).add(host)
        return cls(tuple(networks), frozenset(hostnames), frozenset(domains))

    def allows_host(self, host: str) -> bool:
        """Whether `host` is listed, by name or as a subdomain of a `*.domain` entry."""
        host = normalize_hostname(host)
        if host in self.hostnames:
            return True
        return any(host.endswith("." + domain) for domain in self.domains)

    def allows_address(self, address: IPAddress) -> bool:
        """Whether `address` (or the IPv4 address it embeds) lies in a listed network."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address):
            embedded = embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )

    def refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """None if a connection to `address` (resolved from `host`, if given) is allowed, else why not.

        The reason is safe to show to a processor's author, e.g. "10.0.0.5 is a private address" or
        "localhost resolves to 127.0.0.1, a loopback address".
        """
        kind = denied_kind(address)
        if kind is None or self.allows_address(address):
            return None
        if host is not None and self.allows_host(host):
            return None
        shown = str(address)
        if isinstance(address, IPv6Address) and (embedded := embedded_ipv4(address)) is not None:
            shown = f"{address} (IPv4 {embedded})"
        if host is None or _same_address(host, address):
            return f"{shown} is {kind}"
        return f"{host} resolves to {shown}, {kind}"


def _same_address(host: str, address: IPAddress) -> bool:
    try:
        return ip_address(host.strip("[]")) == address
    except ValueError:
        return False


def _with_ipv4_form(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (::ffff:127.0.0.0/104) as the IPv4 network it stands for."""
    if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED) and network.prefixlen >= 96:
        return IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96))
    return network
