"""The outbound HTTP capability against real HTTP servers on loopback addresses (never the internet)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from data_plane.host.network_policy import IPAddress, NetworkPolicy
from data_plane.host.outbound_http import OutboundError, OutboundHttp
from tests.data_plane.host.local_http import Received, Reply, serving

LOOPBACK = NetworkPolicy.from_setting("127.0.0.1")


def outbound(policy: NetworkPolicy = LOOPBACK, **overrides: object) -> OutboundHttp:
    options: dict[str, object] = {"timeout_ms": 5000, "max_response_bytes": 1_000_000}
    options.update(overrides)
    return OutboundHttp(policy, **options)  # type: ignore[arg-type]


@pytest.fixture
async def client() -> AsyncIterator[OutboundHttp]:
    async with outbound() as http:
        yield http


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_method_headers_and_body_arrive_as_sent_and_the_response_comes_back(
    client: OutboundHttp,
) -> None:
    async def handler(request: Received) -> Reply:
        return Reply(
            status=201,
            headers=[("X-Reply", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
            body=b"created \xff",
        )

    async with serving(handler) as server:
        response = await client.send(
            f"{server.url}/items?q=1&r=%20",
            method="PUT",
            headers=[("X-Trace", "a"), ("x-trace", "b"), ("Content-Type", "application/json")],
            body='{"name": "café"}',
        )
    [received] = server.received
    assert received.method == "PUT"
    assert received.target == "/items?q=1&r=%20"
    assert received.body == '{"name": "café"}'.encode()
    assert received.headers == [
        ("Host", f"127.0.0.1:{server.port}"),
        ("X-Trace", "a"),
        ("x-trace", "b"),
        ("Content-Type", "application/json"),
        ("User-Agent", "FFAAS/0.1"),
        ("Content-Length", str(len('{"name": "café"}'.encode()))),
    ]
    assert response.status == 201
    assert response.headers == (
        ("x-reply", "yes"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("content-length", "9"),
    )
    assert response.body == b"created \xff"
    assert response.url == f"{server.url}/items?q=1&r=%20"


async def test_given_host_user_agent_and_content_length_are_not_replaced(client: OutboundHttp) -> None:
    async with serving() as server:
        await client.send(
            server.url,
            method="POST",
            headers={"host": "api.example", "user-agent": "mine/1", "content-length": "3"},
            body=b"abc",
        )
    [received] = server.received
    assert received.headers == [("host", "api.example"), ("user-agent", "mine/1"), ("content-length", "3")]


async def test_body_less_post_says_content_length_zero_and_get_sends_no_body_headers(
    client: OutboundHttp,
) -> None:
    async with serving() as server:
        await client.send(server.url, method="POST")
        await client.send(server.url)
    post, get = server.received
    assert post.header("content-length") == "0"
    assert get.method == "GET"
    assert get.header("content-length") is None
    assert get.header("transfer-encoding") is None


async def test_cookies_set_by_one_response_are_never_sent_again(client: OutboundHttp) -> None:
    async def handler(request: Received) -> Reply:
        return Reply(headers=[("Set-Cookie", "session=secret; Path=/")])

    async with serving(handler) as server:
        await client.send(server.url)
        await client.send(server.url)
    assert [request.header("cookie") for request in server.received] == [None, None]


async def test_loopback_is_refused_by_default_and_nothing_is_sent() -> None:
    async with serving() as server, outbound(NetworkPolicy()) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"{server.url}/")
    assert error.value.message == (
        f"request to {server.url}/ refused: 127.0.0.1 is a loopback address (FFAAS_OUTBOUND_ALLOW)"
    )
    assert server.received == []


@pytest.mark.parametrize(
    "host",
    ["localhost", "2130706433", "[::ffff:127.0.0.1]", "127.1"],
)
async def test_names_and_spellings_of_loopback_are_refused_by_default(host: str) -> None:
    async with serving() as server, outbound(NetworkPolicy()) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"http://{host}:{server.port}/")
    assert "refused: " in error.value.message
    assert "a loopback address (FFAAS_OUTBOUND_ALLOW)" in error.value.message
    assert server.received == []


async def test_localhost_refusal_says_what_the_name_resolved_to() -> None:
    async with serving() as server, outbound(NetworkPolicy()) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"http://localhost:{server.port}/")
    assert (
        f"request to http://localhost:{server.port}/ refused: localhost resolves to " in error.value.message
    )


@pytest.mark.parametrize(
    ("setting", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.0/8", "127.0.0.1"),
        ("localhost", "localhost"),
        ("127.0.0.1", "localhost"),
        ("::ffff:127.0.0.0/104", "127.0.0.1"),
    ],
)
async def test_loopback_is_reachable_when_the_allow_list_names_it(setting: str, host: str) -> None:
    async with serving() as server, outbound(NetworkPolicy.from_setting(setting)) as http:
        response = await http.send(f"http://{host}:{server.port}/")
    assert (response.status, response.body) == (200, b"ok")


async def test_only_allowed_dns_answers_are_connected_to() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        assert host == "service.test"
        return [ip_address("127.0.0.3"), ip_address("127.0.0.1")]

    policy = NetworkPolicy.from_setting("127.0.0.1/32")
    async with (
        serving() as target,
        serving(host="127.0.0.3", port=target.port) as decoy,
        outbound(policy, resolver=resolver) as http,
    ):
        response = await http.send(f"http://service.test:{target.port}/")
    assert response.body == b"ok"
    assert len(target.received) == 1
    assert target.received[0].header("host") == f"service.test:{target.port}"
    assert decoy.received == []


async def test_dns_answers_in_private_space_are_refused() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ip_address("10.0.0.5"), ip_address("169.254.169.254")]

    async with outbound(NetworkPolicy(), resolver=resolver) as http:
        with pytest.raises(OutboundError) as error:
            await http.send("http://public-looking.example/latest/meta-data/")
    assert error.value.message == (
        "request to http://public-looking.example/latest/meta-data/ refused: "
        "public-looking.example resolves to 10.0.0.5, a private address (FFAAS_OUTBOUND_ALLOW)"
    )


async def test_dns_failure_is_an_outbound_error() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with outbound(NetworkPolicy(), resolver=resolver) as http:
        with pytest.raises(OutboundError) as error:
            await http.send("http://nowhere.test/")
    assert error.value.message == (
        "request to http://nowhere.test/ failed: could not resolve nowhere.test (Name or service not known)"
    )


async def test_connection_refused_is_an_outbound_error(client: OutboundHttp) -> None:
    port = unused_port()
    with pytest.raises(OutboundError) as error:
        await client.send(f"http://127.0.0.1:{port}/")
    assert error.value.message.startswith(f"request to http://127.0.0.1:{port}/ failed: could not connect (")


async def test_redirect_to_a_refused_address_is_refused() -> None:
    async with serving() as inner:

        async def redirect(request: Received) -> Reply:
            return Reply(status=302, headers=[("Location", f"{inner.url}/secret")])

        async with (
            serving(redirect, host="127.0.0.2") as outer,
            outbound(NetworkPolicy.from_setting("127.0.0.2/32")) as http,
        ):
            with pytest.raises(OutboundError) as error:
                await http.send(f"{outer.url}/start")
    assert error.value.message == (
        f"request to {inner.url}/secret refused: 127.0.0.1 is a loopback address (FFAAS_OUTBOUND_ALLOW)"
    )
    assert len(outer.received) == 1
    assert inner.received == []


async def test_redirects_are_followed_with_fetch_semantics() -> None:
    async with serving() as final:

        async def hops(request: Received) -> Reply:
            if request.target == "/post":
                return Reply(status=303, headers=[("Location", "/keep")])
            if request.target == "/keep":
                return Reply(status=307, headers=[("Location", "/moved")])
            return Reply(status=301, headers=[("Location", f"{final.url}/done")])

        async with serving(hops, host="127.0.0.2") as first:
            policy = NetworkPolicy.from_setting("127.0.0.1, 127.0.0.2")
            async with outbound(policy) as http:
                response = await http.send(
                    f"{first.url}/post",
                    method="POST",
                    headers=[("Authorization", "Bearer t"), ("Content-Type", "text/plain"), ("X-Keep", "1")],
                    body="payload",
                )
                put = await http.send(f"{first.url}/keep", method="PUT", body="again")
    assert (response.status, response.body, response.url) == (200, b"ok", f"{final.url}/done")
    post, keep, moved = first.received[:3]
    assert (post.method, post.body) == ("POST", b"payload")
    # 303 turns the POST into a body-less GET; 307 keeps the method (GET here).
    assert (keep.method, keep.body, keep.header("content-type"), keep.header("content-length")) == (
        "GET",
        b"",
        None,
        None,
    )
    assert (moved.method, moved.header("authorization")) == ("GET", "Bearer t")
    done = final.received[0]
    assert done.header("authorization") is None  # dropped on the way to another origin
    assert done.header("x-keep") == "1"
    assert done.header("host") == f"127.0.0.1:{final.port}"
    # A 307 after a PUT repeats the PUT and its body.
    assert put.url == f"{final.url}/done"
    put_moved = first.received[4]
    assert (put_moved.method, put_moved.body) == ("PUT", b"again")
    assert (final.received[1].method, final.received[1].body) == ("PUT", b"again")


async def test_too_many_redirects_are_refused() -> None:
    async def loop(request: Received) -> Reply:
        return Reply(status=302, headers=[("Location", "/again")])

    async with serving(loop) as server, outbound(max_redirects=3) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"{server.url}/start")
    assert error.value.message == f"request to {server.url}/again failed: more than 3 redirects"
    assert len(server.received) == 4


async def test_redirect_to_an_unsupported_scheme_is_refused(client: OutboundHttp) -> None:
    async def to_file(request: Received) -> Reply:
        return Reply(status=302, headers=[("Location", "file:///etc/passwd")])

    async with serving(to_file) as server:
        with pytest.raises(OutboundError, match="redirected: unsupported URL scheme 'file'"):
            await client.send(server.url)


async def test_a_slow_server_times_out_naming_the_setting() -> None:
    async def slow(request: Received) -> Reply:
        return Reply(delay=10)

    async with serving(slow) as server, outbound(timeout_ms=200) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"{server.url}/slow")
    assert error.value.message == (
        f"request to {server.url}/slow timed out after 200 ms (FFAAS_OUTBOUND_TIMEOUT_MS)"
    )


@pytest.mark.parametrize("content_length", [True, False])
async def test_a_response_over_the_cap_is_refused(content_length: bool) -> None:
    async def big(request: Received) -> Reply:
        return Reply(body=b"x" * 300_000, content_length=content_length)

    async with serving(big) as server, outbound(max_response_bytes=100_000) as http:
        with pytest.raises(OutboundError) as error:
            await http.send(f"{server.url}/big")
    assert error.value.message == (
        f"response from {server.url}/big exceeds 100000 bytes (FFAAS_MAX_OUTBOUND_RESPONSE_BYTES)"
    )


async def test_a_head_response_declaring_a_length_over_the_cap_is_returned() -> None:
    async def big(request: Received) -> Reply:
        return Reply(body=b"x" * 300_000)

    async with serving(big) as server, outbound(max_response_bytes=100_000) as http:
        response = await http.send(server.url, method="HEAD")
    assert (response.status, response.body) == (200, b"")
    assert ("content-length", "300000") in response.headers


@pytest.mark.parametrize("content_length", [True, False])
async def test_a_response_exactly_at_the_cap_is_returned(content_length: bool) -> None:
    async def exact(request: Received) -> Reply:
        return Reply(body=b"y" * 100_000, content_length=content_length)

    async with serving(exact) as server, outbound(max_response_bytes=100_000) as http:
        response = await http.send(server.url)
    assert response.body == b"y" * 100_000


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://example.com/file",
            "unsupported URL scheme 'ftp' in 'ftp://example.com/file': only http and https",
        ),
        ("file:///etc/passwd", "unsupported URL scheme 'file'"),
        ("example.com/path", "it must start with http:// or https://"),
        ("http://user:pw@example.com/", "URLs with credentials are not supported"),
        ("http://[::1/", "invalid URL"),
        ("http://example.com:99999/", "port 99999 is out of range"),
        ("http:///path", "it has no host"),
    ],
)
async def test_bad_urls_are_refused_before_anything_is_sent(
    client: OutboundHttp, url: str, message: str
) -> None:
    with pytest.raises(OutboundError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await client.send(url)


async def test_header_injection_is_refused(client: OutboundHttp) -> None:
    async with serving() as server:
        with pytest.raises(OutboundError, match="is malformed"):
            await client.send(server.url, headers={"X-Evil": "a\r\nInjected: 1"})
        with pytest.raises(OutboundError, match="is malformed"):
            await client.send(server.url, method="GET /other HTTP/1.1\r\nX:")
    assert server.received == []


async def test_concurrent_sends_all_succeed(client: OutboundHttp) -> None:
    async def echo(request: Received) -> Reply:
        await asyncio.sleep(0.05)
        return Reply(body=request.target.encode())

    async with serving(echo) as server:
        responses = await asyncio.gather(*(client.send(f"{server.url}/{n}") for n in range(10)))
    assert [response.body for response in responses] == [f"/{n}".encode() for n in range(10)]


def _self_signed_localhost(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_is_verified_against_the_hostname_though_the_connection_is_by_ip(tmp_path: Path) -> None:
    cert, key = _self_signed_localhost(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    policy = NetworkPolicy.from_setting("127.0.0.1")
    async with serving(tls=server_tls) as server, outbound(policy, ssl_context=trusting) as http:
        by_name = await http.send(f"https://localhost:{server.port}/")
        with pytest.raises(OutboundError) as error:
            await http.send(f"https://127.0.0.1:{server.port}/")
    assert by_name.body == b"ok"
    assert "could not connect" in error.value.message
    assert "IP address mismatch" in error.value.message  # the name, not the IP, is what is verified
