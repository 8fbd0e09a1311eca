"""Untrusted bodies: read with a cap checked as bytes arrive, parsed without stalling the loop.

Each route has its own limit (:data:`AUTH_BODY_BYTES` for ``/auth/token``,
:data:`SMALL_BODY_BYTES` for other small JSON bodies, :data:`SDP_BODY_BYTES`
for WHEP offers, ``ServerConfig.max_body_bytes`` for simulation jobs, which
may carry start images). A ``Content-Length`` over the limit is refused
before anything is read, a chunked body as soon as it passes the limit.

JSON: CPython's parser holds the GIL for the whole document, so parsing in a
thread alone does not keep the loop (and every session's video) running. A
large document is first checked for how many values it can hold (commas and
colons, counted as the bytes arrive when read here) against
:data:`MAX_JSON_SEPARATORS`, which bounds the parse to a few tens of
milliseconds, and then parsed on the input executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
from typing import Any

from aiohttp import web

__all__ = [
    "AUTH_BODY_BYTES",
    "BodyError",
    "INLINE_JSON_BYTES",
    "MAX_JSON_SEPARATORS",
    "SDP_BODY_BYTES",
    "SMALL_BODY_BYTES",
    "loads_checked",
    "parse_json",
    "read_capped",
    "too_large",
]

AUTH_BODY_BYTES = 16 * 1024
"""Largest ``POST /auth/token`` body: an API key fits many times over."""

SMALL_BODY_BYTES = 64 * 1024
"""Largest body of the other small JSON routes (sessions, telemetry)."""

SDP_BODY_BYTES = 256 * 1024
"""Largest WHEP offer."""

INLINE_JSON_BYTES = 64 * 1024
"""Documents up to this size are parsed on the loop (well under a millisecond)."""

MAX_JSON_SEPARATORS = 200_000
"""Most commas plus colons a large JSON document may hold (about 40,000 script entries).

At the slowest (small objects), CPython parses about 4 million separators a
second, so this bounds the time a parse holds the GIL to about 50 ms.
"""


class BodyError(Exception):
    """A body that cannot be used: ``status`` (400, 413, 415) and the ``detail`` to answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def too_large(limit: int) -> str:
    """The ``detail`` of a 413."""
    return f"Request body too large: the limit is {limit} bytes"


async def read_capped(request: web.Request, limit: int, *, max_separators: int | None = None) -> bytearray:
    """The whole body, or :class:`BodyError` 413 as soon as it is known to exceed ``limit`` bytes.

    With ``max_separators``, a JSON body is also refused (413) as soon as it
    holds more commas and colons than that, counted chunk by chunk as it
    arrives. The body is gathered into one growing buffer as it arrives, so no
    single step copies all of it while the loop waits.
    """
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, too_large(limit))
    body = bytearray()
    separators = 0
    while chunk := await request.content.readany():
        if len(body) + len(chunk) > limit:
            raise BodyError(413, too_large(limit))
        if max_separators is not None:
            separators += chunk.count(b",") + chunk.count(b":")
            if separators > max_separators:
                raise _too_many_values("Request body", separators, max_separators)
        body += chunk
    return body


def _too_many_values(what: str, separators: int, limit: int) -> BodyError:
    return BodyError(
        413,
        f"{what} holds too many JSON values (more than {limit} commas and colons); split it into smaller requests",
    )


def loads_checked(raw: bytes | bytearray | str, what: str = "Request body", *, counted: bool = False) -> Any:
    """``json.loads`` with every failure a :class:`BodyError` (400 or 413) whose text names ``what``.

    A document larger than :data:`INLINE_JSON_BYTES` is first checked
    against :data:`MAX_JSON_SEPARATORS` (unless ``counted``: the caller did
    it as the bytes arrived). Blocking and GIL-bound: call it on the loop
    only for small documents; :func:`parse_json` decides.
    """
    if len(raw) > INLINE_JSON_BYTES and not counted:
        separators = raw.count(",") + raw.count(":") if isinstance(raw, str) else raw.count(b",") + raw.count(b":")
        if separators > MAX_JSON_SEPARATORS:
            raise _too_many_values(what, separators, MAX_JSON_SEPARATORS)
    try:
        # Decoding first splits the time the GIL is held in two (json.loads would decode, then parse, in one call).
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
        return json.loads(text)
    except RecursionError:
        raise BodyError(400, f"{what} is nested too deeply to parse") from None
    except UnicodeDecodeError:
        raise BodyError(400, f"{what} is not UTF-8 text; send JSON encoded as UTF-8") from None
    except ValueError as exc:
        raise BodyError(400, f"{what} is not valid JSON: {exc}") from None


async def parse_json(
    raw: bytes | bytearray | str,
    executor: concurrent.futures.Executor,
    what: str = "Request body",
    *,
    counted: bool = False,
) -> Any:
    """:func:`loads_checked`, on the loop for small documents and on ``executor`` for larger ones."""
    if len(raw) <= INLINE_JSON_BYTES:
        return loads_checked(raw, what, counted=counted)
    return await asyncio.get_running_loop().run_in_executor(
        executor, functools.partial(loads_checked, raw, what, counted=counted)
    )
