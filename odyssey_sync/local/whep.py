"""HTTP routes of broadcasts: WHEP for WebRTC viewers, files for HLS players.

``webrtc_url`` of a broadcast is ``<server>/broadcast/<stream_id>``:

* ``POST <webrtc_url>/whep?token=<spectator_token>`` (or ``Authorization:
  Bearer <spectator_token>``), ``Content-Type: application/sdp``, the offer as
  body: ``201 Created``, the answer as body, ``Location`` the viewer's
  resource. 401 bad token (or one for another stream), 404 unknown or ended
  stream, 415 not SDP, 413 an offer over 256 KiB (chunked or not), 400 an
  offer that is not UTF-8 text, 400/406 an offer without (H.264) video, 429
  (``Retry-After``) too many viewers of this token still joining, 503 too
  many viewers.
* ``DELETE <Location>``: ``200``, the viewer is gone (404 if it was already).
* ``GET <webrtc_url>/index.m3u8`` and its segments: the HLS playlist, when the
  server writes one (the stream id, random and unguessable, is the capability,
  as players cannot add a token to segment requests).

ICE servers come from ``GET /config`` on the same origin. There is no
trickle (the answer carries every candidate), so ``PATCH`` answers 405.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math

from aiohttp import web

from .auth import TokenError
from .bodies import SDP_BODY_BYTES, BodyError, read_capped
from .broadcast import BroadcastEnded, BroadcastFull, BroadcastHub, OfferRejected, TooManyJoining
from .hls import content_type_of

__all__ = ["BROADCASTS", "add_whep_routes"]

logger = logging.getLogger("odyssey_sync.local.whep")

BROADCASTS = web.AppKey("odyssey_broadcasts", BroadcastHub)
_SDP = "application/sdp"
_BUSY_RETRY_AFTER_S = "5"


def _refuse(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def _token_of(request: web.Request) -> str | None:
    token = request.query.get("token")
    if token:
        return token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _token_key(token: str | None) -> str:
    """What viewers are counted by per token: a digest, so the token itself is not kept."""
    return hashlib.sha256((token or "").encode("utf-8", "surrogatepass")).hexdigest()


async def whep_post(request: web.Request) -> web.Response:
    """``POST /broadcast/{stream_id}/whep``: a new viewer from its SDP offer."""
    hub = request.app[BROADCASTS]
    stream_id = request.match_info["stream_id"]
    token = _token_of(request)
    try:
        hub.verify_token(token, stream_id)
    except TokenError as exc:
        return _refuse(401, f"Invalid spectator token: {exc}", {"WWW-Authenticate": "Bearer"})
    broadcast = hub.get(stream_id)
    if broadcast is None:
        return _refuse(404, "Stream not found or already ended")
    if request.content_type != _SDP:
        return _refuse(415, f"Content-Type must be {_SDP}", {"Accept-Post": _SDP})
    try:
        offer = (await read_capped(request, SDP_BODY_BYTES)).decode("utf-8")
    except BodyError as exc:
        return _refuse(exc.status, f"SDP offer too large: the limit is {SDP_BODY_BYTES} bytes")
    except UnicodeDecodeError:
        return _refuse(400, "The SDP offer is not UTF-8 text; send the offer your WebRTC stack created")
    try:
        viewer = await broadcast.add_viewer(offer, token_key=_token_key(token))
    except BroadcastEnded:
        return _refuse(404, "Stream not found or already ended")
    except BroadcastFull:
        return _refuse(
            503, "This broadcast has the maximum number of spectators; try again later", {"Retry-After": _BUSY_RETRY_AFTER_S}
        )
    except TooManyJoining as exc:
        return _refuse(
            429,
            f"Too many spectators are joining with this token at once ({exc.joining}); try again in a few seconds",
            {"Retry-After": str(math.ceil(exc.retry_after_s))},
        )
    except OfferRejected as exc:
        return _refuse(exc.status, str(exc))
    return web.Response(
        status=201,
        content_type=_SDP,
        text=viewer.answer_sdp,
        headers={
            "Location": f"/broadcast/{stream_id}/whep/{viewer.viewer_id}",
            "Access-Control-Expose-Headers": "Location",
        },
    )


async def whep_delete(request: web.Request) -> web.Response:
    """``DELETE /broadcast/{stream_id}/whep/{viewer_id}``: end one viewer."""
    broadcast = request.app[BROADCASTS].get(request.match_info["stream_id"])
    if broadcast is None or not await broadcast.remove_viewer(request.match_info["viewer_id"]):
        return _refuse(404, "Spectator session not found (already ended)")
    return web.Response(status=200)


async def hls_file(request: web.Request) -> web.Response:
    """``GET /broadcast/{stream_id}/{name}``: the HLS playlist or one of its segments."""
    broadcast = request.app[BROADCASTS].get(request.match_info["stream_id"])
    name = request.match_info["name"]
    path = broadcast.hls.path_of(name) if broadcast is not None and broadcast.hls is not None else None
    if path is None:
        return _refuse(404, "Stream not found, already ended, or no such HLS file")
    try:
        body = await asyncio.get_running_loop().run_in_executor(None, _read, path)
    except FileNotFoundError:  # a segment rotated out between the lookup and the read
        return _refuse(404, "No such HLS file (it rotated out of the playlist)")
    return web.Response(body=body, headers={"Content-Type": content_type_of(name), "Cache-Control": "no-cache"})


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


async def _close_broadcasts(app: web.Application) -> None:
    await app[BROADCASTS].close_all()


def add_whep_routes(app: web.Application, hub: BroadcastHub) -> None:
    """Serve ``hub``'s broadcasts from ``app``; every broadcast ends when the app shuts down."""
    app[BROADCASTS] = hub
    app.router.add_post("/broadcast/{stream_id}/whep", whep_post)
    app.router.add_delete("/broadcast/{stream_id}/whep/{viewer_id}", whep_delete)
    app.router.add_get("/broadcast/{stream_id}/{name}", hls_file)
    app.on_shutdown.append(_close_broadcasts)
