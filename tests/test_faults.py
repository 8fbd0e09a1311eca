"""Faults injected with the local server's knobs, all on loopback.

A fatal fault ends every blocked call and puller with a typed error within
2 s of the fault becoming noticeable, reports it once (``on_error(exc,
fatal=True)`` then ``on_disconnected``), leaves the status FAILED, leaves no
thread or socket behind, and the same client connects again. Non-fatal faults
(a message that is not JSON, a reply that never comes, a handler that raises
or blocks) leave the connection up and lose nothing.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Any, Callable, Iterator

import attrs
import pytest
from helpers import odyssey_threads

from odyssey_sync import (
    AccountSuspendedError,
    AdvancedConfig,
    ConcurrentLimitReachedError,
    ConnectionStatus,
    MonthlyLimitReachedError,
    Odyssey,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    RateLimitError,
    StreamDurationExceededError,
    _media,
)
from odyssey_sync.local import LocalOdyssey

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

WAKE_S = 2.0
"""Every blocked call ends within this many seconds of the fault being noticeable."""

FAST_RETRIES = AdvancedConfig(max_retries=1, initial_retry_delay_ms=50, max_retry_delay_ms=50, queue_timeout_s=5)
SUBPROCESS_KEY = "ody_faults_subprocess_key_0001"


# -- helpers ----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


class Recorder:
    """Thread-safe record of every handler call of one connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: list[tuple[BaseException, bool]] = []
        self.stream_errors: list[tuple[str, str]] = []
        self.statuses: list[ConnectionStatus] = []
        self.connects = 0
        self.disconnects = 0
        self.disconnected = threading.Event()

    def _add(self, attribute: str, value: Any) -> None:
        with self._lock:
            getattr(self, attribute).append(value)

    def _on_connected(self) -> None:
        with self._lock:
            self.connects += 1

    def _on_disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1
        self.disconnected.set()

    def handlers(self) -> dict[str, Any]:
        """The handler keyword arguments for ``connect()``."""
        return {
            "on_connected": self._on_connected,
            "on_disconnected": self._on_disconnected,
            "on_error": lambda exc, fatal: self._add("errors", (exc, fatal)),
            "on_stream_error": lambda reason, message: self._add("stream_errors", (reason, message)),
            "on_status_change": lambda status, message: self._add("statuses", status),
        }


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory listing's own descriptor, already closed
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    return inodes


def _udp_inodes() -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as rows:
                inodes.update(row.split()[9] for row in list(rows)[1:])
        except OSError:
            continue
    return inodes


class Footprint:
    """The threads and sockets of this process at one moment, to find what a connection left behind.

    The local server's own threads (``local-odyssey*``) are not the client's.
    ``rest_sockets`` is the REST layer's keep-alive connection, kept on
    purpose for the next call: its client end, and its server end when the
    server runs in this process.
    """

    def __init__(self, rest_sockets: int) -> None:
        self.threads = set(threading.enumerate())
        self.sockets = _socket_inodes()
        self.rest_sockets = rest_sockets

    def leftovers(self) -> list[str]:
        """What is new since the snapshot, beyond the REST keep-alive; empty when clean."""
        threads = [
            t.name
            for t in threading.enumerate()
            if t not in self.threads and t.is_alive() and not t.name.startswith("local-odyssey")
        ]
        new = _socket_inodes() - self.sockets
        udp = new & _udp_inodes()
        found = [f"thread {name}" for name in threads] + [f"udp socket {inode}" for inode in sorted(udp)]
        if len(new - udp) > self.rest_sockets:
            found.append(f"{len(new - udp)} stream sockets (at most {self.rest_sockets} expected)")
        return found

    def wait_clean(self, timeout: float = 5.0) -> list[str]:
        """Wait (bounded) for everything new to go; what is still there then."""
        wait_for(lambda: not self.leftovers(), timeout)
        return self.leftovers()


def pending_requests(client: Odyssey) -> int:
    """Stream requests waiting for a reply (white-box: to know a call is really blocked)."""
    conn = client._conn
    session = conn.session if conn is not None else None
    return session.stream.pending if session is not None else 0


# -- a server in a process of its own ---------------------------------------------------------

_KNOB_SERVER = textwrap.dedent(
    """
    import sys, threading
    from odyssey_sync.local import LocalOdyssey
    server = LocalOdyssey(api_keys=[sys.argv[1]]).start()
    server.faults.ignore_message_types.add("update")
    print(f"Local Odyssey server running at {server.url}", flush=True)
    threading.Event().wait()
    """
)


class ServerProcess:
    """A local server in a child process, started from the CLI or a script; SIGKILL-able."""

    def __init__(self, args: list[str]) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.url = self._read_url(timeout=30)

    def _read_url(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        # Only the first line is read, so select() on the raw pipe cannot miss buffered text.
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if " running at " not in line:
            self.close()
            self._stderr.seek(0)
            raise RuntimeError(f"server process did not start: {line!r} {self._stderr.read()[-2000:]!r}")
        return line.split(" running at ", 1)[1].split()[0]

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL, as a crash: no close frames, no goodbyes."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        """Stop it if it still runs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


# -- fatal faults -------------------------------------------------------------------------------


@attrs.frozen
class Fault:
    """One fatal fault: how to arm and fire it, and what every blocked call must raise."""

    error: type[OdysseyError]
    reason: str | None = None
    arm: Callable[[LocalOdyssey], Any] | None = None
    """Set before the blocked calls start (knobs the calls themselves trigger)."""
    fire: Callable[[LocalOdyssey], Any] | None = None
    """Called once the calls are blocked."""
    during: str = "stream"
    """``"stream"``: a stream runs and interact() is blocked; ``"start"``: start_stream() is the request."""
    notice_s: float = 0.0
    """How long after the fault the client can notice it at the earliest (a watchdog's limit)."""
    where: str = "shared"
    """``"shared"`` server, ``"short"`` (1 s streams) or ``"process"`` (killed with SIGKILL)."""


def _send_error(reason: str) -> Callable[[LocalOdyssey], Any]:
    return lambda server: server.faults.send_signaling_error(reason)


def _knob(name: str, value: str) -> Callable[[LocalOdyssey], Any]:
    return lambda server: setattr(server.faults, name, value)


FATAL_FAULTS = {
    "server-process-killed": Fault(OdysseyConnectionError, where="process"),
    "signaling-dropped": Fault(OdysseyConnectionError, fire=lambda s: s.faults.drop_signaling()),
    "peer-failed": Fault(OdysseyConnectionError, fire=lambda s: s.faults.fail_peer()),
    **{
        f"signaling-error-{reason}": Fault(OdysseyConnectionError, reason=reason, fire=_send_error(reason))
        for reason in ("streamer_not_available", "streamer_disconnected", "duration_limit_reached", "unknown")
    },
    "session-timeout-during-start": Fault(
        StreamDurationExceededError, arm=_knob("stream_error_on_start", "session_timeout"), during="start"
    ),
    "session-timeout-during-interact": Fault(
        StreamDurationExceededError, arm=_knob("stream_error_on_interact", "session_timeout")
    ),
    "stream-duration-limit": Fault(StreamDurationExceededError, notice_s=1.0, where="short"),
    "video-stalled": Fault(
        OdysseyConnectionError, fire=lambda s: s.faults.stall_video(True), notice_s=_media.VIDEO_STALL_TIMEOUT_S
    ),
}


@pytest.fixture(scope="module")
def short_server() -> Iterator[LocalOdyssey]:
    """A server whose streams end after 1 s with ``session_timeout``."""
    with LocalOdyssey(max_stream_seconds=1.0) as local:
        yield local


@pytest.fixture
def process_server() -> Iterator[list[ServerProcess]]:
    """Server processes started by the test (the list), all stopped afterwards."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.close()


def _blocked_calls(client: Odyssey, fault: Fault) -> dict[str, Callable[[], Any]]:
    def get_frames() -> None:
        while True:
            client.get_frame(timeout=30)

    def iterate() -> None:
        for _ in client.frames(timeout=30):
            pass

    def request() -> Any:
        if fault.during == "start":
            return client.start_stream("A glacier calving", portrait=False, timeout=30)
        return client.interact("This update is never acknowledged", timeout=30)

    return {"request": request, "get_frame": get_frames, "frames": iterate}


@pytest.mark.parametrize("name", list(FATAL_FAULTS))
def test_fatal_fault(
    name: str,
    server: LocalOdyssey,
    short_server: LocalOdyssey,
    process_server: list[ServerProcess],
    record_property: Callable[[str, Any], None],
) -> None:
    fault = FATAL_FAULTS[name]
    local: LocalOdyssey | None
    if fault.where == "process":
        process_server.append(ServerProcess(["-c", _KNOB_SERVER, SUBPROCESS_KEY]))
        local, url, key = None, process_server[0].url, SUBPROCESS_KEY
    else:
        local = short_server if fault.where == "short" else server
        url, key = local.url, local.api_key
    footprint = Footprint(rest_sockets=1 if local is None else 2)
    recorder = Recorder()
    client = Odyssey(api_key=key, api_url=url, timeout=20, advanced=FAST_RETRIES)
    try:
        client.connect(**recorder.handlers())
        session_id = client.current_session_id
        assert session_id is not None
        stream_started = None
        if fault.during == "stream":
            stream_started = client.start_stream("A harbour at dusk", portrait=False)
            if local is not None and fault.arm is None:  # the update must reach the armed knob
                local.faults.ignore_message_types.add("update")

        outcomes: dict[str, tuple[BaseException | None, float, ConnectionStatus]] = {}
        pulling = {"get_frame": threading.Event(), "frames": threading.Event()}
        calls = _blocked_calls(client, fault)

        def run(call_name: str) -> None:
            try:
                if call_name in pulling:
                    client.get_frame(timeout=10)  # this puller is live before the fault
                    pulling[call_name].set()
                calls[call_name]()
                error: BaseException | None = None
            except BaseException as exc:  # recorded and checked below
                error = exc
            outcomes[call_name] = (error, time.monotonic(), client.current_status)

        workers = {n: threading.Thread(target=run, args=(n,), name=f"blocked-{n}") for n in calls}
        for puller in pulling:
            workers[puller].start()
        assert all(event.wait(10) for event in pulling.values()), outcomes
        if fault.arm is not None and local is not None:
            fault.arm(local)
        armed_at = time.monotonic()
        workers["request"].start()
        if fault.fire is not None or fault.where == "process":
            assert wait_for(lambda: pending_requests(client) >= 1, 10), "the request is not blocked"
        if fault.where == "process":
            fault_at = time.monotonic()
            process_server[0].kill()
        elif fault.fire is not None:
            assert local is not None
            fault_at = time.monotonic()
            fault.fire(local)
        elif fault.where == "short":
            assert stream_started is not None
            fault_at = stream_started.received_at
        else:
            fault_at = armed_at
        for worker in workers.values():
            worker.join(fault.notice_s + WAKE_S + 10)
        assert set(outcomes) == set(calls), f"calls still blocked: {set(calls) - set(outcomes)}"

        record_property("woken_s", {n: round(ended - fault_at, 3) for n, (_, ended, _) in outcomes.items()})
        ends_the_stream = fault.during == "stream" and issubclass(fault.error, StreamDurationExceededError)
        for call_name, (error, ended_at, status) in outcomes.items():
            if call_name == "frames" and ends_the_stream:
                # The duration limit ends the stream: an iteration over it ends cleanly (issue 9).
                assert error is None, f"frames() raised {error!r} at the stream duration limit"
            else:
                # A request gets the mapped error; other pullers always get a connection error caused by it.
                expected = fault.error if call_name == "request" else OdysseyConnectionError
                assert isinstance(error, expected), f"{call_name} raised {error!r}"
                if expected is not fault.error:
                    assert isinstance(error.__cause__, fault.error), f"{call_name} raised {error!r} caused by {error.__cause__!r}"
                if fault.reason is not None:
                    assert error.reason == fault.reason  # type: ignore[attr-defined]
            woken = ended_at - fault_at
            assert woken < fault.notice_s + WAKE_S, f"{call_name} woke {woken:.2f} s after the fault"
            assert woken > fault.notice_s - 1.0, f"{call_name} failed early, {woken:.2f} s after the fault"
            assert status is ConnectionStatus.FAILED, f"{call_name} woke with status {status}"

        assert recorder.disconnected.wait(5)
        assert client.current_status is ConnectionStatus.FAILED and not client.is_connected
        assert not footprint.wait_clean(), footprint.leftovers()
        assert [(type(e), fatal) for e, fatal in recorder.errors] == [(type(recorder.errors[0][0]), True)]
        assert isinstance(recorder.errors[0][0], fault.error)
        assert recorder.disconnects == 1
        assert recorder.statuses[-1] is ConnectionStatus.FAILED
        client.disconnect()  # after a failure: nothing more to report, the status stays
        assert client.current_status is ConnectionStatus.FAILED and recorder.disconnects == 1
        if local is not None:
            released = lambda: not local.session(session_id).held  # type: ignore[union-attr]  # noqa: E731
            assert local.wait_until(released, 10), "session not released"

        # The same client connects again.
        if local is not None:
            local.faults.reset()
        else:
            cli = ["-m", "odyssey_sync.local", "--port", str(process_server[0].port), "--api-key", key]
            process_server.append(ServerProcess(cli))
        again = Recorder()
        client.connect(**again.handlers())
        if fault.where != "short":  # a new 1 s stream could end before the frame is read
            client.start_stream("A second try", portrait=False)
        assert client.get_frame(timeout=10)
        client.disconnect()
        assert again.disconnected.wait(5) and again.disconnects == 1 and not again.errors
    finally:
        client.disconnect()


# -- a stalled video ----------------------------------------------------------------------------


def test_a_short_stall_is_not_fatal_and_an_idle_stream_never_trips_the_watchdog(
    server: LocalOdyssey, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 1.5
    monkeypatch.setattr(_media, "VIDEO_STALL_TIMEOUT_S", limit)
    recorder = Recorder()
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect(**recorder.handlers())
        # Idle (no stream, nobody pulling) for two watchdog periods: video still flows, nothing trips.
        assert not recorder.disconnected.wait(2 * limit)
        # A stall shorter than the limit: the connection survives and frames come back.
        resume = threading.Timer(limit / 3, server.faults.stall_video, args=(False,))
        server.faults.stall_video(True)
        resume.start()
        try:
            stalled_at = time.monotonic()
            frame = client.wait_for_frame(after=stalled_at + limit / 3, timeout=10)
        finally:
            resume.join()
        assert frame.received_at > stalled_at
        assert not recorder.disconnected.wait(limit + 0.5)
        assert client.is_connected and not recorder.errors


def test_default_stall_limit() -> None:
    assert _media.VIDEO_STALL_TIMEOUT_S == 5.0


# -- faults while connecting ---------------------------------------------------------------------

CONNECT_FAULTS = {
    "503-until-queue-timeout": (OdysseyConnectionError, "session_request_503", -1),
    **{
        f"429-{code}": (cls, "usage_error", code)
        for code, cls in (
            ("MONTHLY_LIMIT_REACHED", MonthlyLimitReachedError),
            ("CONCURRENT_LIMIT_REACHED", ConcurrentLimitReachedError),
            ("STREAM_DURATION_EXCEEDED", StreamDurationExceededError),
            ("ACCOUNT_SUSPENDED", AccountSuspendedError),
            ("RATE_LIMITED", RateLimitError),
        )
    },
}


@pytest.mark.parametrize("name", list(CONNECT_FAULTS))
def test_connect_fault(name: str, server: LocalOdyssey) -> None:
    cls, knob, value = CONNECT_FAULTS[name]
    footprint = Footprint(rest_sockets=2)
    recorder = Recorder()
    config = AdvancedConfig(queue_timeout_s=1.0)
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20, advanced=config) as client:
        setattr(server.faults, knob, value)
        began = time.monotonic()
        with pytest.raises(cls) as info:
            client.connect(**recorder.handlers())
        assert time.monotonic() - began < config.queue_timeout_s + WAKE_S
        assert str(info.value)
        assert client.current_status is ConnectionStatus.FAILED
        assert not footprint.wait_clean(), footprint.leftovers()
        assert [(e, fatal) for e, fatal in recorder.errors] == [(info.value, True)]
        assert recorder.connects == 0 and recorder.disconnects == 0  # never connected, so never disconnected
        server.faults.reset()
        client.connect()
        assert client.get_frame(timeout=10)


# -- non-fatal faults -----------------------------------------------------------------------------


def test_bad_messages_and_a_lost_reply_leave_the_connection_up(server: LocalOdyssey) -> None:
    recorder = Recorder()
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect(**recorder.handlers())
        client.start_stream("A busy market", portrait=False)
        garbage = ["this is not json", "[1, 2, 3]", '{"type": 7}', '{"type": "stream_started"}']
        acks: list[str] = []
        steering = threading.Thread(target=lambda: acks.append(client.interact("Lanterns light up")))
        steering.start()
        for text in garbage:  # while the interact is in flight
            server.faults.send_raw_data(text)
        steering.join(20)
        assert acks and "Lanterns light up" in acks[0]
        assert wait_for(lambda: len(recorder.errors) == len(garbage), 5), recorder.errors
        assert all(isinstance(e, OdysseyStreamError) and not fatal for e, fatal in recorder.errors)

        # A reply that never comes: the call times out, the next call gets its own reply.
        server.faults.ignore_message_types.add("update")
        began = time.monotonic()
        with pytest.raises(OdysseyTimeoutError, match="interact"):
            client.interact("Lost in the crowd", timeout=0.5)
        assert time.monotonic() - began < 0.5 + 0.5
        server.faults.ignore_message_types.clear()
        ack = client.interact("Rain starts to fall")
        assert "Rain starts to fall" in ack and "Lost" not in ack
        assert client.wait_for_frame(after=ack, timeout=10).received_at > ack.received_at
        client.end_stream()
        assert client.is_connected and recorder.disconnects == 0
        assert not any(fatal for _, fatal in recorder.errors)


def test_a_blocked_handler_stalls_neither_media_nor_other_handlers_nor_disconnect(
    server: LocalOdyssey, record_property: Callable[[str, Any], None]
) -> None:
    release_start = threading.Event()
    in_start = threading.Event()
    block_frames = threading.Event()
    release_frames = threading.Event()
    in_frame = threading.Event()
    order: list[str] = []
    handled_frames: list[int] = []
    errors: list[tuple[BaseException, bool]] = []
    disconnected = threading.Event()

    def on_stream_started(stream_id: str) -> None:
        order.append("started")
        in_start.set()
        release_start.wait(10)  # a handler stuck for up to 10 s

    def on_interact_acknowledged(prompt: str) -> None:
        order.append("ack")
        raise RuntimeError("a bug in user code")

    def on_stream_ended() -> None:
        order.append("ended")

    def on_video_frame(frame: Any) -> None:
        handled_frames.append(frame.connection_index)
        if block_frames.is_set():
            in_frame.set()
            release_frames.wait(10)

    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect(
            on_stream_started=on_stream_started,
            on_interact_acknowledged=on_interact_acknowledged,
            on_stream_ended=on_stream_ended,
            on_video_frame=on_video_frame,
            on_error=lambda e, fatal: errors.append((e, fatal)),
            on_disconnected=disconnected.set,
        )
        client.start_stream("A windmill", portrait=False)
        assert in_start.wait(5)
        try:
            # While the dispatcher is stuck: frames keep reaching pullers, requests keep working.
            first = client.get_frame(timeout=5)
            pulled = 1
            frame = first
            while frame.received_at < first.received_at + 1.5:
                frame = client.get_frame(timeout=2)
                pulled += 1
            assert pulled >= 10, f"only {pulled} frames in 1.5 s while a handler blocked"
            ack = client.interact("The sails turn faster")
            client.end_stream()
            assert order == ["started"], "later handlers wait their turn"
            frames_while_blocked = len(handled_frames)
        finally:
            release_start.set()
        assert wait_for(lambda: order == ["started", "ack", "ended"], 5), order
        assert wait_for(lambda: len(handled_frames) > frames_while_blocked + 5, 5), "frame handler resumed"
        assert [(type(e), fatal) for e, fatal in errors] == [(RuntimeError, False)]
        assert client.is_connected and "sails" in ack
        indexes = list(handled_frames)
        assert indexes == sorted(indexes), "frame handler calls stay in order"

        # disconnect() while a handler blocks is bounded and does not wait for it.
        block_frames.set()
        assert in_frame.wait(5)
        try:
            began = time.monotonic()
            client.disconnect()
            took = time.monotonic() - began
            record_property("disconnect_s", round(took, 3))
            assert took < 2.5, f"disconnect() took {took:.2f} s behind a blocked handler"
            assert client.current_status is ConnectionStatus.DISCONNECTED
            assert not disconnected.is_set(), "on_disconnected waits behind the blocked handler"
        finally:
            release_frames.set()
        assert disconnected.wait(5), "on_disconnected runs once the handler returns"
        assert wait_for(lambda: not odyssey_threads(), 5), [t.name for t in odyssey_threads()]
        client.connect()
        assert client.get_frame(timeout=10)


def test_disconnect_as_soon_as_a_failure_wakes_a_puller_keeps_the_report(server: LocalOdyssey) -> None:
    recorder = Recorder()
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect(**recorder.handlers())
        client.get_frame(timeout=10)
        woken: list[BaseException] = []

        def pull_then_disconnect() -> None:
            try:
                while True:
                    client.get_frame(timeout=30)
            except OdysseyError as exc:
                woken.append(exc)
                client.disconnect()  # at once, while the session is still tearing down

        puller = threading.Thread(target=pull_then_disconnect)
        puller.start()
        server.faults.drop_signaling()
        puller.join(10)
        assert woken and isinstance(woken[0], OdysseyConnectionError)
        assert recorder.disconnected.wait(5)
        assert wait_for(lambda: not odyssey_threads(), 5)
        assert client.current_status is ConnectionStatus.FAILED
        assert [fatal for _, fatal in recorder.errors] == [True] and recorder.disconnects == 1


def test_a_handler_that_exits_does_not_stop_delivery(server: LocalOdyssey) -> None:
    calls: list[int] = []
    errors: list[tuple[BaseException, bool]] = []
    enough = threading.Event()

    def on_video_frame(frame: Any) -> None:
        calls.append(frame.index)
        if len(calls) >= 5:
            enough.set()
        sys.exit("a handler that calls sys.exit() ends only its own call")

    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as client:
        client.connect(on_video_frame=on_video_frame, on_error=lambda e, fatal: errors.append((e, fatal)))
        assert enough.wait(10), "frame handler calls go on"
        assert client.is_connected
    assert errors and all(isinstance(e, SystemExit) and not fatal for e, fatal in errors)
