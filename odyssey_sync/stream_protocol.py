"""The stream conversation of one connection, sans I/O (client side).

:class:`StreamProtocol` owns what the client asked the streamer and what it
answered: the requests in order, which reply belongs to which request (also
when a reply comes late, after its request timed out), and the stream and
broadcast state. It does no I/O and keeps no clock: its owner feeds it
requests (:meth:`~StreamProtocol.submit`), decoded server messages
(:meth:`~StreamProtocol.receive`, with the time they arrived), abandoned
requests and the connection's end, then sends what
:meth:`~StreamProtocol.requests_to_send` returns and acts on
:meth:`~StreamProtocol.events_received`, in order. websockets' ``Protocol`` is
the model.

Ordering rules. Requests leave in the order they were submitted. A start or an
end waits until nothing else is in flight, and nothing leaves while one is in
flight; interacts are pipelined (several may be in flight: the streamer answers
them in order). Whether a request fits the stream state (``start`` needs no
running stream, ``interact`` and ``end`` need one) is decided when it is sent,
so ``start`` then ``interact`` may both be submitted before the start is
acknowledged.

The server's streamer (``odyssey_sync.local.streamer``) uses the same rules
from the other side: :func:`parse_request` turns a client message into a
typed request or a :class:`Refusal`, and :func:`state_refusal` is the one
rule of which request fits which stream state, with the reason codes the
streamer sends back in ``interactive_stream_error``.
"""

from __future__ import annotations

import collections
from typing import Any, Union

import attrs

from . import protocol
from .errors import OdysseyStateError, OdysseyStreamError, StreamDurationExceededError, stream_error_from_reason
from .types import Acknowledgement, BroadcastInfo

__all__ = [
    "BroadcastReady",
    "EndRequest",
    "InteractAcknowledged",
    "MessageIgnored",
    "Refusal",
    "Request",
    "RequestDone",
    "StartRequest",
    "StreamEnded",
    "StreamErrorReceived",
    "StreamProtocol",
    "StreamStarted",
    "UpdateRequest",
    "parse_request",
    "state_refusal",
]

# Replies whose request timed out, remembered so a late one is not taken for the next request's.
_MAX_ORPHANS = 8

_REPLY_TO = {
    protocol.STREAM_START: protocol.STREAM_STARTED,
    protocol.UPDATE: protocol.UPDATE_ACKNOWLEDGED,
    protocol.STREAM_END: protocol.STREAM_ENDED,
}


@attrs.define(eq=False)
class Request:
    """One stream request: the message, how to send it, and an owner's handle (opaque here)."""

    message: dict[str, Any]
    what: str
    via_signaling: bool = False
    handle: Any = None

    @property
    def kind(self) -> str:
        """The message type (``interactive_stream_start``, ``update`` or ``interactive_stream_end``)."""
        return str(self.message["type"])

    @property
    def reply_type(self) -> str:
        """The message type that answers this request."""
        return _REPLY_TO[self.kind]

    @property
    def prompt(self) -> str | None:
        """The prompt it carries, if any."""
        prompt = self.message.get("prompt")
        return prompt if isinstance(prompt, str) else None


@attrs.frozen
class RequestDone:
    """A request is over: ``error`` is ``None`` and ``result`` its outcome, or ``error`` says why it failed."""

    request: Request
    result: Any = None
    error: BaseException | None = None


@attrs.frozen
class StreamStarted:
    """The streamer started a stream."""

    stream_id: str
    applied_prompt: str


@attrs.frozen
class InteractAcknowledged:
    """The streamer applied a prompt to the running stream."""

    prompt: str


@attrs.frozen
class StreamEnded:
    """The running stream is over (``error`` set when the server ended it with one, e.g. its duration limit)."""

    stream_id: str | None
    error: BaseException | None = None


@attrs.frozen
class StreamErrorReceived:
    """``interactive_stream_error``: ``fatal`` when the connection cannot go on (the server closes it)."""

    reason: str
    message: str
    error: BaseException
    fatal: bool


@attrs.frozen
class BroadcastReady:
    """The running stream can be watched (``info`` is ``None`` when the message lacked a URL or token)."""

    info: BroadcastInfo | None


@attrs.frozen
class MessageIgnored:
    """A server message that does not follow the protocol; nothing changed."""

    error: BaseException


Event = Union[
    RequestDone, StreamStarted, InteractAcknowledged, StreamEnded, StreamErrorReceived, BroadcastReady, MessageIgnored
]


@attrs.frozen
class Refusal:
    """Why a stream request is refused: an ``interactive_stream_error`` reason and message."""

    reason: str
    message: str

    def to_message(self) -> dict[str, Any]:
        """The ``interactive_stream_error`` that says so."""
        return protocol.stream_error(self.reason, self.message)


@attrs.frozen
class StartRequest:
    """A valid ``interactive_stream_start``."""

    prompt: str
    portrait: bool
    image_data_url: str | None
    broadcast: bool
    bypass_prompt_expansion: bool


@attrs.frozen
class UpdateRequest:
    """A valid ``update``."""

    prompt: str


@attrs.frozen
class EndRequest:
    """An ``interactive_stream_end``."""


def state_refusal(kind: str, stream_id: str | None) -> Refusal | None:
    """The one rule of which request fits which stream state (``stream_id``: the running stream, if any).

    A start needs no stream running; an interact needs one. An end with no
    stream running is answered ``stream_ended`` by streamers (nothing to end),
    so it is not refused here; the client refuses it itself as a mistake.
    """
    if kind == protocol.STREAM_START and stream_id is not None:
        return Refusal("stream_already_active", "A stream is already running; end it with interactive_stream_end first")
    if kind == protocol.UPDATE and stream_id is None:
        return Refusal("no_active_stream", "No stream is running; start one with interactive_stream_start")
    return None


def parse_request(message: dict[str, Any]) -> StartRequest | UpdateRequest | EndRequest | Refusal:
    """A client's stream message as a typed request, or why it is malformed (``invalid_request``/``invalid_image``)."""
    kind = message.get("type")
    if kind == protocol.STREAM_END:
        return EndRequest()
    if kind not in (protocol.STREAM_START, protocol.UPDATE):
        return Refusal("invalid_request", f"{kind!r} is not a stream request")
    prompt = message.get("prompt", "" if kind == protocol.STREAM_START else None)
    problem = protocol.prompt_problem(prompt)
    if problem is not None:
        return Refusal("invalid_request", problem)
    assert isinstance(prompt, str)
    if kind == protocol.UPDATE:
        return UpdateRequest(prompt)
    portrait = message.get("portrait", True)
    if not isinstance(portrait, bool):
        return Refusal("invalid_request", "portrait must be true or false")
    image = message.get("input_image_base64")
    if image is not None and image != "" and (not isinstance(image, str) or image[:5].lower() != "data:"):
        return Refusal("invalid_image", "input_image_base64 must be a data:<mime>;base64,... URL")
    return StartRequest(
        prompt=prompt,
        portrait=portrait,
        image_data_url=image or None,
        broadcast=message.get("broadcast") is True,
        bypass_prompt_expansion=message.get("bypass_vlm_expansion") is True,
    )


class StreamProtocol:
    """The client's side of the stream messages on one connection; see the module docstring."""

    def __init__(self) -> None:
        """A connection with no stream running and nothing asked yet."""
        self.stream_id: str | None = None
        self.prompt: str | None = None
        self.broadcast: BroadcastInfo | None = None
        self.error: BaseException | None = None
        self._queued: collections.deque[Request] = collections.deque()
        self._in_flight: collections.deque[Request] = collections.deque()
        self._orphans: collections.deque[tuple[str, str | None]] = collections.deque(maxlen=_MAX_ORPHANS)
        self._to_send: list[Request] = []
        self._events: list[Event] = []

    # -- input ------------------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue a request; it leaves (see :meth:`requests_to_send`) when the ordering rules allow."""
        if request.kind not in _REPLY_TO:
            raise ValueError(f"not a stream request: {request.kind!r}")
        if self.error is not None:
            self._done(request, error=self.error)
            return
        self._queued.append(request)
        self._advance()

    def abandon(self, request: Request, error: BaseException, *, sent: bool = True) -> None:
        """``request`` will not wait any longer (timed out, cancelled, or it could not be sent).

        A request that left (``sent``) may still be answered: that late reply is
        recognised and ignored rather than taken for a later request's.
        """
        if request in self._queued:
            self._queued.remove(request)
        elif request in self._in_flight:
            self._in_flight.remove(request)
            if sent:
                self._orphans.append((request.reply_type, request.prompt))
        else:
            return
        self._done(request, error=error)
        self._advance()

    def receive(self, message: dict[str, Any], received_at: float) -> None:
        """A decoded server message (data channel or signaling) that arrived at ``received_at`` (``time.monotonic()``)."""
        kind = message.get("type")
        if kind == protocol.STREAM_STARTED:
            self._on_stream_started(message, received_at)
        elif kind == protocol.UPDATE_ACKNOWLEDGED:
            self._on_update_acknowledged(message, received_at)
        elif kind == protocol.STREAM_ENDED:
            self._on_stream_ended()
        elif kind == protocol.STREAM_ERROR:
            self._on_stream_error(str(message.get("reason", "unknown")), str(message.get("message", "")))
        elif kind == protocol.BROADCAST_READY:
            self._on_broadcast_ready(message)
        else:
            return
        self._advance()

    def fail(self, error: BaseException) -> None:
        """The connection is over: every queued and in-flight request fails with ``error``. Idempotent."""
        if self.error is not None:
            return
        self.error = error
        for request in [*self._in_flight, *self._queued]:
            self._done(request, error=error)
        self._in_flight.clear()
        self._queued.clear()

    # -- output -----------------------------------------------------------------------------------

    def requests_to_send(self) -> list[Request]:
        """The requests to put on the wire now, in order (each returned once)."""
        out, self._to_send = self._to_send, []
        return out

    def events_received(self) -> list[Event]:
        """What happened since the last call, in order (each returned once)."""
        out, self._events = self._events, []
        return out

    @property
    def pending(self) -> int:
        """How many requests are queued or waiting for their reply."""
        return len(self._queued) + len(self._in_flight)

    # -- sending ----------------------------------------------------------------------------------

    def _advance(self) -> None:
        while self._queued and self.error is None:
            head = self._queued[0]
            if head.kind == protocol.UPDATE:
                if any(r.kind != protocol.UPDATE for r in self._in_flight):
                    return
            elif self._in_flight:
                return
            self._queued.popleft()
            refusal = self._refusal(head)
            if refusal is not None:
                self._done(head, error=refusal)
                continue
            self._in_flight.append(head)
            self._to_send.append(head)

    def _refusal(self, request: Request) -> OdysseyStateError | None:
        """Why ``request`` does not fit the stream state now (the streamer's own rule), in the SDK's words."""
        if request.kind == protocol.STREAM_END and self.stream_id is None:
            return OdysseyStateError(
                "No stream is running; nothing to end (call start_stream() first)", reason="no_active_stream"
            )
        refusal = state_refusal(request.kind, self.stream_id)
        if refusal is None:
            return None
        advice = {
            "stream_already_active": f"A stream is already running ({self.stream_id}); call end_stream() before starting another",
            "no_active_stream": "No stream is running; call start_stream() before interact()",
        }
        return OdysseyStateError(advice.get(refusal.reason, refusal.message), reason=refusal.reason)

    def _done(self, request: Request, *, result: Any = None, error: BaseException | None = None) -> None:
        self._events.append(RequestDone(request, result, error))

    # -- receiving --------------------------------------------------------------------------------

    def _on_stream_started(self, message: dict[str, Any], received_at: float) -> None:
        stream_id = message.get("stream_id")
        if not isinstance(stream_id, str) or not stream_id:
            self._events.append(MessageIgnored(OdysseyStreamError("stream_started without a stream_id")))
            return
        applied = message.get("applied_prompt")
        applied = applied if isinstance(applied, str) else ""
        self.stream_id, self.prompt, self.broadcast = stream_id, applied or None, None
        self._events.append(StreamStarted(stream_id, applied))
        self._reply(protocol.STREAM_STARTED, Acknowledgement(stream_id, received_at))

    def _on_update_acknowledged(self, message: dict[str, Any], received_at: float) -> None:
        prompt = message.get("prompt")
        prompt = prompt if isinstance(prompt, str) else ""
        waiting = [r for r in self._in_flight if r.kind == protocol.UPDATE]
        if not any(_matches(prompt, r.prompt) for r in waiting):
            orphan = next((o for o in self._orphans if o[0] == protocol.UPDATE_ACKNOWLEDGED and _matches(prompt, o[1])), None)
            if orphan is not None:
                # The late answer to an interact that timed out: the prompt did change, but nobody waits for it.
                self._orphans.remove(orphan)
                self.prompt = prompt
                self._events.append(InteractAcknowledged(prompt))
                return
        self.prompt = prompt
        self._events.append(InteractAcknowledged(prompt))
        chosen = next((r for r in waiting if _matches(prompt, r.prompt)), waiting[0] if waiting else None)
        if chosen is not None:
            self._in_flight.remove(chosen)
            self._done(chosen, result=Acknowledgement(prompt, received_at))

    def _on_stream_ended(self) -> None:
        ended = self.stream_id
        self.stream_id, self.prompt, self.broadcast = None, None, None
        self._events.append(StreamEnded(ended))
        self._reply(protocol.STREAM_ENDED, None)
        self._fail_in_flight_updates(
            OdysseyStreamError("The stream ended before this interact was acknowledged", reason="stream_ended")
        )

    def _on_stream_error(self, reason: str, text: str) -> None:
        error = stream_error_from_reason(reason, text)
        fatal = isinstance(error, StreamDurationExceededError)
        if fatal:
            # The server closes the connection after a lease expires: the stream is over before the connection.
            ended = self.stream_id
            self.stream_id, self.prompt, self.broadcast = None, None, None
            self._events.append(StreamEnded(ended, error))
            self._events.append(StreamErrorReceived(reason, text, error, fatal))
            self.fail(error)
            return
        self._events.append(StreamErrorReceived(reason, text, error, fatal))
        answered = next(
            (r for r in self._in_flight if r.kind in (protocol.STREAM_START, protocol.UPDATE)), None
        )
        if answered is not None:
            self._in_flight.remove(answered)
            self._done(answered, error=error)

    def _on_broadcast_ready(self, message: dict[str, Any]) -> None:
        webrtc_url, token, hls = message.get("webrtc_url"), message.get("spectator_token"), message.get("broadcast_url")
        if isinstance(webrtc_url, str) and webrtc_url and isinstance(token, str) and token:
            self.broadcast = BroadcastInfo(hls if isinstance(hls, str) else None, webrtc_url, token, self.stream_id)
            self._events.append(BroadcastReady(self.broadcast))
        else:
            self._events.append(BroadcastReady(None))

    def _reply(self, reply_type: str, result: Any) -> None:
        """Resolve the oldest in-flight request this reply answers (none: unsolicited or late)."""
        request = next((r for r in self._in_flight if r.reply_type == reply_type), None)
        if request is not None:
            self._in_flight.remove(request)
            self._done(request, result=result)

    def _fail_in_flight_updates(self, error: BaseException) -> None:
        for request in [r for r in self._in_flight if r.kind == protocol.UPDATE]:
            self._in_flight.remove(request)
            self._done(request, error=error)


def _matches(ack: str, prompt: str | None) -> bool:
    """Whether an acknowledged (possibly expanded) prompt is the answer to ``prompt``."""
    return bool(prompt) and prompt is not None and prompt.strip().lower() in ack.lower()
