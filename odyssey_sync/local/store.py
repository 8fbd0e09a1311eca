"""The local server's database: recordings and simulation jobs, in SQLite.

One file, ``<data_dir>/odyssey-local.sqlite3``, in WAL mode. The artifacts
themselves live beside it (see :mod:`.archive`); a row only names which of
them exist. One connection serves every thread, behind a lock: statements
are tiny and the server routes its own calls through one worker thread, so
the lock is hardly ever contended.

Rows are returned as frozen snapshots (:class:`RecordingRow`, :class:`JobRow`).
Job status changes are compare-and-set (:meth:`Store.transition_job`), so a
cancellation and the worker can never both win.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import attrs

from .private import create_private

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "DB_NAME",
    "JOB_STATUSES",
    "JobRow",
    "RecordingRow",
    "RecordingStatus",
    "Store",
    "utc_now",
]

DB_NAME = "odyssey-local.sqlite3"

JOB_STATUSES: tuple[str, ...] = ("pending", "dispatched", "processing", "completed", "failed", "cancelled")
"""Every job status the hosted API (and the official clients) know."""

ACTIVE_JOB_STATUSES: tuple[str, ...] = ("pending", "dispatched", "processing")
"""Statuses of jobs that count against the queue limit (``active=true``)."""

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL UNIQUE,
    key_name TEXT NOT NULL,
    status TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    fps REAL NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    duration_seconds REAL,
    frame_count INTEGER,
    artifacts TEXT NOT NULL DEFAULT '[]',
    end_reason TEXT,
    error TEXT,
    job_id TEXT,
    script_index INTEGER
);
CREATE INDEX IF NOT EXISTS recordings_by_key ON recordings (key_name, seq);
CREATE INDEX IF NOT EXISTS recordings_by_job ON recordings (job_id, script_index);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    key_name TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    created_at TEXT NOT NULL,
    dispatched_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    error_message TEXT,
    assigned_region TEXT,
    retry_count INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (key_name, seq);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
"""


def utc_now() -> str:
    """The current UTC time in ISO 8601 with milliseconds (``2025-01-31T12:00:00.000+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class RecordingStatus:
    """The lifecycle of a recording row (server-internal; not a wire value)."""

    RECORDING = "recording"
    """Being written; not served yet."""
    COMPLETE = "complete"
    """Finished, every artifact written."""
    INCOMPLETE = "incomplete"
    """Finished with a problem (``error``), or cut off by a crash; some artifacts may be missing."""


@attrs.frozen
class RecordingRow:
    """One recorded stream (interactive, or one script of a simulation job).

    ``artifacts`` names the files present (``"video"``, ``"events"``,
    ``"thumbnail"``, ``"preview"``); ``job_id`` and ``script_index`` are set
    for simulation streams.
    """

    stream_id: str
    key_name: str
    width: int
    height: int
    fps: float
    started_at: str
    status: str = RecordingStatus.RECORDING
    ended_at: str | None = None
    duration_seconds: float | None = None
    frame_count: int | None = None
    artifacts: tuple[str, ...] = ()
    end_reason: str | None = None
    error: str | None = None
    job_id: str | None = None
    script_index: int | None = None

    @property
    def finished(self) -> bool:
        """Whether the recording is no longer being written."""
        return self.status != RecordingStatus.RECORDING


@attrs.frozen
class JobRow:
    """One simulation job; ``request`` is the validated body (scripts, script_url, portrait, bypass)."""

    job_id: str
    key_name: str
    status: str
    priority: str
    created_at: str
    request: dict[str, Any]
    dispatched_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    error_message: str | None = None
    assigned_region: str | None = None
    retry_count: int = 0


_RECORDING_COLUMNS = (
    "stream_id, key_name, status, width, height, fps, started_at, ended_at, duration_seconds, "
    "frame_count, artifacts, end_reason, error, job_id, script_index"
)
_JOB_COLUMNS = (
    "job_id, key_name, status, priority, created_at, dispatched_at, started_at, completed_at, "
    "error_message, assigned_region, retry_count, request"
)
_JOB_FIELDS = frozenset(
    {"dispatched_at", "started_at", "completed_at", "error_message", "assigned_region", "retry_count"}
)
_LISTED = (RecordingStatus.COMPLETE, RecordingStatus.INCOMPLETE)


class Store:
    """Recordings and jobs in one SQLite file; every method is thread-safe and short."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) the database at ``path``."""
        self._path = Path(path)
        self._lock = threading.Lock()
        create_private(self._path)  # sqlite gives its -wal and -shm files the database file's mode
        self._db = sqlite3.connect(str(self._path), check_same_thread=False, timeout=10.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()

    # -- recordings ------------------------------------------------------------------------

    def add_recording(self, row: RecordingRow) -> None:
        """Insert a new recording row."""
        self._write(
            f"INSERT INTO recordings ({_RECORDING_COLUMNS}) VALUES ({', '.join('?' * 15)})", _recording_values(row)
        )

    def finish_recording(
        self,
        stream_id: str,
        *,
        status: str,
        ended_at: str,
        duration_seconds: float | None,
        frame_count: int | None,
        artifacts: Iterable[str],
        end_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record how a recording ended and which artifacts it has."""
        names = json.dumps(list(artifacts))
        self._write(
            "UPDATE recordings SET status=?, ended_at=?, duration_seconds=?, frame_count=?, artifacts=?, "
            "end_reason=?, error=? WHERE stream_id=?",
            (status, ended_at, duration_seconds, frame_count, names, end_reason, error, stream_id),
        )

    def recording(self, stream_id: str) -> RecordingRow | None:
        """One recording by stream id, or ``None``."""
        rows = self._read(f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE stream_id=?", (stream_id,))
        return _recording(rows[0]) if rows else None

    def list_recordings(self, key_name: str, limit: int, offset: int) -> tuple[list[RecordingRow], int]:
        """A key's finished recordings that have a video, newest first, and how many there are."""
        where = "WHERE key_name=? AND status IN (?, ?) AND artifacts LIKE '%\"video\"%'"
        args = (key_name, *_LISTED)
        rows = self._read(
            f"SELECT {_RECORDING_COLUMNS} FROM recordings {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        total = self._read(f"SELECT COUNT(*) FROM recordings {where}", args)[0][0]
        return [_recording(row) for row in rows], int(total)

    def job_recordings(self, job_id: str) -> list[RecordingRow]:
        """The finished streams of a job, by script index."""
        rows = self._read(
            f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE job_id=? AND status IN (?, ?) "
            "ORDER BY script_index, seq",
            (job_id, *_LISTED),
        )
        return [_recording(row) for row in rows]

    def delete_job_recordings(self, job_id: str) -> list[str]:
        """Forget every stream of a job (before it runs again); returns their stream ids."""
        with self._lock, self._db:
            ids = [row[0] for row in self._db.execute("SELECT stream_id FROM recordings WHERE job_id=?", (job_id,))]
            self._db.execute("DELETE FROM recordings WHERE job_id=?", (job_id,))
        return ids

    def interrupt_recordings(self, ended_at: str) -> list[str]:
        """Mark interactive recordings a crash left unfinished as incomplete; returns their stream ids."""
        with self._lock, self._db:
            ids = [
                row[0]
                for row in self._db.execute(
                    "SELECT stream_id FROM recordings WHERE status=? AND job_id IS NULL", (RecordingStatus.RECORDING,)
                )
            ]
            self._db.execute(
                "UPDATE recordings SET status=?, ended_at=?, artifacts='[]', end_reason='interrupted', "
                "error='the server stopped while recording' WHERE status=? AND job_id IS NULL",
                (RecordingStatus.INCOMPLETE, ended_at, RecordingStatus.RECORDING),
            )
        return ids

    def drop_unfinished_job_recordings(self) -> list[str]:
        """Forget simulation streams a crash left half-rendered (their jobs run again); returns their ids."""
        where, args = "WHERE status=? AND job_id IS NOT NULL", (RecordingStatus.RECORDING,)
        with self._lock, self._db:
            ids = [row[0] for row in self._db.execute(f"SELECT stream_id FROM recordings {where}", args)]
            self._db.execute(f"DELETE FROM recordings {where}", args)
        return ids

    # -- jobs ------------------------------------------------------------------------------

    def add_job(self, row: JobRow) -> None:
        """Insert a new job."""
        self._write(f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({', '.join('?' * 12)})", _job_values(row))

    def job(self, job_id: str) -> JobRow | None:
        """One job by id, or ``None``."""
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id=?", (job_id,))
        return _job(rows[0]) if rows else None

    def list_jobs(
        self, key_name: str, statuses: Sequence[str] | None, limit: int, offset: int
    ) -> tuple[list[JobRow], int]:
        """A key's jobs (optionally only those in ``statuses``), newest first, and how many match."""
        if statuses is not None and not statuses:
            return [], 0
        where, args = "WHERE key_name=?", [key_name]
        if statuses is not None:
            where += f" AND status IN ({', '.join('?' * len(statuses))})"
            args.extend(statuses)
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)
        )
        total = self._read(f"SELECT COUNT(*) FROM jobs {where}", args)[0][0]
        return [_job(row) for row in rows], int(total)

    def count_jobs(self, key_name: str, statuses: Sequence[str]) -> int:
        """How many of a key's jobs are in ``statuses``."""
        placeholders = ", ".join("?" * len(statuses))
        sql = f"SELECT COUNT(*) FROM jobs WHERE key_name=? AND status IN ({placeholders})"
        return int(self._read(sql, (key_name, *statuses))[0][0])

    def jobs_ahead(self, job_id: str) -> int:
        """How many active jobs (any key) were queued before this one."""
        rows = self._read(
            f"SELECT COUNT(*) FROM jobs WHERE status IN ({', '.join('?' * len(ACTIVE_JOB_STATUSES))}) "
            "AND seq < (SELECT seq FROM jobs WHERE job_id=?)",
            (*ACTIVE_JOB_STATUSES, job_id),
        )
        return int(rows[0][0])

    def next_pending_job(self) -> JobRow | None:
        """The oldest pending job, or ``None``."""
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status='pending' ORDER BY seq LIMIT 1", ())
        return _job(rows[0]) if rows else None

    def transition_job(self, job_id: str, from_statuses: Sequence[str], to_status: str, **fields: Any) -> JobRow | None:
        """Move a job to ``to_status`` (setting ``fields``) only if it is in ``from_statuses``.

        Returns the updated row, or ``None`` when the job is unknown or in another status.
        """
        unknown = set(fields) - _JOB_FIELDS
        if unknown or to_status not in JOB_STATUSES:
            raise ValueError(f"bad job transition: {to_status!r} {sorted(unknown)}")
        sets = ", ".join(["status=?", *(f"{name}=?" for name in fields)])
        placeholders = ", ".join("?" * len(from_statuses))
        with self._lock, self._db:
            cursor = self._db.execute(
                f"UPDATE jobs SET {sets} WHERE job_id=? AND status IN ({placeholders})",
                (to_status, *fields.values(), job_id, *from_statuses),
            )
            if cursor.rowcount != 1:
                return None
            row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return _job(row)

    def requeue_interrupted_jobs(self) -> list[str]:
        """Put jobs a stop interrupted (dispatched or processing) back to pending; returns their ids."""
        with self._lock, self._db:
            ids = [
                row[0]
                for row in self._db.execute("SELECT job_id FROM jobs WHERE status IN ('dispatched', 'processing')")
            ]
            self._db.execute(
                "UPDATE jobs SET status='pending', dispatched_at=NULL, started_at=NULL, assigned_region=NULL, "
                "retry_count=retry_count+1 WHERE status IN ('dispatched', 'processing')"
            )
        return ids

    # -- plumbing --------------------------------------------------------------------------

    def _write(self, sql: str, args: Sequence[Any]) -> None:
        with self._lock, self._db:
            self._db.execute(sql, args)

    def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()


def _recording_values(row: RecordingRow) -> tuple[Any, ...]:
    return (
        row.stream_id,
        row.key_name,
        row.status,
        row.width,
        row.height,
        row.fps,
        row.started_at,
        row.ended_at,
        row.duration_seconds,
        row.frame_count,
        json.dumps(list(row.artifacts)),
        row.end_reason,
        row.error,
        row.job_id,
        row.script_index,
    )


def _recording(values: Sequence[Any]) -> RecordingRow:
    (stream_id, key_name, status, width, height, fps, started_at, ended_at, duration, frames, artifacts,
     end_reason, error, job_id, script_index) = values  # fmt: skip
    return RecordingRow(
        stream_id=stream_id,
        key_name=key_name,
        status=status,
        width=width,
        height=height,
        fps=fps,
        started_at=started_at,
        ended_at=ended_at,
        duration_seconds=duration,
        frame_count=frames,
        artifacts=tuple(json.loads(artifacts)),
        end_reason=end_reason,
        error=error,
        job_id=job_id,
        script_index=script_index,
    )


def _job_values(row: JobRow) -> tuple[Any, ...]:
    return (
        row.job_id,
        row.key_name,
        row.status,
        row.priority,
        row.created_at,
        row.dispatched_at,
        row.started_at,
        row.completed_at,
        row.error_message,
        row.assigned_region,
        row.retry_count,
        json.dumps(row.request),
    )


def _job(values: Sequence[Any]) -> JobRow:
    (job_id, key_name, status, priority, created_at, dispatched_at, started_at, completed_at, error_message,
     assigned_region, retry_count, request) = values  # fmt: skip
    return JobRow(
        job_id=job_id,
        key_name=key_name,
        status=status,
        priority=priority,
        created_at=created_at,
        request=json.loads(request),
        dispatched_at=dispatched_at,
        started_at=started_at,
        completed_at=completed_at,
        error_message=error_message,
        assigned_region=assigned_region,
        retry_count=retry_count,
    )
