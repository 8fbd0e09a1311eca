"""REST calls of an account that need no connection: recordings and simulations.

Mixed into :class:`odyssey_sync.Odyssey`; they use the client's REST layer
from the caller's thread. Argument mistakes raise :class:`TypeError` or
:class:`ValueError` (:class:`~odyssey_sync.scripts.ScriptError` for scripts)
before any network I/O. Server answers map to Odyssey exceptions by status:
401/403 :class:`OdysseyAuthError`; 404 for an id :class:`OdysseyStreamError`
with ``reason == "not_found"`` (404 for a whole endpoint means the wrong
server: :class:`OdysseyConnectionError`); 429 an :class:`OdysseyUsageError`
subclass; other 4xx :class:`OdysseyError` with the server's detail; 5xx,
network failures and malformed answers :class:`OdysseyConnectionError`;
time-outs :class:`OdysseyTimeoutError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator, Mapping
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3
from tqdm import tqdm

from . import images, protocol
from . import scripts as _scripts
from ._deadline import Deadline
from .errors import (
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyTimeoutError,
)
from .rest import _USER_AGENT, _is_timeout, _network_reason
from .types import (
    DEFAULT_TIMEOUT,
    Recording,
    SimulationJobDetail,
    SimulationJobInfo,
    SimulationJobsList,
    SimulationJobStatus,
    SimulationStream,
    StreamRecordingInfo,
    StreamRecordingsList,
    Timeout,
)

if TYPE_CHECKING:
    from .rest import RestClient

__all__ = ["ARTIFACTS", "AccountMethods"]

_log = logging.getLogger("odyssey_sync.account")

ARTIFACTS: dict[str, tuple[str, str]] = {
    "video": ("video_url", ".mp4"),
    "events": ("events_url", ".events.jsonl"),
    "thumbnail": ("thumbnail_url", ".jpg"),
    "preview": ("preview_url", ".preview.mp4"),
}
"""What :meth:`AccountMethods.download_recording` can fetch: name -> (Recording field, file suffix)."""

_MAX_PAGE_SIZE = 100
_NOT_FOUND = "not_found"
_MAX_POLL_INTERVAL_S = 10.0
_POLL_BACKOFF = 1.5
_POLL_ERRORS_TOLERATED = 3
_CHUNK_BYTES = 256 * 1024
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
_STATUSES = ", ".join(s.value for s in SimulationJobStatus)

class AccountMethods:
    """Recordings and simulations: REST calls that need an API key but no connection.

    Every method blocks the caller's thread and takes ``timeout=`` in seconds
    (the client's default when omitted, ``None`` for no limit). Wrong
    arguments raise ``TypeError``/``ValueError`` before any request. Server
    errors: 401/403 :class:`OdysseyAuthError`; an unknown stream or job id
    (404) :class:`OdysseyStreamError` with ``reason == "not_found"``; 429 an
    :class:`OdysseyUsageError` subclass; a refused request (400) an
    :class:`OdysseyError` carrying the server's reason; 5xx, network failures
    and malformed answers :class:`OdysseyConnectionError`.
    """

    if TYPE_CHECKING:

        def _rest_client(self) -> RestClient: ...

        def _call_timeout(self, timeout: Any) -> float | None: ...

        def _check_process(self) -> None: ...

    # -- recordings ---------------------------------------------------------------------------

    def get_recording(self, stream_id: str, *, timeout: Timeout = DEFAULT_TIMEOUT) -> Recording:
        """Presigned download URLs (valid about an hour) of a finished stream's recording.

        Any URL may be ``None`` while that artifact is not available.
        Raises :class:`OdysseyStreamError` (``reason="not_found"``) for an
        unknown stream or one with no recording yet.
        """
        self._check_process()
        stream_id = _check_id("stream_id", stream_id)
        return self._get_recording(stream_id, Deadline(self._call_timeout(timeout), "get_recording()"))

    def list_stream_recordings(
        self,
        limit: int | None = None,
        offset: int | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> StreamRecordingsList:
        """One page of this account's streams that have recordings, newest first.

        ``limit`` is 1..100 (server default 50) and ``offset`` >= 0. For all of
        them, iterate :meth:`iter_stream_recordings`.
        """
        self._check_process()
        params = _page_params(limit, offset)
        deadline = Deadline(self._call_timeout(timeout), "list_stream_recordings()")
        where = "GET /stream-recordings"
        data = self._rest_client().request_json(
            "GET", "/stream-recordings", params=params, timeout=deadline, not_found=_no_endpoint(where)
        )
        body = _object(data, where)
        items = _list(body, "recordings", where)
        recordings = [_recording_info(item, where) for item in items]
        return StreamRecordingsList(recordings=recordings, **_page_fields(body, len(recordings), limit, offset))

    def iter_stream_recordings(
        self,
        page_size: int = 50,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> Iterator[StreamRecordingInfo]:
        """Every stream recording of this account, newest first, fetched ``page_size`` at a time.

        ``timeout`` applies to each page request. Each recording is yielded
        once even if new ones shift the pages while iterating.
        """
        self._check_process()
        _page_params(page_size, 0)
        self._call_timeout(timeout)
        return self._iter_recordings(page_size, timeout)

    def _iter_recordings(self, page_size: int, timeout: Any) -> Iterator[StreamRecordingInfo]:
        seen: set[str] = set()
        offset = 0
        while True:
            page = self.list_stream_recordings(limit=page_size, offset=offset, timeout=timeout)
            for info in page.recordings:
                if info.stream_id not in seen:
                    seen.add(info.stream_id)
                    yield info
            offset += len(page.recordings)
            if not page.recordings or offset >= page.total:
                return

    def download_recording(
        self,
        stream_id: str,
        dest: str | os.PathLike[str],
        *,
        what: str | Iterable[str] = ("video",),
        progress: bool = True,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> dict[str, Path]:
        """Download a stream's recorded artifacts and return ``{artifact: path}``.

        ``what`` names one or more of ``"video"`` (MP4), ``"events"`` (JSONL),
        ``"thumbnail"`` (JPEG) and ``"preview"`` (MP4). ``dest`` is a folder
        (created if needed) where the files are named ``<stream_id>.mp4``,
        ``<stream_id>.events.jsonl``, ``<stream_id>.jpg`` and
        ``<stream_id>.preview.mp4``; or, for a single artifact, a file path.
        ``dest`` counts as a file path only when one artifact is asked for and
        it has a suffix (``"out/cat.mp4"``) and is not an existing folder.

        Each file is written to a temporary file next to it and renamed into
        place when complete, so an error or Ctrl+C never leaves a partial file.
        ``progress`` shows a tqdm bar per file on stderr when it is a terminal. ``timeout`` bounds
        the metadata request and each wait for data; a download that keeps
        receiving data is not cut off.

        Raises:
            OdysseyStreamError: no such recording (``reason="not_found"``).
            OdysseyError: an asked-for artifact is not available.
            OdysseyAuthError: the download link was refused (expired or tampered).
            OdysseyConnectionError: the transfer failed or was cut off.
            OdysseyTimeoutError: no answer or no data for ``timeout`` seconds.
        """
        self._check_process()
        stream_id = _check_id("stream_id", stream_id)
        kinds = _check_what(what)
        _check_bool("progress", progress)
        call_timeout = self._call_timeout(timeout)
        targets = _plan_targets(stream_id, dest, kinds)
        recording = self._get_recording(stream_id, Deadline(call_timeout, "download_recording()"))
        urls: dict[str, str] = {}
        for kind in kinds:
            url = getattr(recording, ARTIFACTS[kind][0])
            if not url:
                raise OdysseyError(
                    f"The {kind} of stream {stream_id!r} is not available (the server gave no {ARTIFACTS[kind][0]}); "
                    "it may still be processing, so try again in a minute"
                )
            urls[kind] = self._absolute_url(url)
        for path in targets.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        with requests.Session() as http:
            http.verify = True
            http.headers["User-Agent"] = _USER_AGENT
            for kind in kinds:
                _download(http, urls[kind], targets[kind], kind, progress, call_timeout)
        return targets

    def _get_recording(self, stream_id: str, deadline: Deadline) -> Recording:
        def not_found(detail: str) -> OdysseyError:
            return OdysseyStreamError(
                f"Recording not found for stream {stream_id!r} (404): check the id (list_stream_recordings() "
                "shows yours); a recording appears shortly after its stream ends",
                reason=_NOT_FOUND,
            )

        path = f"/recordings/{quote(stream_id, safe='')}"
        data = self._rest_client().request_json("GET", path, timeout=deadline, not_found=not_found)
        body = _object(data, f"GET {path}")
        return Recording(stream_id=_opt_str(body, "stream_id") or stream_id, **_artifact_fields(body))

    def _absolute_url(self, url: str) -> str:
        """Presigned URLs are absolute; a relative one is resolved against the API URL."""
        if not urlsplit(url).scheme:
            url = urljoin(self._rest_client().api_url + "/", url)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise OdysseyError(
                f"The server gave a download link that is not http(s) ({protocol.redact_url(url)}); "
                "check api_url points at the Odyssey API"
            )
        return url

    # -- simulations --------------------------------------------------------------------------

    def simulate(
        self,
        *,
        script: list[dict[str, Any]] | None = None,
        scripts: list[list[dict[str, Any]]] | None = None,
        script_url: str | None = None,
        portrait: bool = True,
        bypass_prompt_expansion: bool | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> SimulationJobDetail:
        """Submit a simulation job: a scripted video rendered offline, no connection needed.

        Give exactly one of ``script`` (a list of entries, see
        :mod:`odyssey_sync.scripts`), ``scripts`` (up to 10 scripts, one stream
        each) or ``script_url`` (an http(s) URL of a script). A ``start`` entry's
        ``image`` may be anything ``start_stream(image=)`` takes; it is
        resized for ``portrait`` and sent as a data URL. Scripts are checked
        here first, so mistakes raise :class:`ScriptError` (a ``ValueError``)
        naming the entry before anything is sent. Returns the queued job
        (``streams`` is empty until it completes); follow it with
        :meth:`wait_for_simulation`.
        """
        self._check_process()
        _check_bool("portrait", portrait)
        if bypass_prompt_expansion is not None:
            _check_bool("bypass_prompt_expansion", bypass_prompt_expansion)
        deadline = Deadline(self._call_timeout(timeout), "simulate()")
        body: dict[str, Any] = {"portrait": portrait, "output_video": True}
        if bypass_prompt_expansion is not None:
            body["bypass_vlm_expansion"] = bypass_prompt_expansion
        if script is not None:
            _check_sequence("script", script, "a list of entries")
            body["script"] = script
        if scripts is not None:
            _check_sequence("scripts", scripts, "a list of scripts")
            for i, item in enumerate(scripts):
                _check_sequence(f"scripts[{i}]", item, "a list of entries")
            body["scripts"] = scripts
        if script_url is not None:
            if not isinstance(script_url, str):
                raise TypeError(f"script_url must be a string URL, not {type(script_url).__name__}")
            body["script_url"] = script_url
        request = _scripts._check_job_request(body, _scripts.MAX_SCRIPT_MS, images_as_data_urls=False)
        for i, checked in enumerate(request.scripts):
            where = "script" if request.form == "script" else f"scripts[{i}]"
            _prepare_start_image(checked, where, portrait)
        final = _scripts.validate_job_request(request.to_json())

        try:
            data = self._rest_client().request_json(
                "POST",
                "/simulation-jobs",
                json=final.to_json(),
                timeout=deadline,
                not_found=_no_endpoint("POST /simulation-jobs"),
            )
        except OdysseyAuthError as exc:
            if bypass_prompt_expansion is None:
                raise
            raise OdysseyAuthError(
                f"{exc} (bypass_prompt_expansion needs a privilege not every API key has; try without it)"
            ) from exc
        except OdysseyError as exc:
            if type(exc) is not OdysseyError:
                raise
            raise OdysseyError(f"The server rejected the simulation job: {exc}") from exc
        return _job_detail(data, "POST /simulation-jobs", None)

    def get_simulate_status(
        self,
        job_id: str | SimulationJobInfo | SimulationJobDetail,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> SimulationJobDetail:
        """The current state of a simulation job, with its streams once completed.

        ``job_id`` may also be the job object :meth:`simulate` returned.
        Raises :class:`OdysseyStreamError` (``reason="not_found"``) for an
        unknown job and :class:`OdysseyAuthError` for another account's.
        """
        self._check_process()
        job = _job_id(job_id)
        return self._job_status(job, Deadline(self._call_timeout(timeout), "get_simulate_status()"))

    def _job_status(self, job_id: str, deadline: Deadline) -> SimulationJobDetail:
        path = f"/simulation-jobs/{quote(job_id, safe='')}"
        data = self._rest_client().request_json("GET", path, timeout=deadline, not_found=_job_not_found(job_id))
        return _job_detail(data, f"GET {path}", job_id)

    def list_simulations(
        self,
        *,
        status: SimulationJobStatus | str | None = None,
        active: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> SimulationJobsList:
        """One page of this account's simulation jobs.

        ``status`` keeps jobs in that state; ``active=True`` keeps pending,
        dispatched and processing jobs (``False`` the finished ones).
        ``limit`` is 1..100 (server default 20) and ``offset`` >= 0.
        """
        self._check_process()
        params = _page_params(limit, offset)
        if status is not None:
            params["status"] = _check_status(status).value
        if active is not None:
            _check_bool("active", active)
            params["active"] = "true" if active else "false"
        deadline = Deadline(self._call_timeout(timeout), "list_simulations()")
        where = "GET /simulation-jobs"
        data = self._rest_client().request_json(
            "GET", "/simulation-jobs", params=params, timeout=deadline, not_found=_no_endpoint(where)
        )
        body = _object(data, where)
        jobs = [_job_info(item, where, None) for item in _list(body, "jobs", where)]
        return SimulationJobsList(jobs=jobs, **_page_fields(body, len(jobs), limit, offset))

    def cancel_simulation(
        self,
        job_id: str | SimulationJobInfo | SimulationJobDetail,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
    ) -> SimulationJobInfo:
        """Cancel a pending or dispatched simulation job.

        A job already processing or finished cannot be cancelled: the server's
        reason comes as :class:`OdysseyError`. An unknown job raises
        :class:`OdysseyStreamError` (``reason="not_found"``).
        """
        self._check_process()
        job = _job_id(job_id)
        path = f"/simulation-jobs/{quote(job, safe='')}"
        deadline = Deadline(self._call_timeout(timeout), "cancel_simulation()")
        try:
            data = self._rest_client().request_json(
                "DELETE", path, timeout=deadline, not_found=_job_not_found(job)
            )
        except OdysseyError as exc:
            if type(exc) is not OdysseyError:
                raise
            raise OdysseyError(
                f"Cannot cancel simulation job {job!r}: {exc}; only pending or dispatched jobs can be cancelled"
            ) from exc
        if data is None:
            return SimulationJobInfo(job_id=job, status=SimulationJobStatus.CANCELLED)
        body = _object(data, f"DELETE {path}")
        if body.get("status") is None:
            body = {**body, "status": SimulationJobStatus.CANCELLED.value}
        return _job_info(body, f"DELETE {path}", job)

    def wait_for_simulation(
        self,
        job_id: str | SimulationJobInfo | SimulationJobDetail,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        progress: bool = True,
        poll_interval: float = 1.0,
    ) -> SimulationJobDetail:
        """Poll a simulation job until it is completed, failed or cancelled, and return it.

        A failed or cancelled job is returned, not raised: check
        ``detail.status`` (and ``detail.error_message``). Polls start every
        ``poll_interval`` seconds and slow down by 1.5x up to 10 s;
        ``progress`` shows the status on stderr with tqdm when stderr is a
        terminal (nothing in logs, pipes or CI). Jobs usually take
        minutes, longer than the client's default timeout: pass a generous
        ``timeout`` or ``None`` to wait until it finishes. On expiry raises
        :class:`OdysseyTimeoutError`; the job keeps running, so calling again
        resumes the wait.
        """
        self._check_process()
        job = _job_id(job_id)
        _check_bool("progress", progress)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)):
            raise TypeError(f"poll_interval must be a number of seconds, not {type(poll_interval).__name__}")
        if not 0 < poll_interval < math.inf:
            raise ValueError(f"poll_interval must be a finite number of seconds > 0, got {poll_interval!r}")
        call_timeout = self._call_timeout(timeout)
        deadline = Deadline(call_timeout, "wait_for_simulation()")
        interval = float(poll_interval)
        ceiling = max(_MAX_POLL_INTERVAL_S, interval)
        status = "unknown"
        failures = 0
        with tqdm(total=None, desc=f"Simulation {job}", bar_format="{desc} [{elapsed}]", disable=_bar_off(progress)) as bar:
            while True:
                if deadline.expired():
                    raise _still_running(job, status, call_timeout)
                try:
                    detail = self._job_status(job, deadline)
                except (OdysseyTimeoutError, OdysseyConnectionError) as exc:
                    if deadline.expired():
                        raise _still_running(job, status, call_timeout) from None
                    failures += 1
                    if failures > _POLL_ERRORS_TOLERATED:
                        raise
                    _log.debug("polling simulation job %s failed (%d in a row), retrying: %s", job, failures, exc)
                else:
                    failures = 0
                    if detail.status.value != status:
                        status = detail.status.value
                        bar.set_description_str(f"Simulation {job}: {status}")
                    bar.refresh()
                    if detail.status.is_terminal:
                        return detail
                _sleep(deadline.within(interval))
                interval = min(interval * _POLL_BACKOFF, ceiling)


# -- argument checks ----------------------------------------------------------------------------


def _check_id(name: str, value: Any) -> str:
    if not isinstance(value, str):
        hint = f" (pass its .{name})" if hasattr(value, name) else ""
        raise TypeError(f"{name} must be a string, not {type(value).__name__}{hint}")
    if not value.strip():
        raise ValueError(f"{name} is empty; pass the id a stream or job call returned")
    return value.strip()


def _job_id(value: Any) -> str:
    if isinstance(value, (SimulationJobInfo, SimulationJobDetail)):
        return value.job_id
    return _check_id("job_id", value)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")


def _check_int(name: str, value: Any, low: int, high: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        bound = f">= {low}" if high == math.inf else f"{low}..{high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _page_params(limit: Any, offset: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        params["limit"] = _check_int("limit", limit, 1, _MAX_PAGE_SIZE)
    if offset is not None:
        params["offset"] = _check_int("offset", offset, 0, math.inf)
    return params


def _page_fields(body: Mapping[str, Any], count: int, limit: int | None, offset: int | None) -> dict[str, int]:
    """``total``, ``limit`` and ``offset`` of a page of ``count`` items, from the reply or else from the request."""
    return {
        "total": _int(body, "total", count + (offset or 0)),
        "limit": _int(body, "limit", limit if limit is not None else count),
        "offset": _int(body, "offset", offset or 0),
    }


def _check_status(value: Any) -> SimulationJobStatus:
    if isinstance(value, SimulationJobStatus):
        return value
    if not isinstance(value, str):
        raise TypeError(f"status must be a SimulationJobStatus or its string, not {type(value).__name__}")
    try:
        return SimulationJobStatus(value.strip().lower())
    except ValueError:
        raise ValueError(f"status must be one of {_STATUSES}; got {value!r}") from None


def _check_sequence(name: str, value: Any, what: str) -> None:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")


def _check_what(what: Any) -> list[str]:
    names = [what] if isinstance(what, str) else what
    try:
        items = list(names)
    except TypeError:
        raise TypeError(f"what must be an artifact name or a list of them, not {type(what).__name__}") from None
    kinds: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"what must hold artifact names (strings), got {type(item).__name__}")
        if item not in ARTIFACTS:
            raise ValueError(f"what: unknown artifact {item!r}; choose from {', '.join(map(repr, ARTIFACTS))}")
        if item not in kinds:
            kinds.append(item)
    if not kinds:
        raise ValueError(f"what is empty; name at least one of {', '.join(map(repr, ARTIFACTS))}")
    return kinds


def _plan_targets(stream_id: str, dest: Any, kinds: list[str]) -> dict[str, Path]:
    """Where each artifact goes; checks the destination can be written without touching it."""
    text = os.fspath(dest) if isinstance(dest, os.PathLike) else dest
    if not isinstance(text, str):
        raise TypeError(f"dest must be a folder or file path (str or os.PathLike), not {type(dest).__name__}")
    if not text.strip():
        raise ValueError("dest is empty; pass a folder (or, for one artifact, a file path)")
    path = Path(text).expanduser()
    as_file = (
        len(kinds) == 1
        and not path.is_dir()
        and not text.endswith(("/", os.sep))
        and bool(path.suffix)
    )
    if not as_file and path.exists() and not path.is_dir():
        raise ValueError(f"dest {text!r} is a file; pass a folder for {' and '.join(kinds)}")
    if not as_file and not path.exists() and path.suffix and not text.endswith(("/", os.sep)):
        raise ValueError(
            f"dest {text!r} looks like a file name, but {' and '.join(kinds)} make several files; pass a folder "
            "(end it with '/' to create a folder with a dot in its name)"
        )
    folder = path.parent if as_file else path
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"Cannot create folder {str(folder)!r}: {str(ancestor)!r} is a file")
    if as_file:
        return {kinds[0]: path}
    stem = _UNSAFE_FILENAME.sub("_", stream_id).lstrip(".") or "recording"
    return {kind: path / f"{stem}{ARTIFACTS[kind][1]}" for kind in kinds}


def _prepare_start_image(script: list[dict[str, Any]], where: str, portrait: bool) -> None:
    """Replace the start entry's image, whatever its kind, by the data URL to send."""
    start = script[0]["start"]
    if "image" not in start:
        return
    try:
        start["image"] = images.prepare_image(start["image"], portrait=portrait)
    except TypeError as exc:
        raise TypeError(f"{where} entry 0: start.image: {exc}") from exc
    except ValueError as exc:
        raise _scripts.ScriptError(f"{where} entry 0: start.image: {exc}") from exc


# -- response parsing -----------------------------------------------------------------------------


def _invalid(where: str, problem: str) -> OdysseyConnectionError:
    return OdysseyConnectionError(f"Invalid response to {where}: {problem}; check api_url points at the Odyssey API")


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _invalid(where, "expected a JSON object")
    return data


def _list(body: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(where, f"{key!r} is not a list")
    return value


def _opt_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _opt_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _opt_float(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(body: Mapping[str, Any], key: str, default: int) -> int:
    value = _opt_int(body, key)
    return default if value is None else value


def _required_str(body: Mapping[str, Any], key: str, where: str, fallback: str | None = None) -> str:
    value = _opt_str(body, key) or fallback
    if value is None:
        raise _invalid(where, f"missing {key!r}")
    return value


def _recording_info(item: Any, where: str) -> StreamRecordingInfo:
    body = _object(item, where)
    return StreamRecordingInfo(
        stream_id=_required_str(body, "stream_id", where),
        width=_int(body, "width", 0),
        height=_int(body, "height", 0),
        started_at=_opt_str(body, "started_at") or "",
        ended_at=_opt_str(body, "ended_at"),
        duration_seconds=_opt_float(body, "duration_seconds"),
    )


def _status(body: Mapping[str, Any], job_id: str, where: str) -> SimulationJobStatus:
    value = body.get("status")
    if value is None:
        raise _invalid(where, "missing 'status'")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return SimulationJobStatus(value)
    raise OdysseyError(
        f"The server reported simulation job {job_id!r} as {value!r}, a status this version of odyssey_sync "
        f"does not know (it knows {_STATUSES}); upgrade odyssey_sync"
    )


def _job_fields(item: Any, where: str, job_id: str | None) -> dict[str, Any]:
    body = _object(item, where)
    job = _required_str(body, "job_id", where, job_id)
    return {
        "job_id": job,
        "status": _status(body, job, where),
        "priority": _opt_str(body, "priority") or "normal",
        "created_at": _opt_str(body, "created_at") or "",
        "completed_at": _opt_str(body, "completed_at"),
        "error_message": _opt_str(body, "error_message"),
    }


def _job_info(item: Any, where: str, job_id: str | None) -> SimulationJobInfo:
    return SimulationJobInfo(**_job_fields(item, where, job_id))


def _job_detail(data: Any, where: str, job_id: str | None) -> SimulationJobDetail:
    body = _object(data, where)
    streams = [_simulation_stream(item, where) for item in _list(body, "streams", where)]
    return SimulationJobDetail(
        **_job_fields(body, where, job_id),
        dispatched_at=_opt_str(body, "dispatched_at"),
        started_at=_opt_str(body, "started_at"),
        assigned_region=_opt_str(body, "assigned_region"),
        retry_count=_int(body, "retry_count", 0),
        streams=streams,
        estimated_wait_minutes=_opt_float(body, "estimated_wait_minutes"),
    )


def _artifact_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The file links and sizes a recording and a simulation stream both carry."""
    return {
        "video_url": _opt_str(body, "video_url"),
        "events_url": _opt_str(body, "events_url"),
        "thumbnail_url": _opt_str(body, "thumbnail_url"),
        "preview_url": _opt_str(body, "preview_url"),
        "frame_count": _opt_int(body, "frame_count"),
        "duration_seconds": _opt_float(body, "duration_seconds"),
    }


def _simulation_stream(item: Any, where: str) -> SimulationStream:
    body = _object(item, where)
    return SimulationStream(
        stream_id=_required_str(body, "stream_id", f"{where} (streams)"),
        script_index=_int(body, "script_index", 0),
        **_artifact_fields(body),
    )


def _job_not_found(job_id: str) -> Callable[[str], OdysseyError]:
    def not_found(detail: str) -> OdysseyError:
        return OdysseyStreamError(
            f"Simulation job {job_id!r} not found (404): check the id (list_simulations() shows yours)",
            reason=_NOT_FOUND,
        )

    return not_found


def _no_endpoint(where: str) -> Callable[[str], OdysseyError]:
    def not_found(detail: str) -> OdysseyError:
        return OdysseyConnectionError(f"{where} answered 404: this server does not offer it; check api_url")

    return not_found


def _still_running(job_id: str, status: str, timeout: float | None) -> OdysseyTimeoutError:
    state = f"still {status}" if status != "unknown" else "not finished"
    return OdysseyTimeoutError(
        f"Simulation job {job_id!r} is {state} after {_seconds(timeout)}; it keeps running, so call "
        "wait_for_simulation() again, or pass timeout=None to wait until it finishes"
    )


def _seconds(timeout: float | None) -> str:
    return "an unlimited time" if timeout is None else f"{timeout:g} s"


def _sleep(seconds: float) -> None:
    """Sleep in short slices so Ctrl+C is handled promptly."""
    pause = Deadline(seconds, "sleep")
    while not pause.expired():
        time.sleep(pause.slice())


# -- downloads --------------------------------------------------------------------------------


def _download(
    http: requests.Session, url: str, path: Path, kind: str, progress: bool, timeout: float | None
) -> None:
    """Stream ``url`` into ``path`` through a temporary file in the same folder, then rename."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    _log.debug("downloading the %s to %s from %s", kind, path, protocol.redact_url(url))
    try:
        with open(temp, "xb") as out:
            _fetch(http, url, out, path.name, kind, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _fetch(
    http: requests.Session, url: str, out: BinaryIO, label: str, kind: str, progress: bool, timeout: float | None
) -> None:
    host = urlsplit(url).netloc
    written = 0
    try:
        with http.get(url, stream=True, timeout=(timeout, timeout), allow_redirects=True) as response:
            _check_download_status(response.status_code, kind, host)
            encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() and not encoded else None
            with tqdm(
                total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=_bar_off(progress)
            ) as bar:
                for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        # Exception texts can carry the presigned URL; only a scrubbed reason is kept, without chaining.
        if _is_timeout(exc):
            raise OdysseyTimeoutError(
                f"Downloading the {kind} from {host} stalled for {_seconds(timeout)} after {written} bytes; "
                "try again or pass a larger timeout="
            ) from None
        raise OdysseyConnectionError(
            f"Downloading the {kind} from {host} failed after {written} bytes: "
            f"{protocol.scrub_urls(_network_reason(exc))}; try again"
        ) from None
    if total is not None and written != total:
        raise OdysseyConnectionError(
            f"Downloading the {kind} from {host} was cut off at {written} of {total} bytes; try again"
        )


def _check_download_status(status: int, kind: str, host: str) -> None:
    if 200 <= status < 300:
        return
    if status in (400, 401, 403):
        raise OdysseyAuthError(
            f"The download link has expired or is invalid (HTTP {status} from {host} for the {kind}); "
            "call get_recording() again for fresh links"
        )
    if status == 404:
        raise OdysseyError(
            f"The {kind} file is gone (HTTP 404 from {host}); call get_recording() to check the recording still exists"
        )
    if status >= 500:
        raise OdysseyConnectionError(f"Downloading the {kind} failed: HTTP {status} from {host}; try again")
    raise OdysseyError(f"Downloading the {kind} failed: HTTP {status} from {host}")


def _bar_off(progress: bool) -> bool | None:
    """tqdm's ``disable``: ``None`` shows the bar only when stderr is a terminal (never in logs or CI)."""
    return None if progress else True
