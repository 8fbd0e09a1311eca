"""The signaling WebSocket client: ICE config, connect with retries, JSON frames.

Runs on the client's event-loop thread (aiohttp). URL rules and message
shapes come from :mod:`odyssey_sync.protocol`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

import aiohttp
from aiortc import RTCIceServer

from . import protocol
from ._deadline import Deadline
from .errors import OdysseyAuthError, OdysseyConnectionError
from .types import AdvancedConfig

logger = logging.getLogger("odyssey_sync.signaling")

_CONFIG_TIMEOUT_S = 5.0
_OPEN_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 1.0
# The hosted service sends large SDP and image messages; aiohttp's default is 4 MiB.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


async def fetch_ice_servers(http: aiohttp.ClientSession, signalling_url: str) -> list[RTCIceServer]:
    """``GET <signaling>/config`` -> aiortc ICE servers, TURN credentials kept."""
    url = protocol.ice_config_url(signalling_url)
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=_CONFIG_TIMEOUT_S)) as response:
        if response.status != 200:
            raise OdysseyConnectionError(f"ICE config request failed with HTTP {response.status}")
        body = await response.json(content_type=None)
    servers = protocol.parse_ice_servers(body)
    return [RTCIceServer(**server) for server in servers]


class SignalingChannel:
    """One open signaling WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self._ws = ws
        self._send_lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        """Whether the socket is closed."""
        return self._ws.closed

    @property
    def close_code(self) -> int | None:
        """The close code once closed (1006 when the peer vanished)."""
        return self._ws.close_code

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        async with self._send_lock:
            await self._ws.send_str(protocol.encode(message))

    async def messages(self) -> AsyncIterator[dict[str, Any] | protocol.ProtocolError]:
        """Yield parsed messages (or the parse error of a bad one) until the socket closes."""
        async for frame in self._ws:
            if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                try:
                    yield protocol.decode(frame.data)
                except protocol.ProtocolError as exc:
                    yield exc
            elif frame.type == aiohttp.WSMsgType.ERROR:
                logger.debug("signaling socket error: %s", self._ws.exception())
                break

    async def close(self, *, goodbye: bool, deadline: Deadline) -> None:
        """Close with 1000 "Client disconnect", after ``client_disconnecting`` if ``goodbye``; by ``deadline``."""
        if self._ws.closed:
            return
        try:
            if goodbye:
                await asyncio.wait_for(self.send(protocol.client_disconnecting()), deadline.within(_CLOSE_TIMEOUT_S))
            await asyncio.wait_for(
                self._ws.close(code=1000, message=protocol.CLIENT_CLOSE_REASON.encode()), deadline.within(_CLOSE_TIMEOUT_S)
            )
        except (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError, RuntimeError):
            pass


async def open_signaling(
    http: aiohttp.ClientSession, url: str
) -> SignalingChannel:
    """One attempt to open the WebSocket; 401/403 raise :class:`OdysseyAuthError`."""
    try:
        ws = await http.ws_connect(
            url,
            timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT_S),
            max_msg_size=_MAX_MESSAGE_BYTES,
            heartbeat=None,
            autoping=True,
        )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status in (401, 403):
            raise OdysseyAuthError(
                f"The signaling server refused the session token (HTTP {exc.status}); "
                "it may be expired (tokens last 600 s) or belong to another session: mint new credentials"
            ) from None
        raise OdysseyConnectionError(f"Signaling handshake failed with HTTP {exc.status}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise OdysseyConnectionError(f"Failed to connect to signaling server: {describe(exc)}") from None
    return SignalingChannel(ws)


def describe(exc: BaseException) -> str:
    """``Type: text`` of a network error, without any URL query (tokens travel there)."""
    text = str(exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        text = f"HTTP {exc.status} {exc.message}"
    return f"{type(exc).__name__}: {protocol.scrub_urls(text)}"


async def connect_with_retries(
    http: aiohttp.ClientSession,
    signalling_url: str,
    session_id: str,
    token: str,
    advanced: AdvancedConfig,
) -> tuple[SignalingChannel, list[RTCIceServer]]:
    """Fetch ICE servers and open the socket, retrying with the official backoff.

    Authentication failures are final; everything else is retried
    ``advanced.max_retries`` times.
    """
    url = protocol.signaling_client_url(signalling_url, session_id, token)
    last_error: OdysseyConnectionError | None = None
    for attempt in range(int(advanced.max_retries) + 1):
        if attempt:
            delay = advanced.retry_delay(attempt - 1)
            logger.info("signaling connect failed (%s); retry %d in %.1f s", last_error, attempt, delay)
            await asyncio.sleep(delay)
        try:
            ice_servers = await asyncio.wait_for(fetch_ice_servers(http, signalling_url), _CONFIG_TIMEOUT_S)
            channel = await asyncio.wait_for(open_signaling(http, url), _OPEN_TIMEOUT_S)
            logger.debug("signaling open: %s", protocol.redact_url(url))
            return channel, ice_servers
        except OdysseyAuthError:
            raise
        except OdysseyConnectionError as exc:
            last_error = exc
        except protocol.ProtocolError as exc:
            last_error = OdysseyConnectionError(f"Bad ICE config from the signaling server: {exc}")
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            last_error = OdysseyConnectionError(f"Failed to connect to signaling server: {describe(exc)}")
    assert last_error is not None
    raise last_error
