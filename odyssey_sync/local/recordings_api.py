"""REST routes for recordings, simulation jobs and the presigned files, as the hosted API answers them.

Every route but ``/files`` needs a Bearer token and shows a key only its
own streams and jobs: another key's recording is 404, another key's job 403
(as the hosted API answers). Scripts are validated by
:func:`odyssey_sync.scripts.validate_job_request`, the very function the SDK
runs before sending, and a :class:`~odyssey_sync.scripts.ScriptError` is the
400 ``detail``. ``/files/<stream_id>/<file>`` needs no token but a valid,
unexpired signature (403 otherwise).
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from aiohttp import web

from ..images import TooManyPixelsError, check_image
from ..scripts import JobRequest, ScriptError, validate_job_request
from .app import STATE, HttpError, _caller, _http_base, _json_body
from .archive import FILES_PREFIX, STREAM_ID_PATTERN, Archive
from .config import ApiKey
from .jobs import new_job
from .media import ARTIFACT_FILES, CONTENT_TYPES
from .presign import SignatureError
from .script_fetch import url_address_problem
from .store import ACTIVE_JOB_STATUSES, JOB_STATUSES, JobRow, RecordingRow, Store
from .usage import usage_error_body

__all__ = ["add_recording_routes"]

RECORDINGS_PAGE = (50, 100)
"""Default and largest ``limit`` of ``GET /stream-recordings``."""
JOBS_PAGE = (20, 100)
"""Default and largest ``limit`` of ``GET /simulation-jobs``."""
_MINUTES_PER_QUEUED_JOB = 0.1
_FINISHED_JOB_STATUSES = tuple(s for s in JOB_STATUSES if s not in ACTIVE_JOB_STATUSES)
_CANCELLABLE = ("pending", "dispatched")


# sqlite integers are 64-bit; a page parameter beyond that range cannot be a row number.
_SQL_INT_LIMIT = 2**63

# A stream that just ended is still being written for a moment; its recording request waits that long.
_FINALISE_WAIT_S = 10.0


def add_recording_routes(app: web.Application) -> None:
    """Register the recording, simulation and file routes on ``app``."""
    app.router.add_get("/recordings/{stream_id}", get_recording)
    app.router.add_get("/stream-recordings", list_recordings)
    app.router.add_post("/simulation-jobs", submit_job)
    app.router.add_get("/simulation-jobs", list_jobs)
    app.router.add_get("/simulation-jobs/{job_id}", get_job)
    app.router.add_delete("/simulation-jobs/{job_id}", cancel_job)
    app.router.add_get(FILES_PREFIX + "/{stream_id}/{file_name}", serve_file)


def _archive(request: web.Request) -> Archive:
    archive = request.app[STATE].archive
    if archive is None:
        raise HttpError(503, "Recordings are not available on this server")
    return archive


# -- recordings ---------------------------------------------------------------------------


async def get_recording(request: web.Request) -> web.Response:
    """``GET /recordings/{stream_id}``: presigned links to a finished stream's files."""
    key = _caller(request)
    archive = _archive(request)
    row = await archive.db(archive.store.recording, request.match_info["stream_id"])
    if row is None or row.key_name != key.name:
        raise HttpError(404, "Recording not found")
    if not row.finished and await archive.wait_finalised(row.stream_id, _FINALISE_WAIT_S):
        row = await archive.db(archive.store.recording, row.stream_id) or row
    if not row.finished:
        raise HttpError(404, "Recording not found: the stream has not finished yet; its recording appears once it ends")
    return web.json_response(_recording_links(archive, _http_base(request), row))


async def list_recordings(request: web.Request) -> web.Response:
    """``GET /stream-recordings?limit=&offset=``: the caller's recorded streams, newest first."""
    key = _caller(request)
    archive = _archive(request)
    limit, offset = _page(request, *RECORDINGS_PAGE)
    rows, total = await archive.db(archive.store.list_recordings, key.name, limit, offset)
    recordings = [
        {
            "stream_id": row.stream_id,
            "width": row.width,
            "height": row.height,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "duration_seconds": row.duration_seconds,
        }
        for row in rows
    ]
    return web.json_response({"recordings": recordings, "total": total, "limit": limit, "offset": offset})


def _recording_links(archive: Archive, base: str, row: RecordingRow) -> dict[str, Any]:
    links = {
        f"{name}_url": archive.file_url(base, row.stream_id, file_name) if name in row.artifacts else None
        for name, file_name in ARTIFACT_FILES.items()
    }
    return {
        "stream_id": row.stream_id,
        **links,
        "frame_count": row.frame_count,
        "duration_seconds": row.duration_seconds,
    }


# -- simulation jobs ----------------------------------------------------------------------


async def submit_job(request: web.Request) -> web.Response:
    """``POST /simulation-jobs``: validate, check the privilege and the queue limit, queue."""
    key = _caller(request)
    archive = _archive(request)
    state = request.app[STATE]
    async with state.large_bodies:
        body = await _json_body(request, state.config.max_body_bytes)
        try:
            job_request = await asyncio.get_running_loop().run_in_executor(state.inputs, _checked_job, body)
        except ScriptError as exc:
            raise HttpError(400, str(exc)) from None
    if job_request.script_url is not None and not state.config.allow_private_script_urls:
        problem = url_address_problem(job_request.script_url)
        if problem is not None:
            raise HttpError(400, problem)
    if job_request.bypass_vlm_expansion and not key.bypass_privilege:
        raise HttpError(403, "This API key is not allowed to bypass prompt expansion (bypass_vlm_expansion)")
    limit = state.config.max_queued_jobs
    job = new_job(key, job_request)
    admitted = await archive.db(_admit, archive.store, job, limit)
    if admitted is None:
        active = await archive.db(archive.store.count_jobs, key.name, ACTIVE_JOB_STATUSES)
        usage = usage_error_body("CONCURRENT_LIMIT_REACHED", active_count=active, limit=limit)
        usage["message"] = f"Maximum queued simulation jobs ({limit}) reached"
        usage["action"] = "Wait for a simulation job to finish, or cancel one, and try again"
        raise HttpError(429, body={"detail": usage})
    archive.jobs.wake()
    detail = _job_detail(archive, _http_base(request), job, [])
    detail["estimated_wait_minutes"] = round(admitted * _MINUTES_PER_QUEUED_JOB, 2)
    return web.json_response(detail)


def _checked_job(body: dict[str, Any]) -> JobRequest:
    """Validate a job body, and refuse start images with too many pixels (headers only); runs off the loop.

    Other image problems are left to the render, which fails the job with
    them, as the hosted API finds them only when the job runs. Raises
    :class:`ScriptError` with the text of the 400 answer.
    """
    job_request = validate_job_request(body)
    for index, script in enumerate(job_request.scripts):
        image = script[0]["start"].get("image")
        if image is None:
            continue
        where = "script" if job_request.form == "script" else f"scripts[{index}]"
        try:
            check_image(image)
        except TooManyPixelsError as exc:
            raise ScriptError(f"{where} entry 0: start.image cannot be used: {exc}") from None
        except (TypeError, ValueError):
            pass  # the job fails when it runs, saying why
    return job_request


def _admit(store: Store, job: JobRow, limit: int) -> int | None:
    """Queue ``job`` unless its key is at ``limit``; how many active jobs are ahead of it, or ``None``.

    Runs on the database thread, which serialises admissions.
    """
    if store.count_jobs(job.key_name, ACTIVE_JOB_STATUSES) >= limit:
        return None
    store.add_job(job)
    return store.jobs_ahead(job.job_id)


async def get_job(request: web.Request) -> web.Response:
    """``GET /simulation-jobs/{job_id}``: the job, with its streams' links."""
    key = _caller(request)
    archive = _archive(request)
    job = await _own_job(request, archive, key)
    streams = await archive.db(archive.store.job_recordings, job.job_id)
    return web.json_response(_job_detail(archive, _http_base(request), job, streams))


async def list_jobs(request: web.Request) -> web.Response:
    """``GET /simulation-jobs?status=&active=&limit=&offset=``: the caller's jobs, newest first."""
    key = _caller(request)
    archive = _archive(request)
    limit, offset = _page(request, *JOBS_PAGE)
    statuses = _status_filter(request)
    rows, total = await archive.db(archive.store.list_jobs, key.name, statuses, limit, offset)
    jobs = [_job_info(row) for row in rows]
    return web.json_response({"jobs": jobs, "total": total, "limit": limit, "offset": offset})


async def cancel_job(request: web.Request) -> web.Response:
    """``DELETE /simulation-jobs/{job_id}``: cancel a pending or dispatched job (400 otherwise)."""
    key = _caller(request)
    archive = _archive(request)
    job = await _own_job(request, archive, key)
    cancelled = await archive.db(archive.store.transition_job, job.job_id, _CANCELLABLE, "cancelled")
    if cancelled is None:
        current = await archive.db(archive.store.job, job.job_id)
        status = current.status if current is not None else job.status
        raise HttpError(
            400, f"Cannot cancel a simulation job that is {status}: only pending or dispatched jobs can be cancelled"
        )
    return web.json_response(_job_info(cancelled))


async def _own_job(request: web.Request, archive: Archive, key: ApiKey) -> JobRow:
    job = await archive.db(archive.store.job, request.match_info["job_id"])
    if job is None:
        raise HttpError(404, "Simulation job not found")
    if job.key_name != key.name:
        raise HttpError(403, "Not authorized to access this simulation job")
    return job


def _job_info(job: JobRow) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "status": job.status,
        "priority": job.priority,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "error_message": job.error_message,
    }


def _job_detail(archive: Archive, base: str, job: JobRow, streams: Sequence[RecordingRow]) -> dict[str, Any]:
    return {
        **_job_info(job),
        "dispatched_at": job.dispatched_at,
        "started_at": job.started_at,
        "assigned_region": job.assigned_region,
        "retry_count": job.retry_count,
        "streams": [{**_recording_links(archive, base, row), "script_index": row.script_index} for row in streams],
    }


# -- files --------------------------------------------------------------------------------


async def serve_file(request: web.Request) -> web.StreamResponse:
    """``GET /files/{stream_id}/{file}?expires=&sig=``: one recording file, if the link is valid (Range works)."""
    archive = _archive(request)
    stream_id, file_name = request.match_info["stream_id"], request.match_info["file_name"]
    if file_name not in CONTENT_TYPES or not STREAM_ID_PATTERN.match(stream_id):
        raise HttpError(404, "File not found")
    try:
        archive.signer.verify(
            f"{FILES_PREFIX}/{stream_id}/{file_name}", request.query.get("expires"), request.query.get("sig")
        )
    except SignatureError as exc:
        raise HttpError(403, str(exc)) from None
    path = archive.recording_dir(stream_id) / file_name
    if not await archive.db(path.is_file):
        raise HttpError(404, "File not found: the recording was deleted")
    return web.FileResponse(
        path,
        headers={"Content-Type": CONTENT_TYPES[file_name], "Cache-Control": "private, max-age=3600"},
    )


# -- query parameters ---------------------------------------------------------------------


def _page(request: web.Request, default_limit: int, max_limit: int) -> tuple[int, int]:
    limit = _int_param(request, "limit", default_limit)
    offset = _int_param(request, "offset", 0)
    if not 1 <= limit <= max_limit:
        raise HttpError(422, f"limit must be between 1 and {max_limit}, got {limit}")
    if offset < 0:
        raise HttpError(422, f"offset must be >= 0, got {offset}")
    return limit, offset


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise HttpError(422, f"{name} must be an integer, got {shown!r}") from None
    if not -_SQL_INT_LIMIT <= value < _SQL_INT_LIMIT:
        raise HttpError(422, f"{name} must be between 0 and {_SQL_INT_LIMIT - 1}, got {raw[:40]}")
    return value


def _status_filter(request: web.Request) -> list[str] | None:
    statuses: set[str] | None = None
    status = request.query.get("status")
    if status:
        if status not in JOB_STATUSES:
            raise HttpError(422, f"status must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
        statuses = {status}
    active = request.query.get("active")
    if active:
        if active.lower() not in ("true", "false", "1", "0"):
            raise HttpError(422, f"active must be true or false, got {active!r}")
        wanted = set(ACTIVE_JOB_STATUSES if active.lower() in ("true", "1") else _FINISHED_JOB_STATUSES)
        statuses = wanted if statuses is None else statuses & wanted
    return None if statuses is None else sorted(statuses)
