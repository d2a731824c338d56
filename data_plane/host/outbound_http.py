"""The outbound HTTP host capability: what a processor's `fh.dispatch_request(url, ...)` calls.

Invariants:

- The network policy is applied to the address actually connected to. `PolicyNetworkBackend`
  resolves the hostname itself, checks every candidate address and connects only to an allowed one, by
  IP; there is no second lookup between check and connect, so a DNS answer pointing at private space
  (or changing between two lookups) cannot reach it. This holds for every new connection, hence for
  every redirect hop too. TLS is still verified against the hostname: httpcore hands the origin's
  hostname (not the connected IP) to `start_tls` as `server_hostname`.
- Only http and https; no proxies from the environment; HTTP/1.1 only.
- The request goes out with the method, headers and body given. Only Host, User-Agent and
  Content-Length are added, each only if absent. No cookie jar: nothing one processor receives is sent
  on another's behalf.
- Redirects (301, 302, 303, 307, 308) are followed up to `max_redirects`; 303 (and 301/302 after a
  POST) turn into a body-less GET; a redirect to another origin drops Authorization, Cookie and Host.
- One deadline covers the whole exchange (resolution, connects, redirects, reading the body). The
  body is read as it arrives on the wire (not decompressed) and refused once it passes
  `max_response_bytes`; a larger declared Content-Length is refused before reading.
- Every failure is an `OutboundError` whose message is safe to show to the processor's author and
  names the limit or setting involved. Cancellation is never swallowed.
- One `OutboundHttp` is shared by the whole data plane process; concurrent sends are safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import ip_address

import httpcore
import httpx

from data_plane.host.network_policy import ALLOW_SETTING, IPAddress, NetworkPolicy

TIMEOUT_SETTING = "FFAAS_OUTBOUND_TIMEOUT_MS"
RESPONSE_BYTES_SETTING = "FFAAS_MAX_OUTBOUND_RESPONSE_BYTES"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CROSS_ORIGIN_DROPPED = frozenset({"authorization", "proxy-authorization", "cookie", "host"})
_BODY_HEADERS = frozenset({"content-length", "content-type", "content-encoding", "transfer-encoding"})

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""Resolves (host, port) to candidate addresses in preference order; raises OSError if it cannot."""


class OutboundError(Exception):
    """An outbound request failed or was refused. The message is meant for the processor's author."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class OutboundResponse:
    """The final response: status, headers (lower-case names, in order), the body as received, final URL."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    url: str


async def resolve_with_getaddrinfo(host: str, port: int) -> list[IPAddress]:
    """The system resolver (getaddrinfo, off the event loop), deduplicated, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PolicyNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy allows.

    `connect_tcp` resolves `host`, checks every answer, and connects by IP to the allowed ones in
    order until one accepts. Raises `_Refused` if none is allowed, OSError if `host` does not resolve.
    """

    def __init__(
        self, policy: NetworkPolicy, resolver: Resolver, inner: httpcore.AsyncNetworkBackend
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolver(host, port)
        if not addresses:
            raise OSError(f"no address found for {host}")
        allowed = [address for address in addresses if self._policy.refusal(address, host) is None]
        if not allowed:
            raise _Refused(typing.cast(str, self._policy.refusal(addresses[0], host)))
        error: httpcore.ConnectError | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class _Hop:
    url: httpx.URL
    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


class OutboundHttp:
    """Sends processors' outbound requests under a `NetworkPolicy`, a deadline and a response size cap."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        timeout_ms: int,
        max_response_bytes: int,
        max_redirects: int = 5,
        user_agent: str = "FFAAS/0.1",
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`resolver` defaults to getaddrinfo; `ssl_context` to httpcore's (certifi CAs, verification on)."""
        if timeout_ms <= 0 or max_response_bytes < 0 or max_redirects < 0:
            raise ValueError("timeout_ms must be positive; max_response_bytes and max_redirects not negative")
        self.policy = policy
        self.timeout_ms = timeout_ms
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        backend = PolicyNetworkBackend(policy, resolver or resolve_with_getaddrinfo, httpcore.AnyIOBackend())
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=backend,
        )

    async def __aenter__(self) -> OutboundHttp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. Call once, when the data plane shuts down."""
        await self._pool.aclose()

    async def send(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes | str | None = None,
    ) -> OutboundResponse:
        """Send one request, following redirects, and return the final response.

        Raises OutboundError for every failure: refused by policy, bad URL or header, DNS or connection
        failure, protocol error, too many redirects, timeout, response too large.
        """
        hop = _Hop(
            url=_parse_url(url),
            method=method,
            headers=_header_list(headers),
            body=body.encode() if isinstance(body, str) else body,
        )
        if not method or not method.isascii():
            raise OutboundError(f"request to {hop.url} has an invalid method {method!r}")
        try:
            async with asyncio.timeout(self.timeout_ms / 1000) as deadline:
                return await self._follow_redirects(hop)
        except TimeoutError as exc:
            if not deadline.expired():
                raise OutboundError(f"request to {hop.url} failed: {_reason(exc)}") from exc
            raise OutboundError(
                f"request to {hop.url} timed out after {self.timeout_ms} ms ({TIMEOUT_SETTING})"
            ) from None

    async def _follow_redirects(self, hop: _Hop) -> OutboundResponse:
        for redirects in range(self.max_redirects + 1):
            with _translating_errors(hop.url):
                async with self._pool.stream(
                    hop.method, _core_url(hop.url), headers=self._wire_headers(hop), content=_content(hop)
                ) as response:
                    headers = tuple((_text(name).lower(), _text(value)) for name, value in response.headers)
                    location = next((value for name, value in headers if name == "location"), None)
                    if response.status not in _REDIRECT_STATUSES or location is None:
                        body = await self._read_capped(response, headers, hop)
                        return OutboundResponse(response.status, headers, body, str(hop.url))
            if redirects == self.max_redirects:
                break
            hop = _redirected(hop, response.status, location)
        raise OutboundError(f"request to {hop.url} failed: more than {self.max_redirects} redirects")

    def _wire_headers(self, hop: _Hop) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name, _ in hop.headers}
        wire = [] if "host" in names else [(b"Host", hop.url.netloc)]
        wire += [(name.encode("ascii"), value.encode()) for name, value in hop.headers]
        if "user-agent" not in names:
            wire.append((b"User-Agent", self.user_agent.encode()))
        return wire

    async def _read_capped(
        self, response: httpcore.Response, headers: tuple[tuple[str, str], ...], hop: _Hop
    ) -> bytes:
        too_large = OutboundError(
            f"response from {hop.url} exceeds {self.max_response_bytes} bytes ({RESPONSE_BYTES_SETTING})"
        )
        # A HEAD, 204 or 304 response declares a length it never sends.
        has_body = hop.method.upper() != "HEAD" and response.status not in (204, 304)
        declared = next((value for name, value in headers if name == "content-length"), "")
        if has_body and declared.strip().isdigit() and int(declared) > self.max_response_bytes:
            raise too_large
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_stream():
            received += len(chunk)
            if received > self.max_response_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundError(f"invalid URL {url!r}: {exc}") from exc
    if not parsed.scheme:
        raise OutboundError(f"invalid URL {url!r}: it must start with http:// or https://")
    if parsed.scheme not in _DEFAULT_PORTS:
        raise OutboundError(f"unsupported URL scheme {parsed.scheme!r} in {url!r}: only http and https")
    if not parsed.raw_host:
        raise OutboundError(f"invalid URL {url!r}: it has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise OutboundError(f"invalid URL {url!r}: port {parsed.port} is out of range")
    if parsed.userinfo:
        raise OutboundError("URLs with credentials are not supported: send an Authorization header instead")
    return parsed


def _header_list(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
            raise OutboundError(f"invalid header {pair!r}: names and values must be strings")
        if not pair[0].isascii():
            raise OutboundError(f"invalid header name {pair[0]!r}: it must be ASCII")
    return pairs


def _content(hop: _Hop) -> bytes | None:
    # As browsers and httpx do, a body-less POST/PUT/PATCH still says Content-Length: 0.
    if hop.body is None and hop.method.upper() in ("POST", "PUT", "PATCH"):
        return b""
    return hop.body


def _core_url(url: httpx.URL) -> httpcore.URL:
    port = url.port or _DEFAULT_PORTS[url.scheme]
    return httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path)


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _redirected(hop: _Hop, status: int, location: str) -> _Hop:
    """The next hop after a redirect `status` to `location`; its address is checked when it connects."""
    try:
        url = _parse_url(str(hop.url.join(location)))
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise OutboundError(f"request to {hop.url} redirected to an invalid URL {location!r}") from exc
    except OutboundError as exc:
        raise OutboundError(f"request to {hop.url} redirected: {exc.message}") from exc
    method, body, headers = hop.method, hop.body, hop.headers
    if (status == 303 and method.upper() != "HEAD") or (status in (301, 302) and method.upper() == "POST"):
        method, body = "GET", None
        headers = tuple((name, value) for name, value in headers if name.lower() not in _BODY_HEADERS)
    if (url.scheme, url.raw_host, url.port) != (hop.url.scheme, hop.url.raw_host, hop.url.port):
        headers = tuple((name, value) for name, value in headers if name.lower() not in _CROSS_ORIGIN_DROPPED)
    return _Hop(url=url, method=method, headers=headers, body=body)


@contextlib.contextmanager
def _translating_errors(url: httpx.URL) -> Iterator[None]:
    """Turn what a hop can raise into an OutboundError about `url`."""
    try:
        yield
    except _Refused as exc:
        raise OutboundError(f"request to {url} refused: {exc.reason} ({ALLOW_SETTING})") from exc
    except httpcore.ConnectError as exc:
        raise OutboundError(f"request to {url} failed: could not connect ({_reason(exc)})") from exc
    except httpcore.LocalProtocolError as exc:
        raise OutboundError(f"request to {url} is malformed: {_reason(exc)}") from exc
    except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.TimeoutException) as exc:
        raise OutboundError(f"request to {url} failed: {_reason(exc)}") from exc
    except socket.gaierror as exc:
        raise OutboundError(
            f"request to {url} failed: could not resolve {url.host} ({exc.strerror})"
        ) from exc
    except (OSError, UnicodeError, ValueError) as exc:
        # The deadline's TimeoutError is raised outside this block, by `asyncio.timeout` in `send`.
        raise OutboundError(f"request to {url} failed: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
