"""Sessions held by the local server, their admission rules and their history.

A session is *held* from ``/sessions/request`` until its signaling socket
closes (or, if no socket ever opens, until the unclaimed timeout). Held
sessions count against ``capacity`` and ``max_concurrent_per_key``. Every
change notifies one :class:`threading.Condition`, so tests wait for a state
(:meth:`SessionRegistry.wait_until`) instead of sleeping.

The registry is mutated on the server's loop thread and read from any thread;
readers get frozen snapshots (:class:`SessionRecord`).
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Callable

import attrs

from .config import ApiKey, ServerConfig

__all__ = ["Admission", "PromptRecord", "SessionRecord", "SessionRegistry", "StreamRecord"]

# Released sessions kept for snapshots; the oldest are forgotten beyond this.
_HISTORY = 1000
# Telemetry events kept, and the longest name or session id kept of each.
_TELEMETRY_KEPT = 100
_TELEMETRY_TEXT_CHARS = 128


def _short_text(value: Any) -> str:
    """A string cut to :data:`_TELEMETRY_TEXT_CHARS` characters (a copy); the type's name for anything else."""
    if isinstance(value, str):
        return value[:_TELEMETRY_TEXT_CHARS]
    return "None" if value is None else type(value).__name__


@attrs.frozen
class PromptRecord:
    """One prompt a stream showed: ``frame_number`` is the first world frame rendered with it."""

    prompt: str
    applied_prompt: str
    frame_number: int
    applied_at: float


@attrs.frozen
class StreamRecord:
    """One stream of a session; ``prompts`` holds the start's prompt, then each update, in order."""

    stream_id: str
    prompt: str
    portrait: bool
    has_image: bool
    prompts: tuple[PromptRecord, ...]
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None

    @property
    def applied_prompts(self) -> tuple[str, ...]:
        """The applied (expanded) prompts in order."""
        return tuple(p.applied_prompt for p in self.prompts)

    @property
    def active(self) -> bool:
        """Whether the stream is still running."""
        return self.ended_at is None


@attrs.frozen
class SessionRecord:
    """A read-only snapshot of one session.

    ``held`` is true until the session is released; ``connected`` while its
    signaling socket is open. Times are ``time.time()`` seconds.
    ``frames_sent`` counts video frames rendered for the peer so far.
    """

    session_id: str
    key_name: str
    held: bool
    connected: bool
    created_at: float
    connected_at: float | None
    released_at: float | None
    streams: tuple[StreamRecord, ...]
    frames_sent: int

    @property
    def active_stream(self) -> StreamRecord | None:
        """The running stream, if any."""
        return self.streams[-1] if self.streams and self.streams[-1].active else None


@attrs.define(eq=False)
class Session:
    """The mutable server-side state of a session (loop thread only; read under the registry lock)."""

    session_id: str
    key: ApiKey
    created_at: float
    held: bool = True
    connected: bool = False
    connected_at: float | None = None
    released_at: float | None = None
    streams: list[StreamRecord] = attrs.Factory(list)
    frames_sent: int = 0

    def snapshot(self) -> SessionRecord:
        """The frozen view of this session."""
        return SessionRecord(
            session_id=self.session_id,
            key_name=self.key.name,
            held=self.held,
            connected=self.connected,
            created_at=self.created_at,
            connected_at=self.connected_at,
            released_at=self.released_at,
            streams=tuple(self.streams),
            frames_sent=self.frames_sent,
        )


@attrs.frozen
class Admission:
    """The outcome of a session request: a session, or why there is none.

    ``refusal`` is ``"capacity"`` (answer 503) or ``"concurrency"`` (answer 429
    with ``active_count`` and ``limit``).
    """

    session: Session | None
    refusal: str | None = None
    active_count: int = 0
    limit: int = 0


class SessionRegistry:
    """All sessions of one server, with admission control and change notification."""

    def __init__(self, config: ServerConfig) -> None:
        """Enforce ``config.capacity`` and ``config.max_concurrent_per_key``."""
        self._config = config
        self._cond = threading.Condition(threading.RLock())
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self.telemetry: collections.deque[tuple[str, str | None]] = collections.deque(maxlen=_TELEMETRY_KEPT)
        """``(event, session_id)`` of the last telemetry events received, each cut to a short string."""

    # -- reading (any thread) --------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        """The held session with this id, or ``None`` (unknown or released)."""
        with self._cond:
            session = self._sessions.get(session_id)
            return session if session is not None and session.held else None

    def snapshots(self) -> list[SessionRecord]:
        """Snapshots of every session known, held or released, oldest first."""
        with self._cond:
            return [s.snapshot() for s in self._sessions.values()]

    def snapshot(self, session_id: str) -> SessionRecord | None:
        """The snapshot of one session, or ``None``."""
        with self._cond:
            session = self._sessions.get(session_id)
            return None if session is None else session.snapshot()

    def held_count(self, key_name: str | None = None) -> int:
        """Sessions held now, for one key name or in total."""
        with self._cond:
            return sum(1 for s in self._sessions.values() if s.held and (key_name is None or s.key.name == key_name))

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` is true (re-checked on every change) or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def note_telemetry(self, events: list[Any]) -> None:
        """Keep the names and session ids of received telemetry events (the last 100) for tests.

        Only short copies are kept (a name or id longer than 128 characters is
        cut), so what the server retains does not grow with what it is sent.
        """
        with self._cond:
            for event in events[-_TELEMETRY_KEPT:]:
                if isinstance(event, dict):
                    name = event.get("event") or event.get("error_type")
                    session_id = event.get("session_id")
                    self.telemetry.append(
                        (_short_text(name), _short_text(session_id) if isinstance(session_id, str) else None)
                    )
            self._cond.notify_all()

    def notify(self) -> None:
        """Wake the waiters (after a change made outside the registry's methods)."""
        with self._cond:
            self._cond.notify_all()

    # -- changing (loop thread) ------------------------------------------------------------

    def admit(self, key: ApiKey) -> Admission:
        """Hold a new session for ``key``, unless the key or the server is full."""
        with self._cond:
            held = [s for s in self._sessions.values() if s.held]
            mine = sum(1 for s in held if s.key.name == key.name)
            limit = self._config.max_concurrent_per_key
            if mine >= limit:
                return Admission(None, "concurrency", active_count=mine, limit=limit)
            if self._config.capacity is not None and len(held) >= self._config.capacity:
                return Admission(None, "capacity")
            session = Session(session_id=str(uuid.uuid4()), key=key, created_at=time.time())
            self._sessions[session.session_id] = session
            while len(self._sessions) > _HISTORY:
                oldest = next(iter(self._sessions.values()))
                if oldest.held:
                    break
                self._sessions.popitem(last=False)
            self._cond.notify_all()
            return Admission(session)

    def set_connected(self, session: Session, connected: bool) -> None:
        """Mark the signaling socket open or closed."""
        with self._cond:
            session.connected = connected
            if connected:
                session.connected_at = time.time()
            self._cond.notify_all()

    def release(self, session: Session) -> bool:
        """Stop holding ``session``; False if it was already released."""
        with self._cond:
            if not session.held:
                return False
            session.held = False
            session.connected = False
            session.released_at = time.time()
            self._end_active_stream(session, "disconnected")
            self._cond.notify_all()
            return True

    def release_if_unclaimed(self, session_id: str) -> bool:
        """Release a session whose signaling socket never opened."""
        with self._cond:
            session = self._sessions.get(session_id)
            if session is None or not session.held or session.connected_at is not None:
                return False
            return self.release(session)

    def start_stream(self, session: Session, stream: StreamRecord) -> None:
        """Record a stream that just started."""
        with self._cond:
            session.streams.append(stream)
            self._cond.notify_all()

    def add_prompt(self, session: Session, prompt: PromptRecord) -> None:
        """Record an update applied to the running stream."""
        with self._cond:
            if session.streams and session.streams[-1].active:
                stream = session.streams[-1]
                session.streams[-1] = attrs.evolve(stream, prompts=stream.prompts + (prompt,))
            self._cond.notify_all()

    def end_stream(self, session: Session, reason: str) -> bool:
        """Record the end of the running stream; False if none was running."""
        with self._cond:
            ended = self._end_active_stream(session, reason)
            self._cond.notify_all()
            return ended

    def _end_active_stream(self, session: Session, reason: str) -> bool:
        if not session.streams or not session.streams[-1].active:
            return False
        session.streams[-1] = attrs.evolve(session.streams[-1], ended_at=time.time(), end_reason=reason)
        return True
