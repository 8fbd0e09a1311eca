"""Everything a server keeps: its data directory, the database, signed links, recordings and the job worker.

Layout of the data directory::

    odyssey-local.sqlite3          recordings and jobs (:mod:`.store`)
    url-signing.key                the presigned-URL secret (:mod:`.presign`)
    recordings/<stream_id>/        video.mp4, events.jsonl, thumbnail.jpg, preview.mp4

With no ``data_dir`` configured the directory is temporary and removed when
the server stops; with one, recordings, jobs and links survive a restart.
:meth:`Archive.open` blocks (call it off the loop); the rest runs on the loop
and sends database work to one worker thread (:meth:`Archive.db`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from .config import ServerConfig
from .jobs import JobWorker
from .presign import UrlSigner
from .private import private_dir
from .recorder import LiveRecording
from .store import DB_NAME, Store, utc_now

__all__ = ["Archive", "FILES_PREFIX", "STREAM_ID_PATTERN"]

logger = logging.getLogger("odyssey_sync.local.archive")

FILES_PREFIX = "/files"
STREAM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""Stream ids this server makes (UUIDs) and the only ones it serves files for."""

_RECORDINGS = "recordings"
_FINALISE_TIMEOUT_S = 4.0

T = TypeVar("T")


class Archive:
    """The server's persistent side; create with :meth:`open`, then :meth:`start` on the loop."""

    def __init__(
        self, config: ServerConfig, directory: Path, store: Store, temp: tempfile.TemporaryDirectory[str] | None
    ) -> None:
        """Use an opened ``store`` in ``directory`` (``temp``, if given, is removed at :meth:`close`)."""
        self._config = config
        self._directory = directory
        self._store = store
        self._temp = temp
        self._signer = UrlSigner.in_directory(directory, ttl_s=config.url_ttl_s)
        self._db_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="local-odyssey-db")
        self._live: set[LiveRecording] = set()
        self._live_changed = threading.Condition()
        self._closing = False
        self.jobs = JobWorker(config=config, store=store, db=self.db, recording_dir=self.recording_dir)
        """The simulation worker."""

    @classmethod
    def open(cls, config: ServerConfig) -> Archive:
        """Open (or create) the data directory and its database; blocking.

        Recordings a crash left unfinished are marked incomplete and their
        partial files removed; jobs it left dispatched or processing go back
        to pending.
        """
        temp = None
        if config.data_dir is None:
            temp = tempfile.TemporaryDirectory(prefix="odyssey-local-")
            directory = Path(temp.name)
        else:
            directory = Path(config.data_dir).expanduser().resolve()
            if not directory.exists():
                private_dir(directory)
            elif directory.stat().st_mode & 0o077:
                # Not tightened: it may be shared (a home directory, /srv); what the server puts in it is private.
                logger.warning("data directory %s is readable by other users; its contents are not", directory)
        private_dir(directory / _RECORDINGS)
        for recording in (directory / _RECORDINGS).iterdir():
            if recording.is_dir():
                private_dir(recording)  # recordings from versions that made them world-readable
        store = Store(directory / DB_NAME)
        for stream_id in store.interrupt_recordings(utc_now()):
            for part in (directory / _RECORDINGS / stream_id).glob(".*.part"):
                part.unlink(missing_ok=True)
        for stream_id in store.drop_unfinished_job_recordings():
            shutil.rmtree(directory / _RECORDINGS / stream_id, ignore_errors=True)
        requeued = store.requeue_interrupted_jobs()
        if requeued:
            logger.info("%d interrupted simulation jobs are pending again", len(requeued))
        return cls(config, directory, store, temp)

    @property
    def directory(self) -> Path:
        """The data directory."""
        return self._directory

    @property
    def store(self) -> Store:
        """The database (call it through :meth:`db` from the loop)."""
        return self._store

    @property
    def signer(self) -> UrlSigner:
        """The presigned-URL signer."""
        return self._signer

    def start(self) -> None:
        """Start the job worker (on the loop)."""
        self.jobs.start()

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (normally a :class:`Store` method) on the database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, functools.partial(fn, *args, **kwargs))

    def recording_dir(self, stream_id: str) -> Path:
        """Where a stream's files live."""
        if not STREAM_ID_PATTERN.match(stream_id):
            raise ValueError(f"not a stream id: {stream_id!r}")
        return self._directory / _RECORDINGS / stream_id

    def file_url(self, base: str, stream_id: str, file_name: str) -> str:
        """The presigned absolute URL of one of a stream's files; ``base`` is ``scheme://host``."""
        return base + self._signer.sign(f"{FILES_PREFIX}/{stream_id}/{file_name}")

    # -- live recordings (loop thread) -----------------------------------------------------

    def record_stream(
        self,
        track: Any,
        *,
        stream_id: str,
        key_name: str,
        width: int,
        height: int,
        start_frame: int,
        prompt: str,
        applied_prompt: str,
        portrait: bool,
        has_image: bool,
    ) -> LiveRecording | None:
        """Start recording a stream that shows from ``track``'s frame ``start_frame`` on.

        ``None`` when recording is off, the server is stopping, or recording
        could not start (logged; the stream runs unrecorded).
        """
        if not self._config.recording or self._closing:
            return None
        recording = None
        try:
            recording = LiveRecording(
                stream_id=stream_id,
                key_name=key_name,
                width=width,
                height=height,
                fps=self._config.fps,
                start_frame=start_frame,
                directory=self.recording_dir(stream_id),
                store=self._store,
                start_event={
                    "prompt": prompt,
                    "applied_prompt": applied_prompt,
                    "portrait": portrait,
                    "has_image": has_image,
                },
                on_done=self._recording_done,
            )
            with self._live_changed:
                self._live.add(recording)
            recording.attach(track)
        except Exception:
            logger.exception("stream %s: recording could not start; the stream runs unrecorded", stream_id)
            if recording is not None:
                recording.finish("recording_failed")
            return None
        return recording

    def _recording_done(self, recording: LiveRecording) -> None:
        with self._live_changed:
            self._live.discard(recording)
            self._live_changed.notify_all()

    async def wait_finalised(self, stream_id: str, timeout: float) -> bool:
        """Wait (bounded) while an ended stream's files are still being written; False if it is not ending."""
        def ending() -> bool:
            return any(r.stream_id == stream_id and r.finished for r in self._live)

        def wait() -> bool:
            with self._live_changed:
                return self._live_changed.wait_for(lambda: not ending(), timeout)

        with self._live_changed:
            if not ending():
                return False
        return await asyncio.get_running_loop().run_in_executor(None, wait)

    def wait_recordings(self, timeout: float) -> bool:
        """Block until no live recording is being written (any thread but the loop's)."""
        with self._live_changed:
            return self._live_changed.wait_for(lambda: not self._live, timeout)

    # -- shutdown --------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the worker, finish live recordings (bounded), close the database, drop a temporary directory."""
        self._closing = True
        try:
            await self.jobs.stop()
        except Exception:
            logger.warning("stopping the simulation worker failed", exc_info=True)
        with self._live_changed:
            live = list(self._live)
        for recording in live:
            recording.finish("server_stopped")
        began = time.monotonic()
        if not await self.db(self.wait_recordings, _FINALISE_TIMEOUT_S):
            logger.warning("recordings still being written after %.1f s", time.monotonic() - began)
        with contextlib.suppress(Exception):
            await self.db(self._store.close)
        self._db_thread.shutdown(wait=False)
        if self._temp is not None:
            temp, self._temp = self._temp, None
            await asyncio.get_running_loop().run_in_executor(None, functools.partial(_remove, temp))


def _remove(temp: tempfile.TemporaryDirectory[str]) -> None:
    try:
        temp.cleanup()
    except OSError:
        logger.warning("could not remove the temporary data directory %s", temp.name, exc_info=True)
