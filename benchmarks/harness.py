"""The orchestrating side of the harness: server processes, worker processes, cached runs, figures.

A :class:`Context` is handed to every scenario module. It starts the local
server in its own process (:mod:`benchmarks.server_proc`), restarting it only
when a scenario needs another configuration, runs client workloads one at a
time in fresh processes (:mod:`benchmarks.worker`), and caches each run by key
so that figures sharing a measurement (P1, P2, P4 and P8 all read the 20 fps
stream run) take it once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from benchmarks.metrics import cpu_seconds, rss_mb
from benchmarks.worker import EVENT_MARKER, RESULT_MARKER

__all__ = [
    "Context",
    "Figure",
    "REPO_ROOT",
    "ServerHandle",
    "Worker",
    "WorkerError",
    "fmt",
    "guarded",
    "not_available",
    "ratio",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

# Every server of the harness: streams long enough for P7, room for P9's sessions and P7's cycles.
BASE_SERVER_CONFIG: dict[str, Any] = {"max_stream_seconds": 3600, "max_concurrent_per_key": 50}


class WorkerError(RuntimeError):
    """A worker process failed or returned an error."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Worker:
    """One workload in a fresh process; :meth:`result` waits for its JSON answer."""

    def __init__(self, target: str, kwargs: Mapping[str, Any], log: Path) -> None:
        """Start ``python -m benchmarks.worker target kwargs`` with stderr appended to ``log``."""
        self.target = target
        self._log = open(log, "a")
        self._log.write(f"\n=== {time.strftime('%H:%M:%S')} worker {target} {json.dumps(_loggable(kwargs))}\n")
        self._log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", target, json.dumps(kwargs)],
            cwd=REPO_ROOT,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._result: dict[str, Any] | None = None
        self._got_result = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"worker-{target}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(RESULT_MARKER):
                self._result = json.loads(line[len(RESULT_MARKER) :])
                self._got_result.set()
            elif line.startswith(EVENT_MARKER):
                self.events.append(json.loads(line[len(EVENT_MARKER) :]))
            else:
                self._log.write(line)
        self._got_result.set()

    def result(self, timeout: float) -> dict[str, Any]:
        """The workload's result; raises :class:`WorkerError` on failure or after ``timeout`` seconds."""
        self._got_result.wait(timeout)
        try:
            self.process.wait(timeout=10 if self._result is not None else 1)
        except subprocess.TimeoutExpired:
            self._log.write(f"worker {self.target}: still running after its result/timeout; killed\n")
            self.process.kill()
            self.process.wait()
        self._log.flush()
        self._log.close()
        if self._result is None:
            raise WorkerError(f"{self.target}: no result (exit status {self.process.returncode}); see the log")
        if "error" in self._result:
            raise WorkerError(f"{self.target}: {self._result['error']}")
        return self._result


def _loggable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if isinstance(out.get("server"), dict):
        out["server"] = {k: v for k, v in out["server"].items() if k in ("url", "pid", "fps")}
    out.pop("token", None)
    return out


class ServerHandle:
    """The local server running in its own process (see :mod:`benchmarks.server_proc`)."""

    def __init__(self, config: Mapping[str, Any], log: Path) -> None:
        """Start a server with ``config`` (``fps`` plus ServerConfig overrides); stderr goes to ``log``."""
        self.config = dict(config)
        self._log = open(log, "a")
        self._log.write(f"\n=== {time.strftime('%H:%M:%S')} server {json.dumps(self.config)}\n")
        self._log.flush()
        args = [sys.executable, "-m", "benchmarks.server_proc", "--fps", str(self.config.get("fps", 20.0))]
        for name, value in self.config.items():
            if name != "fps":
                args += ["--set", f"{name}={json.dumps(value)}"]
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        try:
            self.info: dict[str, Any] = json.loads(line)
        except ValueError:
            self.stop()
            raise WorkerError(f"the server did not start (said {line!r}); see the log") from None
        if "error" in self.info:
            self.stop()
            raise WorkerError(f"the server did not start: {self.info['error']}")
        self.info["fps"] = float(self.config.get("fps", 20.0))
        self.started = time.monotonic()
        self.cpu_at_start = cpu_seconds(self.pid)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return int(self.info["pid"]) if hasattr(self, "info") and "pid" in self.info else self.process.pid

    def description(self) -> dict[str, Any]:
        """What a workload needs to reach and watch the server."""
        return {key: self.info[key] for key in ("url", "api_key", "pid", "control_url", "fps")}

    def usage(self) -> dict[str, float]:
        """The server's RSS (MiB) and CPU seconds since start."""
        try:
            return {"rss_mb": round(rss_mb(self.pid), 1), "cpu_s": round(cpu_seconds(self.pid) - self.cpu_at_start, 2)}
        except OSError:
            return {}

    def stop(self) -> None:
        """Close the server's stdin (it stops cleanly), or kill it after 20 s."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=20)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass
class Figure:
    """One row of the report: a measured value, its baseline, the ratio and the target verdict.

    ``checked`` is the number the target is evaluated on (the ratio, the
    measured value itself, or a difference), so the verdict can be audited.
    ``status`` is "ok", "n/a" (the feature does not exist yet) or "error".
    """

    id: str
    title: str
    unit: str = ""
    measured: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: str = ""
    checked: float | None = None
    met: bool | None = None
    status: str = "ok"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def fmt(value: Any, digits: int = 3) -> str:
    """A compact number for the table (``-`` for None/NaN)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{max(1, digits - len(str(int(abs(value)))))}f}"
    return str(value)


DEFAULT_PARAMS: dict[str, float] = {
    "stream_s": 60,  # P1..P4, P8 stream windows
    "control_s": 30,  # P3 control-loop window
    "cpu_rounds": 3,  # P2/P3: extra interleaved rounds (SDK, bare, SDK control loop)
    "cpu_window_s": 20,  # P2/P3: window of each extra round
    "connects": 20,  # P5 connects per client kind
    "starts": 10,  # P6 starts per client kind
    "p7_stream_s": 600,  # P7 stream length
    "p7_warmup_s": 30,  # P7 RSS baseline taken after this
    "p7_cycles": 100,  # P7 connect/disconnect cycles
    "encode_s": 30,  # bare encode run (P10's encode cost)
    "p8_window_s": 20,  # P8: each of the interleaved server-stream and bare-encode windows
    "p8_rounds": 3,  # P8: rounds of (stream, encode)
    "p9_window_s": 15,  # P9 measuring window per step
    "p9_max": 6,  # P9 most sessions tried
    "p10_window_s": 20,  # P10 window per phase (alone, with spectators, alone again)
    "p10_spectators": 4,  # P10 spectators added
    "p11_window_s": 30,  # P11 window per setting
    "warmup_s": 3,  # warm-up before every stream window
}
"""Full-run parameters; ``--quick`` uses :data:`QUICK_PARAMS`, ``--param NAME=VALUE`` overrides either."""

QUICK_PARAMS: dict[str, float] = {
    "stream_s": 5,
    "control_s": 5,
    "cpu_rounds": 1,
    "cpu_window_s": 4,
    "connects": 3,
    "starts": 3,
    "p7_stream_s": 10,
    "p7_warmup_s": 3,
    "p7_cycles": 10,
    "encode_s": 5,
    "p8_window_s": 4,
    "p8_rounds": 1,
    "p9_window_s": 5,
    "p9_max": 3,
    "p10_window_s": 4,
    "p10_spectators": 2,
    "p11_window_s": 5,
    "warmup_s": 1,
}


class Context:
    """What scenarios use: parameters, the server, cached worker runs, the probe and the progress log."""

    def __init__(self, out: Path, *, quick: bool = False, params: Mapping[str, float] | None = None,
                 codec: str | None = None, p11_config: Mapping[str, Any] | None = None, verbose: bool = True) -> None:
        """Results go to ``out``; ``codec`` forces the bare-encode codec ("libvpx"/"libx264");
        ``p11_config`` gives P11's server overrides as ``{"on": {...}, "off": {...}}``."""
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "harness.log"
        self.log_path.write_text(f"benchmark log, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.quick = quick
        self.params = dict(QUICK_PARAMS if quick else DEFAULT_PARAMS)
        self.params.update(params or {})
        self.codec_override = codec
        self.p11_config = dict(p11_config) if p11_config else None
        self.verbose = verbose
        self._server: ServerHandle | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._errors: dict[str, str] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.server_usage: list[dict[str, Any]] = []
        self._probe: dict[str, Any] | None = None
        self.started = time.monotonic()

    def param(self, name: str) -> float:
        """A run parameter (seconds, counts)."""
        return self.params[name]

    def log(self, message: str) -> None:
        """Progress on stderr (and in the log)."""
        line = f"[{time.monotonic() - self.started:7.1f}s] {message}"
        if self.verbose:
            print(line, file=sys.stderr, flush=True)
        with open(self.log_path, "a") as handle:
            handle.write(line + "\n")

    # -- servers ---------------------------------------------------------------------------

    def server(self, fps: float = 20.0, **overrides: Any) -> dict[str, Any]:
        """A running server with this configuration (the current one is reused if it matches)."""
        config = {"fps": float(fps), **BASE_SERVER_CONFIG, **overrides}
        if self._server is not None and self._server.config == config and self._server.process.poll() is None:
            return self._server.description()
        self.stop_server()
        self.log(f"starting server {config}")
        self._server = ServerHandle(config, self.log_path)
        time.sleep(1.0)  # let it settle (idle scene built) before anything is measured
        return self._server.description()

    def server_config_fields(self) -> list[str]:
        """The ServerConfig fields the server knows (for feature checks)."""
        self.server()
        assert self._server is not None
        return list(self._server.info.get("config_fields", []))

    def stop_server(self) -> None:
        """Stop the current server, if any."""
        if self._server is not None:
            self.server_usage.append({"config": self._server.config, **self._server.usage()})
            self._server.stop()
            self._server = None

    # -- workloads -------------------------------------------------------------------------

    def run(self, target: str, timeout: float, server: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run one workload now (not cached); ``server`` is passed as the workload's ``server`` argument."""
        if server is not None:
            kwargs["server"] = server
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        worker = Worker(target, kwargs, self.log_path)
        try:
            result = worker.result(timeout)
        finally:
            self.log(f"  {target} took {time.monotonic() - started:.1f} s (load {load_before:.2f} -> {os.getloadavg()[0]:.2f})")
        # The 1-minute load average around the run: other processes on the machine skew it.
        result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        return result

    def measure(self, key: str, target: str, timeout: float, server_config: Mapping[str, Any] | None = None,
                *, with_server: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Run a workload once per harness run and cache it under ``key`` (errors are cached too).

        The workload gets the server (started with ``server_config``, default
        20 fps) as its ``server`` argument unless ``with_server`` is False.
        """
        if key in self._cache:
            return self._cache[key]
        if key in self._errors:
            raise WorkerError(self._errors[key])
        self.log(f"measuring {key}")
        server = self.server(**dict(server_config or {"fps": 20.0})) if with_server else None
        try:
            result = self.run(target, timeout, server=server, **kwargs)
        except WorkerError as exc:
            self._errors[key] = str(exc)
            self.log(f"  {key} failed: {exc}")
            raise
        self._cache[key] = result
        self.runs[key] = result
        return result

    def start_workers(self, target: str, kwargs_list: list[dict[str, Any]]) -> list[Worker]:
        """Start several workers at once (P9's concurrent sessions)."""
        return [Worker(target, kwargs, self.log_path) for kwargs in kwargs_list]

    # -- shared runs -----------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """What the 20 fps server does: negotiated codec, frame size, stamp, broadcast support."""
        if self._probe is None:
            self._probe = self.measure("probe", "benchmarks.bare_client:probe", 60)
        return self._probe

    def encoder_codec(self) -> str:
        """The PyAV encoder matching the server's negotiated codec (or the ``--codec`` override)."""
        from benchmarks.bare_encode import CODEC_FOR_SDP

        if self.codec_override:
            return self.codec_override
        sdp_codec = (self.probe().get("codec") or "").lower()
        if sdp_codec not in CODEC_FOR_SDP:
            raise WorkerError(f"the server negotiated {sdp_codec!r}; pass --codec libvpx|libx264")
        return CODEC_FOR_SDP[sdp_codec]

    def stream_run(self, client: str, fps: float = 20.0, mode: str = "frames", seconds: float | None = None,
                   tag: str = "") -> dict[str, Any]:
        """A stream window of ``client`` ("sdk" or "bare") at ``fps`` (cached; the default length is the
        shared one, ``stream_s``, or ``control_s`` for the SDK's "latest" mode)."""
        if seconds is None:
            seconds = self.param("stream_s") if mode == "frames" else self.param("control_s")
        key = f"{client}-stream-{mode}-{fps:g}fps-{seconds:g}s{tag}"
        target = "benchmarks.sdk_workloads:stream" if client == "sdk" else "benchmarks.bare_client:stream"
        kwargs: dict[str, Any] = {"fps": fps, "seconds": seconds, "warmup": self.param("warmup_s")}
        if client == "sdk":
            kwargs["mode"] = mode
        return self.measure(key, target, seconds + 90, {"fps": fps}, **kwargs)

    def cpu_rounds(self) -> dict[str, list[dict[str, Any]]]:
        """Client CPU samples at 20 fps for P2/P3: the shared 60 s runs plus ``cpu_rounds`` interleaved
        rounds of (SDK ``frames()``, bare, SDK 10 Hz ``latest_frame()``), each a fresh process.

        Repeating matters: a fresh bare-client process lands in one of two allocator regimes (glibc's
        dynamic mmap threshold), with ~0.6 ms/frame more CPU in page faults in one of them; figures
        use the best (least disturbed) run of each kind, and the details keep every run.
        """
        runs: dict[str, list[dict[str, Any]]] = {"sdk": [self.stream_run("sdk", 20.0)],
                                                  "bare": [self.stream_run("bare", 20.0)],
                                                  "latest": [self.stream_run("sdk", 20.0, mode="latest")]}
        window = self.param("cpu_window_s")
        for round_ in range(int(self.param("cpu_rounds"))):
            tag = f"-round{round_}"
            runs["sdk"].append(self.stream_run("sdk", 20.0, seconds=window, tag=tag))
            runs["bare"].append(self.stream_run("bare", 20.0, seconds=window, tag=tag))
            runs["latest"].append(self.stream_run("sdk", 20.0, mode="latest", seconds=window, tag=tag))
        return runs

    def encode_run(self, fps: float = 20.0, bitrate: int | None = None, seconds: float | None = None,
                   tag: str = "") -> dict[str, Any]:
        """The bare render + encode baseline at the server's codec, at ``bitrate`` (default: the server's)."""
        codec = self.encoder_codec()
        if bitrate is None:
            bitrate = int(self.server_config_value("video_bitrate", 2_500_000))
        seconds = self.param("encode_s") if seconds is None else seconds
        key = f"bare-encode-{codec}-{fps:g}fps-{bitrate}-{seconds:g}s{tag}"
        return self.measure(key, "benchmarks.bare_encode:encode", seconds + 60, with_server=False,
                            codec=codec, fps=fps, seconds=seconds, bitrate=bitrate)

    def server_config_value(self, name: str, default: Any) -> Any:
        """A configuration value of the running server (its defaults included)."""
        self.server()
        assert self._server is not None
        return self._server.info.get("config", {}).get(name, default)

    def close(self) -> None:
        """Stop the server."""
        self.stop_server()


Scenario = Callable[[Context], list[Figure]]


def guarded(ctx: Context, figure: Figure, body: Callable[[Figure], None]) -> Figure:
    """Fill ``figure`` with ``body``; a failure marks it "error" (with the reason) instead of stopping the run."""
    try:
        body(figure)
    except Exception as exc:  # one figure failing must not lose the others
        import traceback

        figure.status = "error"
        figure.met = None
        figure.note = f"{type(exc).__name__}: {exc}"[:400]
        ctx.log(f"{figure.id} failed: {figure.note}")
        with open(ctx.log_path, "a") as handle:
            handle.write(traceback.format_exc())
    return figure


def not_available(figure: Figure, reason: str) -> Figure:
    """Mark ``figure`` as not measurable yet (the feature is missing), with the reason."""
    figure.status = "n/a"
    figure.met = None
    figure.note = f"n/a (not implemented yet): {reason}"
    return figure


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b``, or None when either is missing or ``b`` is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b
