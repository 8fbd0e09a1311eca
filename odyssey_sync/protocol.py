"""The Odyssey wire protocol, sans I/O.

Message shapes, URL rules and token decoding, written once and shared by the
SDK and the local server. Nothing here touches a socket.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Mapping
from urllib.parse import quote, urlsplit, urlunsplit

# Data channel labels (both channels are created by the server).
CLIENT_TO_STREAMER = "clientToStreamer"
STREAMER_TO_CLIENT = "streamerToClient"

# Largest data-channel message a client sends when the remote limit is unknown.
DEFAULT_DATA_CHANNEL_LIMIT = 16 * 1024

MAX_PROMPT_CHARS = 10_000
"""Prompts (stream starts, updates and simulation scripts) must be shorter than this many characters."""

LANDSCAPE = (1280, 704)
PORTRAIT = (704, 1280)

KEEPALIVE_INTERVAL_S = 10.0
SESSION_TOKEN_LIFETIME_S = 600
CLIENT_CLOSE_REASON = "Client disconnect"
NORMAL_CLOSE_CODES = frozenset({1000, 1001})

# Signaling message types.
OFFER = "offer"
ANSWER = "answer"
ICE_CANDIDATE = "ice_candidate"
ERROR = "error"
KEEPALIVE = "keepalive"
CLIENT_DISCONNECTING = "client_disconnecting"

# Stream message types (data channel; the start also on signaling).
STREAM_START = "interactive_stream_start"
UPDATE = "update"
STREAM_END = "interactive_stream_end"
STREAM_STARTED = "stream_started"
UPDATE_ACKNOWLEDGED = "update_acknowledged"
STREAM_ENDED = "stream_ended"
STREAM_ERROR = "interactive_stream_error"
BROADCAST_READY = "broadcast_ready"

# Signaling ``error`` reasons.
SIGNALING_ERROR_REASONS = ("streamer_not_available", "streamer_disconnected", "duration_limit_reached", "unknown")
# ``interactive_stream_error`` reasons the hosted service documents.
STREAM_ERROR_REASONS = ("session_timeout", "quota_exceeded", "concurrent_limit_exceeded", "lease_denied")
SESSION_TIMEOUT_MESSAGE = "Stream ended: credit lease expired"

# HTTP 429 usage codes.
USAGE_CODES = (
    "MONTHLY_LIMIT_REACHED",
    "CONCURRENT_LIMIT_REACHED",
    "STREAM_DURATION_EXCEEDED",
    "ACCOUNT_SUSPENDED",
    "RATE_LIMITED",
)


class ProtocolError(ValueError):
    """A message that does not follow the protocol."""


def encode(message: Mapping[str, Any]) -> str:
    """Serialise one message to compact JSON text."""
    return json.dumps(message, separators=(",", ":"))


def decode(raw: str | bytes) -> dict[str, Any]:
    """Parse one JSON message that must be an object with a string ``type``.

    Anything else, nesting too deep to parse included, raises :class:`ProtocolError`.
    """
    try:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw).decode("utf-8")
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("message is nested too deeply to parse") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("message is not a JSON object with a string 'type'")
    return message


def prompt_problem(prompt: object, *, name: str = "prompt") -> str | None:
    """What is wrong with ``prompt``, in words for the sender, or ``None`` when it is usable.

    The one rule for every path (data channel, signaling start, simulation
    scripts): a string under :data:`MAX_PROMPT_CHARS` characters that is valid
    Unicode text (no lone UTF-16 surrogates, which JSON can carry as
    ``\\ud800`` but no UTF-8 text can hold). Emptiness is the caller's rule.
    """
    if not isinstance(prompt, str):
        return f"{name} must be a string, not {'null' if prompt is None else type(prompt).__name__}"
    if len(prompt) >= MAX_PROMPT_CHARS:
        return f"{name} is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS} (a sentence or two works best)"
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{name} is not valid Unicode text: a lone surrogate (U+{ord(prompt[exc.start]):04X}) at character "
            f"{exc.start}; send the text as UTF-8"
        )
    return None


# -- builders, client to server -------------------------------------------------------------


def stream_start(
    prompt: str,
    *,
    portrait: bool,
    image_data_url: str | None = None,
    broadcast: bool = False,
    bypass_prompt_expansion: bool | None = None,
) -> dict[str, Any]:
    """``interactive_stream_start``; ``bypass_vlm_expansion`` only when given."""
    message: dict[str, Any] = {
        "type": STREAM_START,
        "prompt": prompt,
        "portrait": portrait,
        "input_image_base64": image_data_url,
        "broadcast": broadcast,
    }
    if bypass_prompt_expansion is not None:
        message["bypass_vlm_expansion"] = bypass_prompt_expansion
    return message


def update(prompt: str) -> dict[str, Any]:
    """``update``: steer the running stream."""
    return {"type": UPDATE, "prompt": prompt}


def stream_end() -> dict[str, Any]:
    """``interactive_stream_end``."""
    return {"type": STREAM_END}


def answer(sdp: str) -> dict[str, Any]:
    """Signaling ``answer``."""
    return {"type": ANSWER, "sdp": sdp}


def keepalive() -> dict[str, Any]:
    """Signaling ``keepalive``."""
    return {"type": KEEPALIVE}


def client_disconnecting() -> dict[str, Any]:
    """Signaling ``client_disconnecting``, sent before a clean close."""
    return {"type": CLIENT_DISCONNECTING}


def ice_candidate(candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> dict[str, Any]:
    """Signaling ``ice_candidate`` (either direction)."""
    return {"type": ICE_CANDIDATE, "candidate": candidate, "sdpMid": sdp_mid, "sdpMLineIndex": sdp_mline_index}


# -- builders, server to client -------------------------------------------------------------


def offer(sdp: str) -> dict[str, Any]:
    """Signaling ``offer`` (the server offers)."""
    return {"type": OFFER, "sdp": sdp}


def signaling_error(reason: str) -> dict[str, Any]:
    """Signaling ``error``; fatal for the client."""
    return {"type": ERROR, "reason": reason}


def stream_started(stream_id: str, applied_prompt: str) -> dict[str, Any]:
    """``stream_started``, the answer to a start."""
    return {"type": STREAM_STARTED, "stream_id": stream_id, "applied_prompt": applied_prompt}


def update_acknowledged(prompt: str) -> dict[str, Any]:
    """``update_acknowledged``, the answer to an update."""
    return {"type": UPDATE_ACKNOWLEDGED, "prompt": prompt}


def stream_ended() -> dict[str, Any]:
    """``stream_ended``, the answer to an end."""
    return {"type": STREAM_ENDED}


def stream_error(reason: str, message: str) -> dict[str, Any]:
    """``interactive_stream_error``."""
    return {"type": STREAM_ERROR, "reason": reason, "message": message}


def broadcast_ready(broadcast_url: str | None, webrtc_url: str, spectator_token: str) -> dict[str, Any]:
    """``broadcast_ready``, after a start with ``broadcast: true``."""
    return {
        "type": BROADCAST_READY,
        "broadcast_url": broadcast_url,
        "webrtc_url": webrtc_url,
        "spectator_token": spectator_token,
    }


# -- URLs -----------------------------------------------------------------------------------


def _with_scheme(url: str, mapping: Mapping[str, str], default: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        return f"{default}://{url}"
    scheme, rest = url.split("://", 1)
    return f"{mapping.get(scheme.lower(), scheme.lower())}://{rest}"


def signaling_ws_base(signalling_url: str) -> str:
    """The WebSocket base: trailing ``/`` removed, http->ws, https->wss, no scheme -> ws."""
    return _with_scheme(signalling_url, {"http": "ws", "https": "wss"}, "ws")


def signaling_http_base(signalling_url: str) -> str:
    """The HTTP base of a signaling URL: ws->http, wss->https."""
    return _with_scheme(signalling_url, {"ws": "http", "wss": "https"}, "http")


def signaling_client_url(signalling_url: str, session_id: str, token: str) -> str:
    """``<ws base>/client/<session_id>?token=<url-encoded JWT>``."""
    return f"{signaling_ws_base(signalling_url)}/client/{quote(session_id, safe='')}?token={quote(token, safe='')}"


def ice_config_url(signalling_url: str) -> str:
    """``GET`` this for ``{"iceServers": [...]}`` before each connection attempt."""
    return f"{signaling_http_base(signalling_url)}/config"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def redact_url(url: str) -> str:
    """The URL with its query string hidden, for logs (tokens travel in queries)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "<redacted>" if parts.query else "", ""))


_QUERY = re.compile(r"(\?|&)[^\s'\"<>]*")


def scrub_urls(text: str) -> str:
    """``text`` with every URL query string replaced, so no token leaks into a message."""
    return _QUERY.sub(r"\1<redacted>", text) if "?" in text else text


# -- tokens and bodies ----------------------------------------------------------------------


def jwt_payload(token: str) -> dict[str, Any]:
    """Decode a JWT's payload without verifying it (only the signaling server verifies)."""
    if not isinstance(token, str):
        raise ValueError("session token must be a JWT string")
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("session token is not a JWT (expected three dot-separated parts)")
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise ValueError("session token payload cannot be decoded; pass the token exactly as minted") from None
    if not isinstance(payload, dict):
        raise ValueError("session token payload is not a JSON object")
    return payload


def session_id_from_token(token: str) -> str:
    """The ``session_id`` claim of a session token."""
    session_id = jwt_payload(token).get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("session token has no 'session_id' claim; mint it with /sessions/token")
    return session_id


def parse_ice_servers(body: Any) -> list[dict[str, Any]]:
    """The ``iceServers`` of a ``/config`` body, keeping TURN username and credential."""
    servers = body.get("iceServers") if isinstance(body, Mapping) else None
    if not isinstance(servers, list):
        raise ProtocolError("ICE config has no 'iceServers' list")
    parsed = []
    for server in servers:
        if not isinstance(server, Mapping) or not isinstance(server.get("urls"), (str, list)):
            raise ProtocolError("ICE server entry without 'urls'")
        entry: dict[str, Any] = {"urls": server["urls"]}
        for key in ("username", "credential"):
            if isinstance(server.get(key), str):
                entry[key] = server[key]
        parsed.append(entry)
    return parsed


def error_detail(body: Any) -> str | None:
    """The human text of a FastAPI-style ``{"detail": ...}`` error body, if any."""
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        message = detail.get("message") if isinstance(detail, Mapping) else None
        if isinstance(message, str):
            return message
    return None
