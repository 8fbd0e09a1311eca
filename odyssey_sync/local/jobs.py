"""The simulation job queue: submission records and the background worker.

Jobs are rows in the :class:`~.store.Store`; the worker (``simulation_workers``
tasks on the server's loop) takes the oldest pending job and moves it
``pending -> dispatched -> processing -> completed | failed``, every step a
compare-and-set, so a job cancelled while pending or dispatched never runs.
While dispatched, a ``script_url`` is fetched (:mod:`.script_fetch`: public
addresses only unless ``allow_private_script_urls``, 10 s, at most
``max_body_bytes``) and validated like an inline script: a problem fails the
job with an ``error_message`` instead of refusing the submission, as the
URL is only read when the job runs. Processing renders each script in a
thread of its own (:func:`~.offline.render_script`) into a recording owned
by the job's key, with its ``script_index``.

When the server stops, a render in progress is interrupted and its job goes
back to pending; jobs a crash left dispatched or processing are put back by
:meth:`~.store.Store.requeue_interrupted_jobs` on the next start. Either way
the job runs again from its first script.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..scripts import JobRequest, ScriptError, validate_job_request
from .bodies import BodyError, loads_checked
from .config import ApiKey, ServerConfig
from .offline import RenderInterrupted, render_script
from .script_fetch import FETCH_TIMEOUT_S, ScriptFetchError, fetch_script_document
from .store import JobRow, RecordingRow, RecordingStatus, Store, utc_now

__all__ = ["FETCH_TIMEOUT_S", "JobWorker", "REGION", "new_job", "parse_fetched_scripts"]

logger = logging.getLogger("odyssey_sync.local.jobs")

REGION = "local"
_IDLE_POLL_S = 5.0
_STOP_TIMEOUT_S = 3.0
_PORTRAIT = (704, 1280)
_LANDSCAPE = (1280, 704)

_Db = Callable[..., Awaitable[Any]]


class _JobFailed(Exception):
    """The job cannot run; the message becomes its ``error_message``."""


def new_job(key: ApiKey, request: JobRequest) -> JobRow:
    """A pending job row for a validated request."""
    return JobRow(
        job_id=str(uuid.uuid4()),
        key_name=key.name,
        status="pending",
        priority="normal",
        created_at=utc_now(),
        request={
            "scripts": request.scripts,
            "script_url": request.script_url,
            "portrait": request.portrait,
            "bypass_vlm_expansion": bool(request.bypass_vlm_expansion),
        },
    )


def parse_fetched_scripts(data: Any) -> list[list[dict[str, Any]]]:
    """The scripts in a fetched ``script_url`` document, validated.

    Accepted: a script (a list of entries), a list of scripts, or an object
    with ``script`` or ``scripts`` as in a job request.

    Raises:
        ScriptError: what is wrong with the document.
    """
    if isinstance(data, dict):
        body = {name: data[name] for name in ("script", "scripts") if name in data}
        if not body:
            raise ScriptError(
                "the document at script_url must be a script (a JSON list of entries) or {'script': [...]}"
            )
    elif isinstance(data, list) and data and all(isinstance(item, list) for item in data):
        body = {"scripts": data}
    else:
        body = {"script": data}
    return validate_job_request(body).scripts


class JobWorker:
    """Runs pending jobs, one per worker task, oldest first."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        store: Store,
        db: _Db,
        recording_dir: Callable[[str], Path],
    ) -> None:
        """Work on ``store``'s jobs, calling the store through ``db`` and writing into ``recording_dir(id)``."""
        self._config = config
        self._store = store
        self._db = db
        self._recording_dir = recording_dir
        self._wake = asyncio.Event()
        self._halt = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._renderer = concurrent.futures.ThreadPoolExecutor(
            max(1, config.simulation_workers), thread_name_prefix="local-odyssey-simulate"
        )

    def start(self) -> None:
        """Start the worker tasks on the running loop (none with ``simulation_workers=0``)."""
        for index in range(self._config.simulation_workers):
            task = asyncio.ensure_future(self._work())
            task.set_name(f"local-odyssey-jobs-{index}")
            self._tasks.append(task)

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Interrupt renders (their jobs go back to pending) and end the tasks; bounded."""
        self._halt.set()
        self._wake.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=_STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
        self._renderer.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        while not self._halt.is_set():
            try:
                self._wake.clear()
                job = await self._db(self._store.next_pending_job)
                if job is None:
                    try:
                        await asyncio.wait_for(self._wake.wait(), _IDLE_POLL_S)
                    except asyncio.TimeoutError:
                        pass
                    continue
                try:
                    await self._run(job)
                except Exception:
                    await self._fail(job.job_id, ("dispatched", "processing"), "internal error of the local server")
                    raise
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the simulation worker hit an error; it carries on")
                await asyncio.sleep(0.5)

    async def _run(self, job: JobRow) -> None:
        job_id = job.job_id
        dispatched = await self._transition(
            job_id, ("pending",), "dispatched", dispatched_at=utc_now(), assigned_region=REGION
        )
        if dispatched is None:
            return
        try:
            scripts = await self._scripts(dispatched)
        except _JobFailed as exc:
            await self._fail(job_id, ("dispatched",), str(exc))
            return
        processing = await self._transition(job_id, ("dispatched",), "processing", started_at=utc_now())
        if processing is None:
            logger.info("job %s was cancelled before it ran", job_id)
            return
        await self._forget_streams(job_id)
        try:
            for index, script in enumerate(scripts):
                await self._render(processing, index, script)
        except RenderInterrupted:
            await self._forget_streams(job_id)
            await self._transition(
                job_id,
                ("processing",),
                "pending",
                dispatched_at=None,
                started_at=None,
                assigned_region=None,
                retry_count=job.retry_count + 1,
            )
            logger.info("job %s interrupted by the server stopping; it will run again", job_id)
            return
        except _JobFailed as exc:
            await self._fail(job_id, ("processing",), str(exc))
            return
        await self._transition(job_id, ("processing",), "completed", completed_at=utc_now())
        logger.info("job %s completed (%d streams)", job_id, len(scripts))

    async def _scripts(self, job: JobRow) -> list[list[dict[str, Any]]]:
        url = job.request.get("script_url")
        if not url:
            scripts: list[list[dict[str, Any]]] = job.request["scripts"]
            return scripts
        try:
            return parse_fetched_scripts(await self._fetch(url))
        except ScriptError as exc:
            raise _JobFailed(f"script_url: {exc}") from None

    async def _fetch(self, url: str) -> Any:
        """The JSON document at ``url``, fetched safely and parsed off the loop; :class:`_JobFailed` otherwise."""
        try:
            body = await fetch_script_document(
                url, limit=self._config.max_body_bytes, allow_private=self._config.allow_private_script_urls
            )
        except ScriptFetchError as exc:
            raise _JobFailed(str(exc)) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._renderer, loads_checked, body, "The document at script_url"
            )
        except BodyError as exc:
            if exc.status == 413:
                raise _JobFailed(exc.detail) from None
            raise _JobFailed("the document at script_url is not JSON; it must be a script as JSON") from None

    async def _render(self, job: JobRow, index: int, script: list[dict[str, Any]]) -> None:
        width, height = _PORTRAIT if job.request.get("portrait", True) else _LANDSCAPE
        stream_id = str(uuid.uuid4())
        fps = self._config.fps
        row = RecordingRow(
            stream_id=stream_id,
            key_name=job.key_name,
            width=width,
            height=height,
            fps=fps,
            started_at=utc_now(),
            job_id=job.job_id,
            script_index=index,
        )
        await self._db(self._store.add_recording, row)
        render = functools.partial(
            render_script,
            script,
            directory=self._recording_dir(stream_id),
            width=width,
            height=height,
            fps=fps,
            bitrate=self._config.video_bitrate,
            bypass=bool(job.request.get("bypass_vlm_expansion")),
            stop=self._halt,
            speed=self._config.simulation_speed,
        )
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._renderer, render)
        except RenderInterrupted:
            raise
        except Exception as exc:
            logger.warning("job %s script %d failed", job.job_id, index, exc_info=True)
            problem = f"script {index}: {exc}" if isinstance(exc, ValueError) else f"script {index}: rendering failed"
            await self._db(
                self._store.finish_recording,
                stream_id,
                status=RecordingStatus.INCOMPLETE,
                ended_at=utc_now(),
                duration_seconds=None,
                frame_count=0,
                artifacts=[],
                end_reason="failed",
                error=problem,
            )
            raise _JobFailed(problem) from None
        await self._db(
            self._store.finish_recording,
            stream_id,
            status=RecordingStatus.COMPLETE,
            ended_at=utc_now(),
            duration_seconds=result.duration_seconds,
            frame_count=result.frame_count,
            artifacts=result.artifacts,
            end_reason="ended",
        )
        logger.info("job %s script %d rendered at %.1fx real time", job.job_id, index, result.speed)

    async def _transition(
        self, job_id: str, from_statuses: tuple[str, ...], to_status: str, **fields: Any
    ) -> JobRow | None:
        row: JobRow | None = await self._db(self._store.transition_job, job_id, from_statuses, to_status, **fields)
        return row

    async def _fail(self, job_id: str, from_statuses: tuple[str, ...], message: str) -> None:
        await self._transition(job_id, from_statuses, "failed", completed_at=utc_now(), error_message=message)
        logger.info("job %s failed: %s", job_id, message)

    async def _forget_streams(self, job_id: str) -> None:
        """Remove what an earlier, interrupted run of the job left behind."""
        for stream_id in await self._db(self._store.delete_job_recordings, job_id):
            await self._db(shutil.rmtree, self._recording_dir(stream_id), True)
