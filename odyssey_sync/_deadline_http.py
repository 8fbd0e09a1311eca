"""A requests transport whose every read of a response ends at the call's deadline.

requests' ``timeout=(connect, read)`` bounds each socket operation, not a
call: a server that sends one byte a second keeps a ``timeout=2`` call
waiting as long as it likes. Mount :class:`DeadlineAdapter` on a session and
make the call inside :func:`deadline`; then every read of the response (status
line, headers, body) waits at most until that moment, whatever the server
does, and a read past it raises ``TimeoutError`` (``socket.timeout``, which
urllib3 and requests report as their read timeouts).

Connecting and sending stay bounded by requests' connect timeout (urllib3
sets it on the socket, and ``sendall``'s timeout covers the whole send). Name
resolution is not bounded: ``getaddrinfo`` cannot be interrupted.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import io
import time
from typing import Any, Iterator

import requests.adapters
import urllib3
import urllib3.connection

__all__ = ["DeadlineAdapter", "deadline"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("odyssey_http_deadline", default=None)


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Responses read inside the block stop at ``at`` (a ``time.monotonic()`` moment; ``None``: no limit)."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


class _DeadlineReader(io.RawIOBase):
    """Reads a socket, each wait the shorter of the time left and the socket's own timeout."""

    def __init__(self, sock: Any, at: float) -> None:
        super().__init__()
        self._sock = sock
        self._at = at
        self._own_timeout: float | None = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed while reading the response")
        self._sock.settimeout(left if self._own_timeout is None else min(left, self._own_timeout))
        return int(self._sock.recv_into(buffer))


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through a :class:`_DeadlineReader` when a deadline is set."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None, url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        at = _DEADLINE.get()
        if at is not None:
            self.fp.close()  # the plain file over the socket, unused yet
            self.fp = io.BufferedReader(_DeadlineReader(sock, at))


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections whose responses honour :func:`deadline` (proxied ones too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager, then make it use the deadline-aware pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy's pool manager, using the deadline-aware pools (SOCKS proxies keep their own)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
