"""Measurement helpers shared by every benchmark process: CPU, memory, threads, fds, stamps, statistics.

Only the standard library and the frame stamp are imported here, so a
measurement never pays for something it does not use.

CPU of the calling process comes from ``time.process_time()`` (all threads,
nanosecond clock); CPU of another process (the server) from
``/proc/<pid>/stat`` (``utime + stime`` in clock ticks, 10 ms). Memory, thread
and descriptor counts come from ``/proc`` as well (Linux only, as the project).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from typing import Any, Iterable, Sequence

from odyssey_sync.stamp import Stamp

__all__ = [
    "CLK_TCK",
    "DeliveryWindow",
    "ServerMeter",
    "control_sessions",
    "cpu_seconds",
    "cycles_report",
    "fd_count",
    "jitter_buffer_in_use",
    "frames_sent",
    "latency_ms",
    "minor_faults",
    "negotiated_codec",
    "percentile",
    "process_minor_faults",
    "process_sample",
    "settled_sample",
    "rss_mb",
    "summarize",
    "thread_count",
    "wall_ms",
]

CLK_TCK: int = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second of ``/proc/<pid>/stat`` times."""

_MOD = 1 << 32


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        text = handle.read().decode()
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return text[text.rindex(")") + 2 :].split()


def process_minor_faults(pid: int) -> int:
    """Minor page faults of process ``pid`` so far (``/proc/<pid>/stat`` field 10)."""
    return int(_stat_fields(pid)[7])


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) used so far by ``pid``, or by this process when ``None``."""
    if pid is None or pid == os.getpid():
        return time.process_time()
    fields = _stat_fields(pid)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def _status(pid: int | str) -> dict[str, str]:
    result = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            result[name] = value.strip()
    return result


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size (``VmRSS``) of ``pid`` in MiB."""
    return int(_status(pid)["VmRSS"].split()[0]) / 1024.0


def thread_count(pid: int | str = "self") -> int:
    """Number of OS threads of ``pid`` (``/proc/<pid>/task``)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def fd_count(pid: int | str = "self") -> int:
    """Number of open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def minor_faults() -> int:
    """Minor page faults of this process so far (fresh pages mapped: a sign of allocator churn)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def wall_ms() -> float:
    """Wall-clock time in ms (the clock of the frame stamp, unreduced)."""
    return time.time() * 1000.0


def latency_ms(stamp: Stamp, now_wall_ms: float) -> float:
    """Milliseconds from the stamp's server time to ``now_wall_ms`` (same clock; the mod 2**32 wrap undone)."""
    now = now_wall_ms % _MOD
    return (now - stamp.time_ms + (1 << 31)) % _MOD - (1 << 31)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Count, mean, min, p50, p95, p99 and max of ``values`` (rounded to 0.01)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0}
    return {
        "n": len(data),
        "mean": round(sum(data) / len(data), 2),
        "min": round(min(data), 2),
        "p50": round(percentile(data, 50), 2),
        "p95": round(percentile(data, 95), 2),
        "p99": round(percentile(data, 99), 2),
        "max": round(max(data), 2),
    }


def control_sessions(control_url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The server's session snapshots from the benchmark server's control endpoint (see ``server_proc``)."""
    with urllib.request.urlopen(f"{control_url}/sessions", timeout=timeout) as response:
        return json.loads(response.read())


def frames_sent(control_url: str, session_id: str | None = None) -> int:
    """Frames the server has sent on ``session_id`` (or on all sessions held now, summed)."""
    sessions = control_sessions(control_url)
    if session_id is not None:
        return sum(s["frames_sent"] for s in sessions if s["session_id"] == session_id)
    return sum(s["frames_sent"] for s in sessions if s["held"])


def negotiated_codec(sdp: str | None) -> str | None:
    """The video codec a session uses, from its SDP answer: the first non-RTX codec of the video m-line.

    The offerer sends with the first codec of the answer, and aiortc keeps the
    offer's order in its answer, so both sides agree on it.
    """
    if not sdp:
        return None
    in_video = False
    order: list[str] = []
    names: dict[str, str] = {}
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
            if in_video:
                order = line.split()[3:]
            continue
        if in_video and line.startswith("a=rtpmap:"):
            payload, _, rest = line[len("a=rtpmap:") :].partition(" ")
            names[payload] = rest.split("/")[0]
    for payload in order:
        name = names.get(payload, "")
        if name.lower() not in ("rtx", "red", "ulpfec", ""):
            return name
    return None


class DeliveryWindow:
    """Counts the frames of a window of the stream by their stamps: delivered, lost, latency.

    The window is ``expected`` consecutive frame numbers starting at the first
    stamped frame fed. :meth:`add` returns True once a frame at or past the
    window's last number arrives (a lost last frame does not stall it), so
    frames still in flight at the end are never counted as lost.
    """

    def __init__(self, expected: int) -> None:
        """Expect ``expected`` frames (the sender's frame rate times the window's length)."""
        self.expected = max(1, int(expected))
        self.first: int | None = None
        self.numbers: set[int] = set()
        self.latencies: list[float] = []
        self.unreadable = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.highest: int | None = None
        self.done = False

    @property
    def last(self) -> int | None:
        """The last frame number of the window (known once the first frame arrived)."""
        return None if self.first is None else self.first + self.expected - 1

    def add(self, stamp: Stamp | None, latency: float | None) -> bool:
        """Count one delivered frame (``stamp`` None = unreadable); True when the window is complete."""
        if stamp is None:
            self.unreadable += 1
            return self.done
        number = stamp.frame_number
        if self.first is None:
            self.first = number
        last = self.last
        assert last is not None
        if number < self.first:
            self.out_of_order += 1
            return self.done
        if self.highest is not None and number < self.highest:
            self.out_of_order += 1
        self.highest = number if self.highest is None else max(self.highest, number)
        if number > last:
            self.done = True
            return True
        if number in self.numbers:
            self.duplicates += 1
        else:
            self.numbers.add(number)
            if latency is not None:
                self.latencies.append(latency)
        if number == last:
            self.done = True
        return self.done

    def result(self) -> dict[str, Any]:
        """Delivered and sent frame counts, the delivered fraction and the latency summary."""
        if self.first is None:
            return {"delivered": 0, "sent": 0, "delivered_fraction": None, "latency_ms": {"n": 0}}
        if self.done:
            sent = self.expected
        else:  # ended early (timeout or end of stream): count up to the highest number seen
            sent = (self.highest or self.first) - self.first + 1
        delivered = len(self.numbers)
        return {
            "first_frame": self.first,
            "delivered": delivered,
            "sent": sent,
            "complete": self.done,
            "delivered_fraction": delivered / sent if sent else None,
            "unreadable_stamps": self.unreadable,
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
            "latency_ms": summarize(self.latencies),
        }


class ServerMeter:
    """Server CPU and frames sent over a window, read from outside the server process."""

    def __init__(self, pid: int | None, control_url: str | None, session_id: str | None = None) -> None:
        """Watch the server process ``pid`` and, through ``control_url``, the frames sent on ``session_id``."""
        self.pid = pid
        self.control_url = control_url
        self.session_id = session_id
        self._start: tuple[float, float, int | None] | None = None
        self._faults0: int | None = None

    def _frames(self) -> int | None:
        if not self.control_url:
            return None
        try:
            return frames_sent(self.control_url, self.session_id)
        except OSError:
            return None

    def _cpu(self) -> float:
        return cpu_seconds(self.pid) if self.pid else math.nan

    def _faults(self) -> int | None:
        try:
            return process_minor_faults(self.pid) if self.pid else None
        except OSError:
            return None

    def start(self) -> None:
        """Mark the start of the window."""
        frames = self._frames()
        self._faults0 = self._faults()
        self._start = (time.monotonic(), self._cpu(), frames)

    def stop(self) -> dict[str, Any]:
        """End the window: server CPU seconds, wall seconds, frames sent, and per-frame / per-second CPU."""
        assert self._start is not None, "start() first"
        cpu = self._cpu()
        wall = time.monotonic()
        faults = self._faults()
        frames = self._frames()
        t0, cpu0, frames0 = self._start
        cpu_s = cpu - cpu0
        sent = frames - frames0 if frames is not None and frames0 is not None else None
        return {
            "cpu_s": round(cpu_s, 3),
            "wall_s": round(wall - t0, 3),
            "frames_sent": sent,
            "cpu_per_s": cpu_s / (wall - t0) if wall > t0 else None,
            "cpu_ms_per_frame": cpu_s * 1000 / sent if sent else None,
            "fps_sent": sent / (wall - t0) if sent and wall > t0 else None,
            "minor_faults_per_frame": (faults - self._faults0) / sent
            if sent and faults is not None and self._faults0 is not None else None,
        }


def process_sample(t0: float) -> dict[str, Any]:
    """This process's RSS (MiB), thread and fd counts, at ``time.monotonic() - t0`` seconds."""
    return {"t": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 2), "threads": thread_count(), "fds": fd_count()}


def settled_sample(t0: float, target: dict[str, Any] | None, wait: float = 5.0) -> dict[str, Any]:
    """A :func:`process_sample` once threads and fds are back to ``target`` (or stop changing when
    ``target`` is None), waiting at most ``wait`` seconds for exiting threads and closing sockets."""
    deadline = time.monotonic() + wait
    sample = process_sample(t0)
    while time.monotonic() < deadline:
        if target is not None and sample["threads"] <= target["threads"] and sample["fds"] <= target["fds"]:
            break
        time.sleep(0.25)
        newer = process_sample(t0)
        stable = newer["threads"] == sample["threads"] and newer["fds"] == sample["fds"]
        sample = newer
        if target is None and stable:
            break
    return sample


def cycles_report(
    client: str, before: dict[str, Any], baseline: dict[str, Any], after: dict[str, Any], durations: Sequence[float]
) -> dict[str, Any]:
    """The P7 connect/disconnect-cycles result: samples before any cycle, after the warm-up and at the end."""
    return {
        "client": client,
        "cycles": len(durations),
        "before_any": before,
        "baseline": baseline,
        "after": after,
        "rss_growth_mb": round(after["rss_mb"] - baseline["rss_mb"], 2),
        "rss_growth_from_start_mb": round(after["rss_mb"] - before["rss_mb"], 2),
        "threads_delta": after["threads"] - baseline["threads"],
        "fds_delta": after["fds"] - baseline["fds"],
        "cycle_ms": summarize(durations),
    }


def jitter_buffer_in_use() -> str:
    """The class aiortc's video receivers of this process are built with (the SDK may install its own)."""
    import aiortc.rtcrtpreceiver

    cls = aiortc.rtcrtpreceiver.JitterBuffer
    return f"{cls.__module__}.{cls.__qualname__}"
