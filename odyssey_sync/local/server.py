"""``LocalOdyssey``: the local server running on a loop thread of its own.

It is an in-process server the way SQLite is an in-process database::

    with LocalOdyssey() as server:
        client = Odyssey(api_key=server.api_key, api_url=server.url)

Start, stop and every observation are blocking calls from the owner's
thread; the HTTP server, the signaling sockets and the aiortc peers live on
the loop thread. ``stop()`` closes every peer before the loop ends (or
aiortc's threads could outlive it) and is bounded in time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs
from aiohttp import web

from .. import protocol
from ..errors import OdysseyTimeoutError
from ..loop_thread import LoopThread
from .aiortc_internals import forget_this_thread, gather_loopback_on_this_thread, set_codec_bitrates
from .app import AccessLogger, AppState, build_app
from .archive import Archive
from .auth import Authority
from .config import ApiKey, ServerConfig, random_api_key
from .faults import Action, Faults
from .sessions import SessionRecord, SessionRegistry
from .track import idle_world

__all__ = ["LocalOdyssey"]

logger = logging.getLogger("odyssey_sync.local.server")

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 10.0
_FAULT_TIMEOUT_S = 10.0
_RENDER_WORKERS = 8  # per-frame encodes of every session, plus scene builds
_INPUT_WORKERS = 2  # untrusted input: large JSON bodies and start images, kept off the encoders' threads


def _normalise_keys(api_keys: Sequence[ApiKey] | Sequence[str] | None) -> list[ApiKey]:
    if api_keys is None:
        return [ApiKey(random_api_key(), name="default")]
    if isinstance(api_keys, (str, ApiKey)):
        api_keys = [api_keys]
    keys = [key if isinstance(key, ApiKey) else ApiKey(key) for key in api_keys]
    if not keys:
        raise ValueError("api_keys must hold at least one key (or be None for a random one)")
    if len({key.key for key in keys}) != len(keys) or len({key.name for key in keys}) != len(keys):
        raise ValueError("api_keys must have distinct keys and distinct names")
    return keys


class LocalOdyssey:
    """A local, Odyssey-compatible server: REST, signaling, WebRTC video, limits and fault knobs.

    ``config`` (default :class:`ServerConfig`) may be adjusted with keyword
    overrides, e.g. ``LocalOdyssey(max_stream_seconds=1.5, capacity=1)``.
    ``api_keys`` lists the accepted keys (strings or :class:`ApiKey`); by
    default one random ``ody_local_...`` key named ``"default"``.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        api_keys: Sequence[ApiKey] | Sequence[str] | None = None,
        **config_overrides: Any,
    ) -> None:
        """Configure; nothing listens until :meth:`start` (or ``with``)."""
        config = config or ServerConfig()
        self._config = attrs.evolve(config, **config_overrides) if config_overrides else config
        self._keys = _normalise_keys(api_keys)
        self._faults = Faults()
        self._registry = SessionRegistry(self._config)
        self._loop = LoopThread("local-odyssey")
        self._lock = threading.Lock()
        self._state: AppState | None = None
        self._runner: web.AppRunner | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inputs: concurrent.futures.ThreadPoolExecutor | None = None
        self._url: str | None = None
        self._archive: Archive | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The configuration in force."""
        return self._config

    @property
    def api_keys(self) -> list[ApiKey]:
        """Every accepted key."""
        return list(self._keys)

    @property
    def api_key(self) -> str:
        """The default (first) API key."""
        return self._keys[0].key

    @property
    def faults(self) -> Faults:
        """The fault knobs (see :class:`Faults`)."""
        return self._faults

    @property
    def url(self) -> str:
        """``http://<host>:<port>`` of the running server."""
        if self._url is None:
            raise RuntimeError("LocalOdyssey is not running; call start() or use it as a context manager")
        return self._url

    @property
    def data_dir(self) -> Path:
        """The directory holding recordings and simulation jobs (temporary unless ``data_dir`` was configured)."""
        if self._archive is None:
            raise RuntimeError("LocalOdyssey is not running; call start() or use it as a context manager")
        return self._archive.directory

    @property
    def is_running(self) -> bool:
        """Whether the server is listening."""
        return self._url is not None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalOdyssey:
        """Start listening (idempotent); returns ``self``."""
        with self._lock:
            if self._url is not None:
                return self
            self._loop.start()
            try:
                self._loop.run(self._start(), _START_TIMEOUT_S, what="starting the local server")
            except BaseException:
                self._shutdown_threads()
                raise
            self._faults.attach(self._act_on_sessions)
            logger.info("local Odyssey server listening on %s", self._url)
            return self

    def stop(self) -> None:
        """Close every session (peers first), stop listening and end the loop thread. Bounded."""
        with self._lock:
            if not self._loop.is_running:
                return
            self._faults.attach(None)
            try:
                self._loop.run(self._stop(), _STOP_TIMEOUT_S, what="stopping the local server")
            except (OdysseyTimeoutError, Exception):
                logger.warning("the local server did not stop cleanly", exc_info=True)
            self._shutdown_threads()

    def kill(self) -> None:
        """Stop abruptly, as a crashed process would: sockets cut, no close frames, no goodbyes."""
        with self._lock:
            if not self._loop.is_running:
                return
            self._faults.attach(None)
            try:
                self._loop.run(self._kill(), _STOP_TIMEOUT_S, what="killing the local server")
            except (OdysseyTimeoutError, Exception):
                logger.warning("the local server did not die cleanly", exc_info=True)
            self._shutdown_threads()

    def __enter__(self) -> LocalOdyssey:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._url or "not running"
        return f"<LocalOdyssey {where} keys={[key.name for key in self._keys]}>"

    # -- observation -----------------------------------------------------------------------

    def sessions(self) -> list[SessionRecord]:
        """Snapshots of every session so far (held and released), oldest first."""
        return self._registry.snapshots()

    def session(self, session_id: str) -> SessionRecord | None:
        """The snapshot of one session, or ``None``."""
        return self._registry.snapshot(session_id)

    def session_count(self, key: ApiKey | str | None = None) -> int:
        """Sessions held now, in total or for one key (an :class:`ApiKey`, its value or its name)."""
        if key is None:
            return self._registry.held_count()
        return self._registry.held_count(self._key_name(key))

    def telemetry_events(self) -> list[tuple[str, str | None]]:
        """``(event, session_id)`` of the telemetry events received lately (the last 100)."""
        return list(self._registry.telemetry)

    def spectator_count(self, stream_id: str | None = None) -> int:
        """WHEP spectators watching now: of one broadcast stream, or of every broadcast."""
        state = self._state
        return state.broadcasts.viewer_count(stream_id) if state is not None else 0

    def wait_for_spectators(self, count: int, *, stream_id: str | None = None, timeout: float = 10.0) -> bool:
        """Block until exactly ``count`` spectators watch (one stream, or all); whether that happened in time."""
        state = self._state
        if state is None:
            return count == 0
        if self._loop.in_loop_thread():
            raise RuntimeError("wait_for_spectators() would block the server's own loop")
        return state.broadcasts.wait_until(lambda: state.broadcasts.viewer_count(stream_id) == count, timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` holds or ``timeout`` seconds pass; re-checked on every session change.

        ``predicate`` runs with the registry lock held, so it may call
        :meth:`sessions` and :meth:`session_count` but must not block.
        """
        if self._loop.in_loop_thread():
            raise RuntimeError("wait_until() would block the server's own loop")
        return self._registry.wait_until(predicate, timeout)

    def mint_session_token(self, session_id: str, *, lifetime_s: int = protocol.SESSION_TOKEN_LIFETIME_S) -> str:
        """A session JWT signed by this server, as ``/sessions/token`` mints it.

        For trusted backends handing credentials to clients, and for tests
        (a negative ``lifetime_s`` gives an already expired token).
        """
        if self._state is None:
            raise RuntimeError("LocalOdyssey is not running")
        return self._state.authority.mint_session_token(session_id, lifetime_s=lifetime_s)

    def _key_name(self, key: ApiKey | str) -> str:
        if isinstance(key, ApiKey):
            return key.name
        for known in self._keys:
            if key in (known.key, known.name):
                return known.name
        return key

    # -- on the loop -----------------------------------------------------------------------

    async def _start(self) -> None:
        set_codec_bitrates(self._config.video_bitrate)
        gather_loopback_on_this_thread()
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(_RENDER_WORKERS, thread_name_prefix="local-odyssey-render")
        self._inputs = concurrent.futures.ThreadPoolExecutor(_INPUT_WORKERS, thread_name_prefix="local-odyssey-input")
        idle = idle_world(self._config.fps)
        # The idle scene takes ~0.3 s to build once per process; sockets wait for it, REST does not.
        idle_ready = asyncio.ensure_future(loop.run_in_executor(self._executor, idle.render_planes, 0))
        self._archive = await loop.run_in_executor(self._executor, Archive.open, self._config)
        self._state = AppState(
            config=self._config,
            authority=Authority(self._keys, access_token_lifetime_s=self._config.access_token_lifetime_s),
            registry=self._registry,
            faults=self._faults,
            idle=idle,
            idle_ready=idle_ready,
            executor=self._executor,
            inputs=self._inputs,
            archive=self._archive,
        )
        runner = web.AppRunner(
            build_app(self._state),
            handle_signals=False,
            access_log_class=AccessLogger,
            access_log=logging.getLogger("odyssey_sync.local.access"),
            shutdown_timeout=1.0,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self._config.host, self._config.port)
        await site.start()
        self._archive.start()
        host, port = runner.addresses[0][:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def _stop(self) -> None:
        state = self._state
        if state is not None:
            state.closing = True
            for streamer in list(state.streamers):
                streamer.begin_close()
            await self._wait_streamers_gone(state)
        await self._cleanup_runner()

    async def _kill(self) -> None:
        state = self._state
        if state is not None:
            state.closing = True
            for streamer in list(state.streamers):
                streamer.abort()
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()
        if state is not None:
            await self._wait_streamers_gone(state)
        await self._cleanup_runner()

    async def _wait_streamers_gone(self, state: AppState) -> None:
        """Wait (bounded) until every streamer has closed its peer and released its session."""
        pending = [streamer.closed for streamer in state.streamers]
        if pending:
            _, late = await asyncio.wait(pending, timeout=_STOP_TIMEOUT_S / 2)
            if late:
                logger.warning("%d sessions did not close in time", len(late))

    async def _cleanup_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        archive, self._archive = self._archive, None
        if archive is not None:
            await archive.close()
        forget_this_thread()

    def _shutdown_threads(self) -> None:
        self._loop.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._inputs is not None:
            self._inputs.shutdown(wait=True, cancel_futures=True)
            self._inputs = None
        self._url = None
        self._state = None

    def _act_on_sessions(self, action: Action) -> int:
        """Run a fault ``action`` on every live streamer, on the loop; how many it reached."""

        async def act() -> int:
            state = self._state
            targets = list(state.streamers) if state is not None else []
            results = await asyncio.gather(*(action(t) for t in targets), return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    logger.warning("fault action failed: %r", result)
            return len(targets)

        return self._loop.run(act(), _FAULT_TIMEOUT_S, what="a fault action")
