"""The aiohttp application: REST endpoints, the signaling upgrade, CORS and error bodies.

Every error is FastAPI-shaped (``{"detail": ...}``) and every response,
errors and preflights included, carries CORS headers so a browser client
can call the server cross-origin. Handlers read top to bottom: check the
caller, check the body, act, answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from typing import Any, Awaitable, Callable

import attrs
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .. import protocol
from .archive import Archive
from .auth import Authority, TokenError
from .bodies import (
    AUTH_BODY_BYTES,
    MAX_JSON_SEPARATORS,
    SMALL_BODY_BYTES,
    BodyError,
    parse_json,
    read_capped,
    too_large,
)
from .broadcast import BroadcastHub
from .config import KEY_PREFIX, ApiKey, ServerConfig
from .faults import Faults
from .sessions import SessionRegistry
from .streamer import WS_CLOSE_TIMEOUT_S, Streamer
from .usage import usage_error_body
from .whep import add_whep_routes
from .world import World

__all__ = ["AccessLogger", "AppState", "HttpError", "STATE", "build_app"]

logger = logging.getLogger("odyssey_sync.local.app")

REGION_ID = "local"
MODEL_NAME = "odyssey-local"
_CORS_METHODS = "GET, POST, DELETE, OPTIONS"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CORS_HEADERS = "Authorization, Content-Type"
# Text frames handed over as bytes where aiohttp can (3.14+): decoding a 30 MB message as UTF-8 then
# happens off the loop, with the parse, instead of on it (the streamer takes either).
_UNDECODED_TEXT: dict[str, Any] = (
    {"decode_text": False} if "decode_text" in inspect.signature(web.WebSocketResponse).parameters else {}
)
LARGE_BODIES_AT_ONCE = 2
"""Large bodies (simulation jobs, up to ``max_body_bytes``) read and parsed at once; others wait their turn."""


@attrs.define(eq=False)
class AppState:
    """Everything the handlers share; owned by the server, used on its loop only."""

    config: ServerConfig
    authority: Authority
    registry: SessionRegistry
    faults: Faults
    idle: World
    idle_ready: asyncio.Future[None]
    executor: concurrent.futures.Executor
    inputs: concurrent.futures.Executor
    """Where untrusted input (large JSON, images) is parsed and decoded, apart from the frame encodes."""
    streamers: set[Streamer] = attrs.Factory(set)
    closing: bool = False
    broadcasts: BroadcastHub = attrs.Factory(
        lambda self: BroadcastHub(self.config, self.authority), takes_self=True
    )
    archive: Archive | None = None
    large_bodies: asyncio.Semaphore = attrs.Factory(lambda: asyncio.Semaphore(LARGE_BODIES_AT_ONCE))
    """Held while a body that may be large (a simulation job) is read and parsed: bounds the memory they take."""


STATE = web.AppKey("odyssey_state", AppState)


class HttpError(Exception):
    """Raised by a handler to answer ``status`` with a JSON body (``{"detail": detail}`` unless ``body``)."""

    def __init__(self, status: int, detail: Any = None, *, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status, detail)
        self.status = status
        self.body = {"detail": detail} if body is None else body
        self.headers = headers or {}


class AccessLogger(AbstractAccessLogger):
    """Logs method, path (never the query: tokens travel there) and status at DEBUG."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write one line for one request."""
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s -> %s in %.1f ms", request.method, request.path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        """Only worth formatting when DEBUG is on."""
        return self.logger.isEnabledFor(logging.DEBUG)


# -- middlewares --------------------------------------------------------------------------


def _cors_headers(request: web.Request) -> dict[str, str]:
    allowed = [h.strip() for h in _CORS_HEADERS.split(",")]
    known = {h.lower() for h in allowed}
    for header in request.headers.get("Access-Control-Request-Headers", "").split(","):
        if header.strip() and header.strip().lower() not in known:
            allowed.append(header.strip())
            known.add(header.strip().lower())
    return {
        "Access-Control-Allow-Origin": request.headers.get("Origin") or "*",
        "Access-Control-Allow-Methods": _CORS_METHODS,
        "Access-Control-Allow-Headers": ", ".join(allowed),
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and put CORS headers on every response not yet sent."""
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    if not response.prepared:
        response.headers.update(_cors_headers(request))
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON ``{"detail"}`` response; the server keeps serving."""
    try:
        limit = request.app[STATE].config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise HttpError(413, too_large(limit))
        return await handler(request)
    except HttpError as exc:
        return web.json_response(exc.body, status=exc.status, headers=exc.headers)
    except BodyError as exc:
        return web.json_response({"detail": exc.detail}, status=exc.status)
    except web.HTTPRequestEntityTooLarge:
        return web.json_response({"detail": too_large(request.app[STATE].config.max_body_bytes)}, status=413)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"detail": exc.reason}, status=exc.status, headers=_allow_header(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return web.json_response({"detail": "Internal server error"}, status=500)


def _allow_header(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


# -- request helpers ----------------------------------------------------------------------


async def _json_body(request: web.Request, limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object: read with ``limit`` (413 beyond), parsed off the loop when large.

    ``limit`` is the route's; ``ServerConfig.max_body_bytes`` caps every route.
    """
    limit = min(limit, request.app[STATE].config.max_body_bytes)
    raw = await read_capped(request, limit, max_separators=MAX_JSON_SEPARATORS)
    if not raw or raw.isspace():
        if allow_empty:
            return {}
        raise HttpError(422, "Request body must be a JSON object")
    body = await parse_json(raw, request.app[STATE].inputs, counted=True)
    if not isinstance(body, dict):
        raise HttpError(422, f"Request body must be a JSON object, not {type(body).__name__}")
    return body


def _caller(request: web.Request) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    key = None
    if scheme.lower() == "bearer" and token.strip():
        key = request.app[STATE].authority.key_for_access_token(token.strip())
    if key is None:
        raise HttpError(
            401,
            "Not authenticated: send 'Authorization: Bearer <access_token from /auth/token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


def _http_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


# -- REST ---------------------------------------------------------------------------------


async def auth_token(request: web.Request) -> web.Response:
    """``POST /auth/token``: an API key for an access token."""
    state = request.app[STATE]
    body = await _json_body(request, AUTH_BODY_BYTES)
    api_key = body.get("api_key")
    if not isinstance(api_key, str) or not api_key.startswith(KEY_PREFIX):
        raise HttpError(422, f"api_key must be a string starting with {KEY_PREFIX!r}")
    key = state.authority.find_key(api_key)
    if key is None:
        raise HttpError(401, "Invalid API key")
    if key.suspended:
        raise HttpError(403, "API key access denied")
    token = state.authority.issue_access_token(key)
    return web.json_response({"access_token": token, "expires_in": state.authority.access_token_lifetime_s})


async def regions(request: web.Request) -> web.Response:
    """``GET /regions``: the one local region."""
    _caller(request)
    return web.json_response({"regions": [{"id": REGION_ID, "ping_url": f"{_http_base(request)}/ping"}]})


async def ping(request: web.Request) -> web.Response:
    """``GET /ping``: for latency probes."""
    return web.json_response({"status": "ok"})


async def sessions_request(request: web.Request) -> web.Response:
    """``POST /sessions/request``: hold a session, or say why not (503, 429)."""
    state = request.app[STATE]
    key = _caller(request)
    await _json_body(request, SMALL_BODY_BYTES, allow_empty=True)
    if state.closing or state.faults.take_session_request_503():
        raise HttpError(503, "No available sessions")
    usage = state.faults.take_usage_error()
    if usage is not None:
        code, wrapped = usage
        _raise_usage(usage_error_body(code), wrapped)
    if key.monthly_limit_reached:
        _raise_usage(usage_error_body("MONTHLY_LIMIT_REACHED"), True)
    admission = state.registry.admit(key)
    if admission.refusal == "concurrency":
        body = usage_error_body("CONCURRENT_LIMIT_REACHED", active_count=admission.active_count, limit=admission.limit)
        _raise_usage(body, True)
    if admission.session is None:
        raise HttpError(503, "No available sessions")
    session = admission.session
    asyncio.get_running_loop().call_later(
        state.config.unclaimed_session_timeout_s, state.registry.release_if_unclaimed, session.session_id
    )
    logger.info("session %s held for %s", session.session_id[:8], key.name)
    return web.json_response(
        {
            "session_id": session.session_id,
            "signalling_url": protocol.signaling_ws_base(_http_base(request)),
            "capabilities": {"image_to_video": state.config.image_to_video},
            "streamer_id": f"local-{session.session_id[:8]}",
            "model": MODEL_NAME,
            "region": REGION_ID,
        }
    )


def _raise_usage(body: dict[str, Any], wrapped: bool) -> None:
    raise HttpError(429, body={"detail": body} if wrapped else body)


async def sessions_token(request: web.Request) -> web.Response:
    """``POST /sessions/token``: a session JWT for one of the caller's sessions."""
    state = request.app[STATE]
    key = _caller(request)
    body = await _json_body(request, SMALL_BODY_BYTES)
    session_id = body.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise HttpError(422, "session_id must be a non-empty string")
    session = state.registry.get(session_id)
    if session is None or session.key.key != key.key:
        raise HttpError(404, "Session not found")
    token = state.authority.mint_session_token(session_id)
    return web.json_response({"session_token": token, "expires_in": protocol.SESSION_TOKEN_LIFETIME_S})


async def telemetry(request: web.Request) -> web.Response:
    """``POST /telemetry``: accepted; event names and session ids are kept (cut short) for tests, the rest ignored.

    At most :data:`~.bodies.SMALL_BODY_BYTES` (413 beyond); a body that is not JSON is 400.
    """
    raw = await read_capped(request, min(SMALL_BODY_BYTES, request.app[STATE].config.max_body_bytes))
    body = await parse_json(raw, request.app[STATE].inputs) if raw and not raw.isspace() else None
    events = body.get("events") if isinstance(body, dict) else None
    if isinstance(events, list):
        request.app[STATE].registry.note_telemetry(events)
    return web.Response(status=204)


async def ice_config(request: web.Request) -> web.Response:
    """``GET /config``: the ICE servers clients should use."""
    return web.json_response({"iceServers": request.app[STATE].config.ice_servers})


# -- signaling ----------------------------------------------------------------------------


async def signaling(request: web.Request) -> web.StreamResponse:
    """``GET /client/{session_id}?token=<JWT>``: verify, then upgrade and hand over to a :class:`Streamer`."""
    state = request.app[STATE]
    session_id = request.match_info["session_id"]
    try:
        state.authority.verify_session_token(request.query.get("token"), session_id)
    except TokenError as exc:
        raise HttpError(401, str(exc)) from None
    if state.closing:
        raise HttpError(503, "Server is shutting down")
    session = state.registry.get(session_id)
    if session is None:
        raise HttpError(404, "Session not found")
    if session.connected:
        raise HttpError(409, "Session already has a signaling connection")
    # No permessage-deflate: inflating a message costs the server far more than it cost the sender (a few
    # kilobytes can inflate to max_body_bytes), and it runs on the loop every session's video shares.
    ws = web.WebSocketResponse(
        timeout=WS_CLOSE_TIMEOUT_S,
        max_msg_size=state.config.max_body_bytes,
        autoping=True,
        heartbeat=None,
        compress=False,
        **_UNDECODED_TEXT,
    )
    if not ws.can_prepare(request).ok:
        raise HttpError(400, "Expected a WebSocket upgrade")
    state.registry.set_connected(session, True)
    try:
        await ws.prepare(request)
    except BaseException:
        state.registry.release(session)
        raise
    streamer = Streamer(
        session=session,
        ws=ws,
        request=request,
        config=state.config,
        faults=state.faults,
        registry=state.registry,
        idle=state.idle,
        idle_ready=state.idle_ready,
        executor=state.executor,
        inputs=state.inputs,
        broadcasts=state.broadcasts,
        archive=state.archive,
    )
    logger.info("session %s connected (%s)", session_id[:8], protocol.redact_url(str(request.url)))
    state.streamers.add(streamer)
    try:
        await streamer.run()
    finally:
        state.streamers.discard(streamer)
    return ws


def build_app(state: AppState) -> web.Application:
    """The application with every route, the middlewares and ``state`` attached."""
    app = web.Application(middlewares=[cors_middleware, error_middleware], client_max_size=state.config.max_body_bytes)
    app[STATE] = state
    app.router.add_post("/auth/token", auth_token)
    app.router.add_get("/regions", regions)
    app.router.add_get("/ping", ping)
    app.router.add_post("/sessions/request", sessions_request)
    app.router.add_post("/sessions/token", sessions_token)
    app.router.add_post("/telemetry", telemetry)
    app.router.add_get("/config", ice_config)
    app.router.add_get("/client/{session_id}", signaling)
    add_whep_routes(app, state.broadcasts)
    from .recordings_api import add_recording_routes  # imported here: it builds on this module's helpers

    add_recording_routes(app)
    return app
