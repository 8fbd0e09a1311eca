"""Fetching a simulation job's ``script_url`` without letting it reach inside the server's network.

Only public addresses are fetched unless the operator allows private ones
(``ServerConfig.allow_private_script_urls``, ``--allow-private-script-urls``):
a host name is resolved and every address it resolves to is checked, and the
connection goes to those checked addresses (no second lookup that could
answer differently); a literal address is checked as is. Loopback, private,
link-local, multicast, reserved and unspecified addresses are refused, also
when wrapped in IPv6 (IPv4-mapped, 6to4, Teredo). Redirects are followed by
hand, at most :data:`MAX_REDIRECTS`, each hop checked the same way.

The body is read up to a limit within :data:`FETCH_TIMEOUT_S` in all. Every
failure is a :class:`ScriptFetchError` whose text says what was wrong in the
submitter's terms and echoes nothing the target said (no status, no network
error, no parser detail), so a job cannot be used to map what answers where.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

if TYPE_CHECKING:
    from aiohttp.abc import ResolveResult

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_REDIRECTS",
    "ScriptFetchError",
    "fetch_script_document",
    "non_public_reason",
    "url_address_problem",
]

FETCH_TIMEOUT_S = 10.0
"""Longest a whole fetch (every redirect hop and the body) may take."""

MAX_REDIRECTS = 5
"""Most redirects followed."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 65536
_OPT_IN = "only public http(s) URLs are fetched (the server's operator can allow private ones)"
_UNREACHABLE = (
    f"script_url could not be fetched: it must answer GET with 200 OK and the script as JSON within "
    f"{FETCH_TIMEOUT_S:g} s"
)


class ScriptFetchError(Exception):
    """The script at ``script_url`` cannot be had; the text is the job's ``error_message``."""


def non_public_reason(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public address, or ``None`` when it is one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return non_public_reason(str(embedded))
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_reserved:
        return "a reserved address"
    return None


def url_address_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched without resolving anything (a literal non-public address, ``localhost``)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        return "script_url has no host"
    if host == "localhost" or host.endswith(".localhost"):
        return f"script_url points to a loopback name; {_OPT_IN}"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: checked when it is resolved
    reason = non_public_reason(host)
    return f"script_url points to {reason}; {_OPT_IN}" if reason else None


class _NonPublicHost(Exception):
    """A host name resolved to an address that may not be fetched (not an OSError: aiohttp passes it through)."""


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the host if any address is not public."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = non_public_reason(result["host"])
            if reason is not None:
                raise _NonPublicHost(reason)
        return results

    async def close(self) -> None:
        await self._inner.close()


async def fetch_script_document(url: str, *, limit: int, allow_private: bool) -> bytes:
    """The body at ``url`` (at most ``limit`` bytes), following checked redirects.

    Raises :class:`ScriptFetchError` for every failure.
    """
    try:
        return await asyncio.wait_for(_fetch(url, limit, allow_private), FETCH_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise ScriptFetchError(_UNREACHABLE) from None


async def _fetch(url: str, limit: int, allow_private: bool) -> bytes:
    resolver: AbstractResolver = DefaultResolver() if allow_private else _PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=1)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as http:
        for hop in range(MAX_REDIRECTS + 1):
            where = "script_url" if hop == 0 else "script_url redirects to a URL that"
            try:
                scheme, port = urlsplit(url).scheme.lower(), urlsplit(url).port
            except ValueError:
                raise ScriptFetchError(f"{where} is not a valid URL") from None
            if scheme not in ("http", "https") or port == 0:
                raise ScriptFetchError(f"{where} is not an http(s) URL; {_OPT_IN}")
            if not allow_private:
                problem = url_address_problem(url)
                if problem is not None:
                    redirected = f"script_url redirects to a non-public address; {_OPT_IN}"
                    raise ScriptFetchError(problem if hop == 0 else redirected)
            try:
                async with http.get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECT_STATUSES and "Location" in response.headers:
                        url = urljoin(url, response.headers["Location"])
                        continue
                    if response.status != 200:
                        raise ScriptFetchError(_UNREACHABLE)
                    return await _read(response, limit)
            except _NonPublicHost:
                raise ScriptFetchError(
                    f"script_url's host resolves to a non-public address; {_OPT_IN}"
                    if hop == 0
                    else f"script_url redirects to a host that resolves to a non-public address; {_OPT_IN}"
                ) from None
            except (aiohttp.ClientError, OSError, ValueError):
                raise ScriptFetchError(_UNREACHABLE) from None
        raise ScriptFetchError(f"script_url redirected more than {MAX_REDIRECTS} times")


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    too_large = ScriptFetchError(f"the document at script_url is larger than {limit} bytes")
    if response.content_length is not None and response.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.readany():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
