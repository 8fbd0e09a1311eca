"""Tools of the hostile-input tests: a well-behaved watcher, raw HTTP, a trickling server, bombs.

Everything here uses real sockets. The attacks are small functions so that
``tests/hostile_probe.py`` (run by hand, before and after a fix) and
``tests/test_hostile_input.py`` (the assertions) send exactly the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import struct
import threading
import time
import zlib
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import attrs
from aiortc.rtcsctptransport import DATA_CHANNEL_OPEN, WEBRTC_DCEP, WEBRTC_STRING

from odyssey_sync import Odyssey, VideoFrame
from odyssey_sync.stamp import read_stamp

__all__ = [
    "WEBRTC_DCEP",
    "WEBRTC_STRING",
    "Gaps",
    "HttpAnswer",
    "TrickleServer",
    "Watcher",
    "channel_open_message",
    "nested_json",
    "never_connecting_offer",
    "png_bomb",
    "post",
    "rss_mib",
    "send_raw_data_channel",
]

MIB = 1024 * 1024


def rss_mib() -> float:
    """This process's resident set size, in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# -- a well-behaved client --------------------------------------------------------------------


@attrs.frozen
class Gaps:
    """What a :class:`Watcher` saw during one window.

    ``worst_ms``: the longest time between the server's renders of two
    consecutive frames the client received (from the frames' stamps), so a
    stall anywhere on the server's side shows, lost frames included, while the
    client's own scheduling does not. ``arrival_worst_ms``: the longest time
    between two arrivals at the client (which a busy machine adds to).
    """

    worst_ms: float
    arrival_worst_ms: float
    frames: int
    seconds: float


class Watcher:
    """A client streaming on its own key; measures the worst gaps between the frames it receives.

    Arrival times are ``frame.received_at`` (taken on the client's loop
    thread when the frame is decoded), so a slow handler does not count;
    render times are read from each frame's stamp (:func:`odyssey_sync.stamp.read_stamp`).
    """

    def __init__(self, url: str, api_key: str, *, prompt: str = "A calm lake at dawn") -> None:
        """Prepare a client of ``url``; :meth:`start` connects and starts streaming."""
        self.client = Odyssey(api_key=api_key, api_url=url, timeout=20)
        self._prompt = prompt
        self._arrivals: list[float] = []
        self._rendered: list[int | None] = []
        self._changed = threading.Condition()
        self._first = 0
        self._began = time.monotonic()

    def start(self) -> Watcher:
        """Connect, start a stream and wait for its first frames."""
        self.client.connect(on_video_frame=self._on_frame)
        self.client.start_stream(self._prompt, portrait=False)
        self.wait_frames(10, timeout=10)
        return self

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()

    def _on_frame(self, frame: VideoFrame) -> None:
        stamp = read_stamp(frame.data)
        with self._changed:
            self._arrivals.append(frame.received_at)
            self._rendered.append(stamp.time_ms if stamp is not None else None)
            self._changed.notify_all()

    def count(self) -> int:
        """Frames received so far."""
        with self._changed:
            return len(self._arrivals)

    def wait_frames(self, more: int, *, timeout: float) -> bool:
        """Wait until ``more`` frames arrive after now; whether they did in time."""
        with self._changed:
            target = len(self._arrivals) + more
            return self._changed.wait_for(lambda: len(self._arrivals) >= target, timeout)

    def begin(self) -> None:
        """Start measuring (one window at a time)."""
        with self._changed:
            self._first = max(0, len(self._arrivals) - 1)
            self._began = time.monotonic()

    def end(self) -> Gaps:
        """Stop measuring, once five more frames have arrived (or 5 s passed): the worst gap since :meth:`begin`.

        Waiting for those frames measures a stall the attack caused whole,
        and ``frames`` counting them shows the client kept receiving.
        """
        self.wait_frames(5, timeout=5)
        with self._changed:
            arrivals = self._arrivals[self._first :]
            rendered = [t for t in self._rendered[self._first :] if t is not None]
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
        # Still waiting for a frame at the end counts as a gap too.
        tail = time.monotonic() - arrivals[-1] if arrivals else 0.0
        render_gaps = [(b - a) % 2**32 for a, b in zip(rendered, rendered[1:])]  # stamps count ms modulo 2**32
        return Gaps(
            worst_ms=float(max([*render_gaps, tail * 1000])),
            arrival_worst_ms=max([*gaps, tail]) * 1000,
            frames=max(0, len(arrivals) - 1),
            seconds=time.monotonic() - self._began,
        )

    @contextlib.contextmanager
    def window(self) -> Iterator[list[Gaps]]:
        """Measure the block: yields a list that holds one :class:`Gaps` once the block is done."""
        result: list[Gaps] = []
        self.begin()
        yield result
        result.append(self.end())


# -- raw HTTP ---------------------------------------------------------------------------------


@attrs.frozen
class HttpAnswer:
    """Status, body and time of one raw HTTP exchange (``status`` 0: the connection was cut)."""

    status: int
    body: bytes
    seconds: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def detail(self) -> str:
        """The ``detail`` of a JSON error body, or the body as text."""
        try:
            value = self.json()
        except ValueError:
            return self.body.decode("utf-8", "replace")
        return str(value.get("detail")) if isinstance(value, dict) else repr(value)


def post(
    base_url: str,
    path: str,
    body: bytes | Iterable[bytes],
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    timeout: float = 60.0,
) -> HttpAnswer:
    """One request over a fresh connection; an iterable body is sent chunked (no Content-Length)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    began = time.monotonic()
    try:
        sent = {"Content-Type": content_type, **(headers or {})}
        if isinstance(body, (bytes, bytearray)):
            connection.request(method, path, body=bytes(body), headers=sent)
        else:
            connection.request(method, path, body=body, headers=sent, encode_chunked=True)
        response = connection.getresponse()
        data = response.read()
        return HttpAnswer(response.status, data, time.monotonic() - began)
    except (ConnectionError, http.client.HTTPException, TimeoutError):
        return HttpAnswer(0, b"", time.monotonic() - began)
    finally:
        connection.close()


def nested_json(depth: int) -> bytes:
    """``[[[...]]]``, ``depth`` deep: valid JSON that a recursive parser cannot take."""
    return b"[" * depth + b"]" * depth


async def send_raw_data_channel(channel: Any, ppid: int, payload: bytes) -> None:
    """Send ``payload`` on an aiortc ``channel`` as SCTP payload type ``ppid``, bypassing aiortc's own checks
    (its ``send()`` always encodes a string as UTF-8): what a crafted client can put on the wire."""
    transport = channel.transport
    transport._data_channel_queue.append((channel, ppid, payload))
    await transport._data_channel_flush()


def channel_open_message(label: str) -> bytes:
    """A DCEP DATA_CHANNEL_OPEN for a reliable, ordered channel named ``label`` (RFC 8832)."""
    encoded = label.encode()
    return struct.pack("!BBHLHH", DATA_CHANNEL_OPEN, 0, 0, 0, len(encoded), 0) + encoded


# -- a server that trickles -------------------------------------------------------------------


class TrickleServer:
    """A TCP server on 127.0.0.1 that answers every request one byte at a time, forever.

    ``mode="headers"``: a status line, then one header whose value never
    ends. ``mode="body"``: complete headers announcing ``body_bytes`` of JSON,
    then the body a byte per ``interval_s``. ``mode="big"``: complete headers
    and ``body_bytes`` of a valid JSON document sent at full speed
    (Content-Length set unless ``chunked``). With ``access_token``,
    ``POST /auth/token`` is answered at once with it, so calls that sign in
    first reach the trickling endpoint.
    """

    def __init__(
        self,
        mode: str = "headers",
        *,
        interval_s: float = 0.05,
        body_bytes: int = 1_000_000,
        chunked: bool = False,
        access_token: str | None = None,
    ) -> None:
        """Configure; :meth:`start` listens."""
        if mode not in ("headers", "body", "big"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.interval_s = interval_s
        self.body_bytes = body_bytes
        self.chunked = chunked
        self.access_token = access_token
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self.requests = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> TrickleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> TrickleServer:
        """Accept connections on a thread of its own."""
        thread = threading.Thread(target=self._accept, name="trickle-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Close every socket and join the threads."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), name="trickle-serve", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        try:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                received += chunk
            self.requests += 1
            if self.access_token is not None and received.startswith(b"POST /auth/token "):
                body = json.dumps({"access_token": self.access_token, "expires_in": 3600}).encode()
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
                )
                return
            if self.mode == "big":
                self._send_big(connection)
                return
            if self.mode == "headers":
                head, trickled = b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"
            else:
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {self.body_bytes}\r\n\r\n"
                ).encode()
                trickled = b" "
            connection.sendall(head)
            while not self._stop.wait(self.interval_s):
                connection.sendall(trickled)
        except OSError:
            return

    def _send_big(self, connection: socket.socket) -> None:
        piece = b'"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",' * 1024
        count = max(1, self.body_bytes // len(piece))
        total = 1 + len(piece) * count + len(b'"end"]')
        framing = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {total}"
        connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())

        def send(data: bytes) -> None:
            connection.sendall(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)

        send(b"[")
        for _ in range(count):
            if self._stop.is_set():
                return
            send(piece)
        send(b'"end"]')
        if self.chunked:
            connection.sendall(b"0\r\n\r\n")


# -- bombs and offers -------------------------------------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` black pixels, about 1/1000 of its decoded size.

    One block of rows is deflated once and its output repeated (a full flush
    makes each block independent), so even a 16000x16000 bomb takes well under
    a second to build.
    """
    row = b"\x00" * (1 + 3 * width)
    rows_per_block = max(1, (4 * MIB) // len(row))
    blocks, rest = divmod(height, rows_per_block)
    compressor = zlib.compressobj(9)
    block = row * rows_per_block
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)  # no zlib header this time
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(block, adler)
    tail = row * rest
    adler = zlib.adler32(tail, adler)
    body = (first + again * (blocks - 1)) if blocks else first[:2]
    deflated = body + compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
    # The stream's own trailer is the adler32 of the one block it saw: replace it with the real one.
    idat = deflated[:-4] + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def never_connecting_offer() -> str:
    """A real recvonly video offer from a peer that is closed at once: answering it never connects."""

    async def make() -> str:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


class FakeWhep:
    """A WHEP endpoint that answers as told: ``answers[name] = [(status, body, headers), ...]``.

    ``GET /config`` gives no ICE servers; ``POST /broadcast/<name>/whep``
    gives the next scripted answer (the last one repeats) with a
    ``Location``; the token is not checked. ``posts[name]`` counts the offers.
    """

    def __init__(self) -> None:
        """Nothing listens until entered."""
        self.answers: dict[str, list[tuple[int, bytes, dict[str, str]]]] = {}
        self.posts: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-whep", daemon=True)
        self._runner: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeWhep:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        from aiohttp import web

        async def config(request: web.Request) -> web.Response:
            return web.json_response({"iceServers": []})

        async def whep(request: web.Request) -> web.Response:
            await request.read()
            name = request.match_info["name"]
            self.posts[name] = self.posts.get(name, 0) + 1
            answers = self.answers[name]
            status, body, headers = answers.pop(0) if len(answers) > 1 else answers[0]
            return web.Response(status=status, body=body, headers={"Location": "/gone", **headers})

        app = web.Application()
        app.router.add_get("/config", config)
        app.router.add_post("/broadcast/{name}/whep", whep)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]


class QuietAttacker:
    """A signed-in session that takes no video: its answer marks the video inactive.

    So the attacks it sends are the only load it adds, and a frame gap the
    watcher sees is the server's doing. Use as ``async with QuietAttacker(url, key) as attacker``.
    """

    def __init__(self, base_url: str, api_key: str) -> None:
        """Prepare; entering the context connects."""
        from raw_client import RawClient

        self._client = RawClient(base_url, api_key)
        self._pc: Any = None
        self.ws: Any = None
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self._inbound: Any = None
        self._opened = asyncio.Event()

    async def __aenter__(self) -> QuietAttacker:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from odyssey_sync import protocol

        await self._client.authenticate()
        info = await self._client.request_session()
        token = await self._client.session_token(info["session_id"])
        self.ws = await self._client.open_signaling(info["signalling_url"], info["session_id"], token)
        offer = await asyncio.wait_for(self.ws.receive_json(), 15)
        pc = self._pc = RTCPeerConnection()

        @pc.on("datachannel")
        def on_channel(channel: Any) -> None:
            if channel.label == protocol.STREAMER_TO_CLIENT:
                channel.on("message", self.messages.put_nowait)
            else:
                self._inbound = channel
                self._opened.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            transceiver.direction = "inactive"
        await pc.setLocalDescription(await pc.createAnswer())
        await self.ws.send_str(protocol.encode(protocol.answer(pc.localDescription.sdp)))
        await asyncio.wait_for(self._opened.wait(), 15)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close(code=1000)
        if self._pc is not None:
            await self._pc.close()
        await self._client.close()

    async def send_signaling(self, text: str) -> None:
        """Send ``text`` as one signaling message."""
        await self.ws.send_str(text)

    def send(self, text: str) -> None:
        """Send ``text`` on ``clientToStreamer``."""
        self._inbound.send(text)

    async def reply(self, timeout: float = 15.0) -> dict[str, Any]:
        """The next message on ``streamerToClient``."""
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.messages.get(), timeout))
        return message


# -- attacks from a process of their own ------------------------------------------------------
#
# An attacker in the test's process would share its GIL: building and sending a 39 MB body would
# stall the watcher and the server as much as the server's own handling does. So attacks run in a
# spawned child process: it prepares (builds the body, signs in), reports ready, waits for "go",
# attacks, and sends back what it got.


class Go:
    """The child's side of the hand-shake: :meth:`ready` once prepared, then :meth:`wait` for the go."""

    def __init__(self, ready: Any, go: Any) -> None:
        self._ready = ready
        self._go = go

    def ready(self) -> None:
        """Tell the parent the attack is prepared."""
        self._ready.set()

    def wait(self, timeout: float = 60.0) -> None:
        """Block until the parent says go."""
        if not self._go.wait(timeout):
            raise TimeoutError("the parent never said go")


def _child_main(target: Any, ready: Any, go: Any, results: Any, args: tuple[Any, ...]) -> None:
    try:
        results.put(("ok", target(Go(ready, go), *args)))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


class ChildAttack:
    """An attack prepared in a spawned process; :meth:`launch` it, then read its :meth:`result`."""

    def __init__(self, target: Any, *args: Any) -> None:
        """Start the child: it prepares ``target(go, *args)`` and waits to be launched."""
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._go = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=_child_main, args=(target, self._ready, self._go, self._results, args), daemon=True
        )
        self._process.start()

    def __enter__(self) -> ChildAttack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the child has prepared (raises if it failed or took too long)."""
        if not self._ready.wait(timeout):
            if not self._results.empty():
                raise RuntimeError(f"the attack failed while preparing: {self._results.get()[1]}")
            raise TimeoutError("the attack did not get ready in time")

    def launch(self) -> None:
        """Tell the child to attack now."""
        self._go.set()

    def result(self, timeout: float = 120.0) -> Any:
        """What the attack returned (raises with the child's error if it failed)."""
        import queue

        try:
            status, value = self._results.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("the attack did not finish in time") from None
        if status != "ok":
            raise RuntimeError(f"the attack failed: {value}")
        return value

    def close(self) -> None:
        """End the child process."""
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def json_many_values(size: int, prefix: bytes = b'{"api_key":"ody_x","pad":[', suffix: bytes = b"0]}") -> bytes:
    """A valid JSON object of about ``size`` bytes made of small numbers: the slowest kind to parse."""
    return prefix + b"0," * ((size - len(prefix) - len(suffix)) // 2) + suffix


def attack_post(go: Go, base_url: str, path: str, body: tuple[str, int], headers: dict[str, str]) -> list[HttpAnswer]:
    """POST a built body: ``("values", size)`` many small values, ``("event", size)`` a telemetry
    event with a huge name, ``("script", size)`` a job script of numbers; ``repeat`` times."""
    kind, size = body
    if kind == "values":
        data = json_many_values(size)
    elif kind == "event":
        data = b'{"events":[{"event":"' + b"A" * size + b'"}]}'
    elif kind == "script":
        data = json_many_values(size, prefix=b'{"portrait":true,"script":[', suffix=b"0]}")
    else:
        raise ValueError(kind)
    repeat = int(headers.pop("X-Repeat", "1"))
    go.ready()
    go.wait()
    return [post(base_url, path, data, headers=headers) for _ in range(repeat)]


def attack_signaling(go: Go, base_url: str, api_key: str, message: dict[str, Any], channel: str = "signaling") -> Any:
    """Sign in quietly, then send ``message`` (on signaling, or the data channel) and return the reply."""

    async def run() -> Any:
        async with QuietAttacker(base_url, api_key) as attacker:
            text = json.dumps(message)
            go.ready()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            began = time.monotonic()
            if channel == "signaling":
                await attacker.send_signaling(text)
            else:
                attacker.send(text)
            try:
                reply: Any = await attacker.reply(timeout=30)
            except asyncio.TimeoutError:
                reply = "no reply in 30 s"
            return reply, time.monotonic() - began

    return asyncio.run(run())


def attack_whep_flood(go: Go, base_url: str, path: str, count: int) -> tuple[list[int], float]:
    """POST ``count`` offers that never connect, as fast as answers come; their statuses and the seconds taken."""
    offer = never_connecting_offer().encode()
    go.ready()
    go.wait()
    began = time.monotonic()
    statuses = [post(base_url, path, offer, content_type="application/sdp").status for _ in range(count)]
    return statuses, time.monotonic() - began


def _watch_in_child(connection: Any, url: str, api_key: str) -> None:
    """The child's side of :class:`RemoteWatcher`: stream, and answer "begin", "end", "count", ("wait", n, s), "stop"."""
    watcher = Watcher(url, api_key)
    try:
        watcher.start()
        connection.send(("started", watcher.count()))
        while True:
            command = connection.recv()
            if command == "begin":
                watcher.begin()
                connection.send(("begun", watcher.count()))
            elif command == "end":
                connection.send(("ended", watcher.end()))
            elif command == "count":
                connection.send(("count", watcher.count()))
            elif isinstance(command, tuple) and command[0] == "wait":
                connection.send(("waited", watcher.wait_frames(command[1], timeout=command[2])))
            else:
                break
    except BaseException as exc:
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        watcher.stop()
        connection.close()


class RemoteWatcher:
    """A :class:`Watcher` in a process of its own, so the test's process (and its GIL) holds only the server.

    Arrival times are ``time.monotonic()`` of the child, the worst gap computed there.
    """

    def __init__(self, url: str, api_key: str) -> None:
        """Spawn the child; :meth:`start` waits until it streams."""
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_watch_in_child, args=(child, url, api_key), daemon=True)
        self._process.start()

    def _ask(self, command: Any, timeout: float = 60.0) -> Any:
        self._connection.send(command)
        if not self._connection.poll(timeout):
            raise TimeoutError(f"the watcher did not answer {command!r}")
        kind, value = self._connection.recv()
        if kind == "error":
            raise RuntimeError(f"the watcher failed: {value}")
        return value

    def start(self) -> RemoteWatcher:
        """Wait until the child streams."""
        if not self._connection.poll(60):
            raise TimeoutError("the watcher did not start streaming")
        kind, value = self._connection.recv()
        if kind == "error":
            raise RuntimeError(f"the watcher failed: {value}")
        return self

    def count(self) -> int:
        """Frames the child has received."""
        return int(self._ask("count"))

    def wait_frames(self, more: int, *, timeout: float) -> bool:
        """Wait until ``more`` frames arrived after now; whether they did in time."""
        return bool(self._ask(("wait", more, timeout), timeout + 10))

    @contextlib.contextmanager
    def window(self) -> Iterator[list[Gaps]]:
        """As :meth:`Watcher.window`, measured in the child."""
        result: list[Gaps] = []
        self._ask("begin")
        yield result
        result.append(self._ask("end"))

    def stop(self) -> None:
        """Stop streaming and end the child."""
        with contextlib.suppress(OSError, BrokenPipeError):
            self._connection.send("stop")
        self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


def fetch_big_reply(go: Go, url: str) -> tuple[str, float, float]:
    """In a fresh process: ``GET <url>/big`` through :class:`~odyssey_sync.rest.RestClient`.

    Returns what happened, the seconds it took and how much the process's
    peak RSS grew (MiB), which a process of its own measures exactly.
    """
    import resource

    from odyssey_sync.rest import RestClient

    rest = RestClient(url, None, timeout=60)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    go.ready()
    go.wait()
    began = time.monotonic()
    try:
        value = rest.request_json("GET", "/big", auth=False, timeout=60)
        outcome = f"returned a {type(value).__name__}"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - began
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return outcome, seconds, grown
