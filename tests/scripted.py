"""A scripted HTTP server on loopback, standing in for the hosted API in REST-mapping tests.

``script(method, path, *replies)`` queues answers for a route (the last one
repeats); a reply may be a function of the request. Unscripted routes answer
418. Every request is recorded as a :class:`Seen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

import attrs
from aiohttp import web

__all__ = ["Reply", "ScriptedServer", "Seen", "serving"]


@attrs.frozen
class Reply:
    """One scripted answer.

    ``json`` is sent as JSON unless ``text`` (sent as HTML) or ``body`` (raw
    bytes, streamed in ``chunk``-byte writes) is given. ``delay`` waits before
    answering, ``trickle_s`` between chunks (a JSON reply is then streamed too),
    ``drop_after`` aborts the connection after that many body bytes.
    """

    status: int = 200
    json: Any = None
    text: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    delay: float = 0.0
    trickle_s: float = 0.0
    chunk: int = 4096
    drop_after: int | None = None


@attrs.frozen
class Seen:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Script = Reply | Callable[[Seen], Reply]


class ScriptedServer:
    """aiohttp on 127.0.0.1:<free port>, on a thread with its own loop."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self._script: dict[tuple[str, str], list[Script]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="scripted-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, method: str, path: str, *replies: Script) -> None:
        """Answer ``method path`` with ``replies`` in turn, the last one from then on."""
        with self._lock:
            self._script[(method, path)] = list(replies)

    def seen(self, path: str | None = None) -> list[Seen]:
        """The requests received so far (for ``path`` only, if given)."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def start(self) -> None:
        """Start serving (blocks until the port is bound)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        seen = Seen(request.method, request.path, dict(parse_qsl(request.query_string)), dict(request.headers), body)
        with self._lock:
            self.requests.append(seen)
            replies = self._script.get((request.method, request.path))
            if not replies:
                return web.json_response({"detail": "unscripted route"}, status=418)
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(seen)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status == 204:
            return web.Response(status=204, headers=reply.headers)
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, headers=reply.headers, content_type="text/html")
        if reply.body is None and not reply.trickle_s:
            return web.json_response(reply.json, status=reply.status, headers=reply.headers)
        return await _stream(request, reply)


@contextlib.contextmanager
def serving(access_token: str) -> Iterator[ScriptedServer]:
    """A started server whose ``POST /auth/token`` grants ``access_token``; stopped on exit."""
    server = ScriptedServer()
    server.start()
    server.script("POST", "/auth/token", Reply(json={"access_token": access_token, "expires_in": 3600}))
    try:
        yield server
    finally:
        server.stop()


async def _stream(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Send the reply's body (or JSON) in chunks, trickling and dropping as scripted."""
    if reply.body is None:
        payload, headers = json.dumps(reply.json).encode(), {"Content-Type": "application/json", **reply.headers}
    else:
        payload, headers = reply.body, reply.headers
    response = web.StreamResponse(status=reply.status, headers=headers)
    response.content_length = len(payload)
    await response.prepare(request)
    if reply.drop_after is not None:
        payload = payload[: reply.drop_after]
    for i in range(0, len(payload), reply.chunk):
        await response.write(payload[i : i + reply.chunk])
        if reply.trickle_s:
            await asyncio.sleep(reply.trickle_s)
    if reply.drop_after is not None:
        assert request.transport is not None
        request.transport.abort()
    return response
