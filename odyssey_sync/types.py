"""Value types shared by the client, the REST layer and the local server.

They mirror the official SDK's dataclasses (same names, same fields) as
frozen attrs classes.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal, Mapping, Union

import attrs

from . import protocol

__all__ = [
    "CURRENT_STREAM",
    "DEFAULT_TIMEOUT",
    "Acknowledgement",
    "AdvancedConfig",
    "BroadcastInfo",
    "ClientCredentials",
    "ConnectionStatus",
    "Recording",
    "SimulationJobDetail",
    "SimulationJobInfo",
    "SimulationJobStatus",
    "SimulationJobsList",
    "SimulationStream",
    "Stats",
    "StreamRecordingInfo",
    "StreamRecordingsList",
    "StreamerCapabilities",
    "StreamView",
    "Timeout",
]


class _ClientDefault(enum.Enum):
    """The type of :data:`DEFAULT_TIMEOUT`."""

    TIMEOUT = "timeout"

    def __repr__(self) -> str:
        return "<client default>"


class _CurrentStream(enum.Enum):
    """The type of :data:`CURRENT_STREAM`."""

    STREAM = "stream"

    def __repr__(self) -> str:
        return "<current stream>"


DEFAULT_TIMEOUT: Final = _ClientDefault.TIMEOUT
"""``timeout=`` default of blocking calls: the timeout given to the client (or connection) at construction."""

CURRENT_STREAM: Final = _CurrentStream.STREAM
"""``stream_id=`` default of the pulling calls: the stream most recently started (idle video before any)."""

Timeout = Union[float, None, Literal[_ClientDefault.TIMEOUT]]
"""What ``timeout=`` takes: seconds, ``None`` to wait forever, or :data:`DEFAULT_TIMEOUT`."""

StreamView = Union[str, None, Literal[_CurrentStream.STREAM]]
"""What ``stream_id=`` of a pulling call takes: a stream id, ``None`` for idle video, or :data:`CURRENT_STREAM`."""


class ConnectionStatus(str, enum.Enum):
    """Where a client is in its connection lifecycle."""

    AUTHENTICATING = "authenticating"
    CONNECTING = "connecting"
    RECONNECTING = "reconnecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"AdvancedConfig.{attribute.name} must be a number >= 0, got {value!r}")


@attrs.frozen
class AdvancedConfig:
    """Retry and queueing knobs, with the official SDK's defaults.

    The signaling connect is retried ``max_retries`` times with a delay of
    ``min(initial_retry_delay_ms * retry_backoff_multiplier**n, max_retry_delay_ms)``;
    a busy service (HTTP 503) is polled once a second for up to ``queue_timeout_s``.
    """

    max_retries: int = attrs.field(default=5, validator=_non_negative)
    initial_retry_delay_ms: float = attrs.field(default=1000, validator=_non_negative)
    max_retry_delay_ms: float = attrs.field(default=2000, validator=_non_negative)
    retry_backoff_multiplier: float = attrs.field(default=2.0, validator=_non_negative)
    queue_timeout_s: float = attrs.field(default=30, validator=_non_negative)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        delay_ms = self.initial_retry_delay_ms * self.retry_backoff_multiplier**attempt
        return min(delay_ms, self.max_retry_delay_ms) / 1000.0


@attrs.frozen
class StreamerCapabilities:
    """What the assigned streamer can do."""

    image_to_video: bool = False

    @classmethod
    def from_dict(cls, data: Any) -> StreamerCapabilities:
        """Read ``{"image_to_video": bool}``; anything else counts as False."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(image_to_video=data.get("image_to_video") is True)

    def to_dict(self) -> dict[str, bool]:
        """The wire form."""
        return {"image_to_video": self.image_to_video}


def _shorten(secret: str) -> str:
    return f"{secret[:8]}..." if len(secret) > 8 else "..."


@attrs.frozen(repr=False)
class ClientCredentials:
    """Pre-minted session credentials, handed by a trusted backend to a client.

    ``session_id`` is read from the token's payload. The token is shortened in
    ``repr`` so credentials can be logged safely.
    """

    signaling_url: str
    session_token: str
    expires_in: int = 600
    capabilities: StreamerCapabilities | None = None
    session_id: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.signaling_url, str) or not self.signaling_url.strip():
            raise ValueError("ClientCredentials.signaling_url must be a non-empty URL string")
        if not isinstance(self.session_token, str) or not self.session_token.strip():
            raise ValueError("ClientCredentials.session_token must be a non-empty JWT string")
        if isinstance(self.expires_in, bool) or not isinstance(self.expires_in, int):
            raise ValueError("ClientCredentials.expires_in must be an integer number of seconds")
        object.__setattr__(self, "session_id", protocol.session_id_from_token(self.session_token))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientCredentials:
        """Build from the JSON form, in snake_case or camelCase."""
        if not isinstance(data, Mapping):
            raise TypeError(f"credentials must be a dict, got {type(data).__name__}")

        def pick(*names: str) -> Any:
            for name in names:
                if name in data:
                    return data[name]
            raise ValueError(f"credentials dict is missing {names[0]!r}; pass what create_client_credentials() returned")

        capabilities = data.get("capabilities")
        signaling_url = pick("signaling_url", "signalingUrl", "signalling_url")
        session_token = pick("session_token", "sessionToken")
        expires_in = pick("expires_in", "expiresIn")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in != int(expires_in):
            raise ValueError(
                f"credentials 'expires_in' must be a whole number of seconds, got {expires_in!r}; "
                "pass what create_client_credentials() returned"
            )
        return cls(
            signaling_url=signaling_url,
            session_token=session_token,
            expires_in=int(expires_in),
            capabilities=StreamerCapabilities.from_dict(capabilities) if isinstance(capabilities, Mapping) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shared with the official SDKs."""
        out: dict[str, Any] = {
            "session_id": self.session_id,
            "signaling_url": self.signaling_url,
            "session_token": self.session_token,
            "expires_in": self.expires_in,
        }
        if self.capabilities is not None:
            out["capabilities"] = self.capabilities.to_dict()
        return out

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(session_id={self.session_id!r}, signaling_url={self.signaling_url!r}, "
            f"session_token={_shorten(self.session_token)!r}, expires_in={self.expires_in!r})"
        )


@attrs.frozen(repr=False)
class BroadcastInfo:
    """Where spectators can watch a broadcast stream.

    ``stream_id`` (not part of the wire message) is the broadcast stream's id as
    the broadcasting client knows it; pass it to ``connect_to_stream(..., stream_id=)``
    so spectator frames carry it.
    """

    hls_url: str | None
    webrtc_url: str
    spectator_token: str
    stream_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"BroadcastInfo(hls_url={self.hls_url!r}, webrtc_url={self.webrtc_url!r}, "
            f"spectator_token={_shorten(self.spectator_token)!r}, stream_id={self.stream_id!r})"
        )


@attrs.frozen
class Recording:
    """Presigned URLs (valid about an hour) of a stream's recorded artifacts."""

    stream_id: str
    video_url: str | None = None
    events_url: str | None = None
    thumbnail_url: str | None = None
    preview_url: str | None = None
    frame_count: int | None = None
    duration_seconds: float | None = None


@attrs.frozen
class StreamRecordingInfo:
    """One entry of :meth:`Odyssey.list_stream_recordings`."""

    stream_id: str
    width: int
    height: int
    started_at: str
    ended_at: str | None = None
    duration_seconds: float | None = None


@attrs.frozen
class StreamRecordingsList:
    """A page of stream recordings, newest first."""

    recordings: list[StreamRecordingInfo]
    total: int
    limit: int
    offset: int


class SimulationJobStatus(str, enum.Enum):
    """The state of a simulation job."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True once the job will not change any more."""
        return self in (SimulationJobStatus.COMPLETED, SimulationJobStatus.FAILED, SimulationJobStatus.CANCELLED)


@attrs.frozen
class SimulationStream:
    """A stream produced by a simulation job."""

    stream_id: str
    video_url: str | None = None
    events_url: str | None = None
    thumbnail_url: str | None = None
    preview_url: str | None = None
    frame_count: int | None = None
    duration_seconds: float | None = None
    script_index: int = 0


@attrs.frozen
class SimulationJobInfo:
    """A simulation job as listed."""

    job_id: str
    status: SimulationJobStatus
    priority: str = "normal"
    created_at: str = ""
    completed_at: str | None = None
    error_message: str | None = None


@attrs.frozen
class SimulationJobDetail:
    """A simulation job in full, with its streams once completed."""

    job_id: str
    status: SimulationJobStatus
    priority: str = "normal"
    created_at: str = ""
    completed_at: str | None = None
    error_message: str | None = None
    dispatched_at: str | None = None
    started_at: str | None = None
    assigned_region: str | None = None
    retry_count: int = 0
    streams: list[SimulationStream] = attrs.Factory(list)
    estimated_wait_minutes: float | None = None


@attrs.frozen
class SimulationJobsList:
    """A page of simulation jobs."""

    jobs: list[SimulationJobInfo]
    total: int
    limit: int
    offset: int


@attrs.frozen
class Stats:
    """Counters of a connection's video, as seen by the client.

    Every decoded frame is counted once in ``frames_received`` and ends up in
    exactly one of: ``frames_delivered`` (handed to the caller by a pulling
    call), ``frames_superseded`` (skipped unread because a newer frame of the
    same stream was handed out: normal for ``latest_frame()`` and
    ``wait_for_frame()`` loops), ``frames_dropped`` (pushed out of the full
    buffer unread from a stream being pulled: read faster or raise
    ``buffer_size``), ``frames_unrequested`` (frames of video nobody pulled,
    such as idle video before a stream, let go to make room) or
    ``frames_buffered`` (waiting to be pulled now).

    ``fps`` is measured over the recent frames and ``bitrate_bps`` over the
    whole connection; ``packets_lost`` comes from RTP and
    ``handler_frames_dropped`` counts frames skipped for a slow
    ``on_video_frame`` handler.
    """

    frames_received: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    frames_superseded: int = 0
    frames_unrequested: int = 0
    frames_buffered: int = 0
    fps: float = 0.0
    bitrate_bps: float = 0.0
    bytes_received: int = 0
    packets_lost: int = 0
    handler_frames_dropped: int = 0


class Acknowledgement(str):
    """A server reply's text (a stream id or an applied prompt) that remembers when it arrived.

    It is a plain ``str`` everywhere; ``received_at`` (``time.monotonic()``)
    lets ``wait_for_frame(after=ack)`` find the first frame after it.
    """

    received_at: float

    def __new__(cls, text: str, received_at: float) -> Acknowledgement:
        """Wrap ``text``, stamped with ``received_at``."""
        ack = super().__new__(cls, text)
        ack.received_at = received_at
        return ack

    def __reduce__(self) -> tuple[Any, ...]:
        return (Acknowledgement, (str(self), self.received_at))
