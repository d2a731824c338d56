"""The outbound network policy: what is denied by default, what FFAAS_OUTBOUND_ALLOW lifts, bad entries."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from data_plane.host.network_policy import NetworkPolicy

DEFAULT = NetworkPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.255.254", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("169.254.0.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("0.1.2.3", "an unspecified address"),
        ("::", "an unspecified address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("100.127.255.255", "a shared (CGNAT) address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "a broadcast address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.2.10", "a reserved (documentation) address"),
        ("198.18.0.1", "a reserved (benchmarking) address"),
        ("2001:db8::1", "a reserved (documentation) address"),
    ],
)
def test_default_policy_denies_non_public_addresses(address: str, kind: str) -> None:
    assert DEFAULT.refusal(ip_address(address)) == f"{ip_address(address)} is {kind}"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.1.2.3", "a private address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::ffff:0.0.0.0", "an unspecified address"),
        ("::127.0.0.1", "a loopback address"),  # IPv4-compatible (deprecated)
        ("64:ff9b::a9fe:a9fe", "a link-local address"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", "a loopback address"),  # 6to4 of 127.0.0.1
    ],
)
def test_ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address(address: str, kind: str) -> None:
    refusal = DEFAULT.refusal(ip_address(address))
    assert refusal is not None
    assert refusal.endswith(f" is {kind}")
    assert "(IPv4 " in refusal


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(ip_address(address)) is None


def test_refusal_names_the_hostname_and_what_it_resolved_to() -> None:
    refusal = DEFAULT.refusal(ip_address("127.0.0.1"), "localhost")
    assert refusal == "localhost resolves to 127.0.0.1, a loopback address"
    assert DEFAULT.refusal(ip_address("10.0.0.5"), "10.0.0.5") == "10.0.0.5 is a private address"


@pytest.mark.parametrize(
    ("setting", "address", "host"),
    [
        ("127.0.0.1", "127.0.0.1", None),
        ("127.0.0.0/8", "127.3.4.5", None),
        ("10.0.0.0/8, 192.168.0.0/16", "192.168.7.7", None),
        ("::1", "::1", None),
        ("fd00::/8", "fd00::5", None),
        ("127.0.0.1", "::ffff:127.0.0.1", None),
        ("::ffff:127.0.0.0/104", "127.0.0.1", None),
        ("169.254.169.254", "169.254.169.254", None),
        ("localhost", "127.0.0.1", "localhost"),
        ("LocalHost", "::1", "localhost."),
        ("*.internal.example", "10.1.1.1", "db.eu.internal.example"),
        ("0.0.0.0/0,::/0", "10.0.0.1", None),
    ],
)
def test_allow_list_lifts_the_default_deny(setting: str, address: str, host: str | None) -> None:
    policy = NetworkPolicy.from_setting(setting)
    assert policy.refusal(ip_address(address), host) is None


@pytest.mark.parametrize(
    ("setting", "address", "host"),
    [
        ("127.0.0.1", "127.0.0.2", None),
        ("127.0.0.2/32", "127.0.0.1", None),
        ("10.0.0.0/8", "::ffff:192.168.0.1", None),
        ("localhost", "127.0.0.1", "evil.example"),
        ("localhost", "127.0.0.1", None),
        ("*.internal.example", "10.1.1.1", "internal.example"),
        ("*.internal.example", "10.1.1.1", "notinternal.example"),
        ("api.example.com", "10.1.1.1", "example.com"),
    ],
)
def test_allow_list_lifts_only_what_it_names(setting: str, address: str, host: str | None) -> None:
    policy = NetworkPolicy.from_setting(setting)
    assert policy.refusal(ip_address(address), host) is not None


def test_from_setting_parses_every_kind_of_entry() -> None:
    policy = NetworkPolicy.from_setting(
        " 127.0.0.1 , 10.0.0.0/8,,fd00::/8, ::1, Api.Example.COM, *.svc.local ,"
    )
    assert policy.networks == (
        ip_network("127.0.0.1/32"),
        ip_network("10.0.0.0/8"),
        ip_network("fd00::/8"),
        ip_network("::1/128"),
    )
    assert policy.hostnames == frozenset({"api.example.com"})
    assert policy.domains == frozenset({"svc.local"})


def test_empty_setting_allows_nothing_extra() -> None:
    assert NetworkPolicy.from_setting("") == NetworkPolicy()
    assert NetworkPolicy.from_setting(" , ") == NetworkPolicy()


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.1/8",  # host bits set
        "10.0.0.0/33",
        "300.1.1.1/32",
        "http://example.com",
        "example.com:8080",
        "example.com/path",
        "*",
        "*.",
        "*.*.example.com",
        "exa mple.com",
        "-bad.example.com",
        "127.1",
        "0x7f.1",
        "fe80::1::2",
    ],
)
def test_malformed_entries_are_rejected_naming_the_setting_and_entry(entry: str) -> None:
    with pytest.raises(ValueError) as error:
        NetworkPolicy.from_setting(f"127.0.0.1,{entry}")
    assert "FFAAS_OUTBOUND_ALLOW" in str(error.value)
    assert repr(entry) in str(error.value)
