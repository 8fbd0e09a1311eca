"""Bad input, table-driven: every public call with wrong types and values, in the wrong state.

Each case names the exception and a phrase of its "what to do" message. The
call must fail before any network I/O (a guard makes any new socket
connection fail the test, and a spy sees every message a live session would
send), and the client must stay usable: the tests at the end connect and
stream with the very clients every case was tried on.
"""

from __future__ import annotations

import base64
import math
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs
import jwt
import numpy as np
import pytest
from helpers import odyssey_threads

from odyssey_sync import (
    AdvancedConfig,
    ConnectionStatus,
    Odyssey,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    images,
)
from odyssey_sync._session import Session
from odyssey_sync.local import LocalOdyssey

pytestmark = pytest.mark.timeout(60)

NAN, INF = math.nan, math.inf


@attrs.frozen
class Ctx:
    """What the cases use: the server, files on disk and a well-formed session token."""

    server: LocalOdyssey
    files: Path
    jwt: str

    def path(self, name: str) -> str:
        """A prepared file (see the ``ctx`` fixture)."""
        return str(self.files / name)


Call = Callable[[Odyssey, Ctx], Any]


@attrs.frozen
class Case:
    """One bad call: on which client, what it does, what it must raise and say."""

    where: str
    """``new`` (constructs its own client), ``idle`` (never connected), ``live`` (connected) or ``closed``."""
    call: Call
    error: type[BaseException] | tuple[type[BaseException], ...]
    says: str
    """A regular expression the message must match (the part that says what to do)."""


def _start(prompt: str = "A cat", **kwargs: Any) -> Call:
    return lambda c, x: c.start_stream(prompt, **kwargs)


def _credentials(**fields: Any) -> Call:
    return lambda c, x: c.connect_with_credentials({k: v(x) if callable(v) else v for k, v in fields.items()})


def _image(make: Callable[[Ctx], Any]) -> Call:
    return lambda c, x: c.start_stream("From a picture", portrait=False, image=make(x))


def _script(**kwargs: Any) -> Call:
    return lambda c, x: c.simulate(**kwargs)


def _interact(at: int) -> dict[str, Any]:
    return {"timestamp_ms": at, "interact": {"prompt": f"At {at} ms"}}


WS = "ws://127.0.0.1:9"
START = {"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}}
END = {"timestamp_ms": 6000, "end": {}}
TIMEOUT_VALUE = r"finite number of seconds >= 0 \(or None to wait forever\)"
TIMEOUT_TYPE = r"timeout must be a number of seconds or None"

CASES: dict[str, Case] = {
    # -- the constructor -------------------------------------------------------------------------
    "ctor-api_key-int": Case(
        "new", lambda c, x: Odyssey(api_key=123), TypeError, r"api_key must be a string or None"  # type: ignore[arg-type]
    ),
    "ctor-api_url-bytes": Case(
        "new", lambda c, x: Odyssey(api_url=b"http://x"), TypeError, r"api_url must be a string"  # type: ignore[arg-type]
    ),
    "ctor-api_url-scheme": Case(
        "new", lambda c, x: Odyssey(api_url="ftp://example.com"), ValueError, r"must start with http:// or https://"
    ),
    "ctor-timeout-negative": Case("new", lambda c, x: Odyssey(timeout=-1), ValueError, TIMEOUT_VALUE),
    "ctor-timeout-nan": Case("new", lambda c, x: Odyssey(timeout=NAN), ValueError, TIMEOUT_VALUE),
    "ctor-timeout-inf": Case("new", lambda c, x: Odyssey(timeout=INF), ValueError, TIMEOUT_VALUE),
    "ctor-timeout-str": Case("new", lambda c, x: Odyssey(timeout="30"), TypeError, TIMEOUT_TYPE),  # type: ignore[arg-type]
    "ctor-buffer_size-zero": Case("new", lambda c, x: Odyssey(buffer_size=0), ValueError, r"buffer_size must be an int >= 1"),
    "ctor-buffer_size-float": Case(
        "new", lambda c, x: Odyssey(buffer_size=2.5), ValueError, r"buffer_size must be an int >= 1"  # type: ignore[arg-type]
    ),
    "ctor-advanced-dict": Case(
        "new",
        lambda c, x: Odyssey(advanced={"max_retries": 1}),  # type: ignore[arg-type]
        TypeError,
        r"odyssey_sync\.AdvancedConfig",
    ),
    "ctor-advanced-negative": Case(
        "new", lambda c, x: AdvancedConfig(max_retries=-1), ValueError, r"max_retries must be a number >= 0"
    ),
    "ctor-misspelt-keyword": Case(
        "new", lambda c, x: Odyssey(apikey="ody_x"), TypeError, r"unexpected keyword argument 'apikey'"  # type: ignore[call-arg]
    ),
    "connect-without-api-key": Case(
        "new",
        lambda c, x: Odyssey(api_key="   ", api_url=x.server.url).connect(),
        OdysseyError,
        r"pass Odyssey\(api_key=\.\.\.\) or set ODYSSEY_API_KEY",
    ),
    "credentials-without-api-key": Case(
        "new",
        lambda c, x: Odyssey(api_key="", api_url=x.server.url).create_client_credentials(),
        OdysseyError,
        r"needs an API key",
    ),
    # -- connect() and its handlers ----------------------------------------------------------------
    "connect-unknown-handler": Case(
        "idle", lambda c, x: c.connect(on_frame=print), TypeError, r"unknown handler 'on_frame'; handlers are: on_connected"
    ),
    "connect-handler-not-callable": Case(
        "idle", lambda c, x: c.connect(on_error="log it"), TypeError, r"on_error must be callable or None"  # type: ignore[arg-type]
    ),
    "connect-handler-positional": Case(
        "idle", lambda c, x: c.connect(print), TypeError, r"positional argument"  # type: ignore[arg-type,misc]
    ),
    "connect-timeout-negative": Case("idle", lambda c, x: c.connect(timeout=-5), ValueError, TIMEOUT_VALUE),
    "connect-timeout-nan": Case("idle", lambda c, x: c.connect(timeout=NAN), ValueError, TIMEOUT_VALUE),
    "connect-timeout-str": Case("idle", lambda c, x: c.connect(timeout="10"), TypeError, TIMEOUT_TYPE),  # type: ignore[arg-type]
    "create_credentials-timeout-negative": Case(
        "idle", lambda c, x: c.create_client_credentials(timeout=-1), ValueError, TIMEOUT_VALUE
    ),
    # -- credentials ---------------------------------------------------------------------------------
    "credentials-str": Case(
        "idle",
        lambda c, x: c.connect_with_credentials("eyJ.a.b"),  # type: ignore[arg-type]
        TypeError,
        r"ClientCredentials or the dict from ClientCredentials\.to_dict\(\)",
    ),
    "credentials-none": Case(
        "idle",
        lambda c, x: c.connect_with_credentials(None),  # type: ignore[arg-type]
        TypeError,
        r"ClientCredentials or the dict",
    ),
    "credentials-empty-dict": Case(
        "idle", _credentials(), ValueError, r"missing 'signaling_url'; pass what create_client_credentials\(\) returned"
    ),
    "credentials-no-token": Case("idle", _credentials(signaling_url=WS), ValueError, r"missing 'session_token'"),
    "credentials-no-expiry": Case(
        "idle", _credentials(signaling_url=WS, session_token=lambda x: x.jwt), ValueError, r"missing 'expires_in'"
    ),
    "credentials-url-not-str": Case(
        "idle",
        _credentials(signaling_url=5, session_token=lambda x: x.jwt, expires_in=600),
        ValueError,
        r"signaling_url must be a non-empty URL",
    ),
    "credentials-blank-token": Case(
        "idle",
        _credentials(signaling_url=WS, session_token="  ", expires_in=600),
        ValueError,
        r"session_token must be a non-empty JWT",
    ),
    "jwt-not-three-parts": Case(
        "idle",
        _credentials(signaling_url=WS, session_token="not-a-jwt", expires_in=600),
        ValueError,
        r"not a JWT \(expected three dot-separated parts\)",
    ),
    "jwt-undecodable-payload": Case(
        "idle",
        _credentials(signaling_url=WS, session_token="a.@@@@.c", expires_in=600),
        ValueError,
        r"cannot be decoded; pass the token exactly as minted",
    ),
    "jwt-payload-not-object": Case(
        "idle",
        _credentials(signaling_url=WS, session_token="a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c", expires_in=600),
        ValueError,
        r"payload is not a JSON object",
    ),
    "jwt-without-session_id": Case(
        "idle",
        _credentials(signaling_url=WS, session_token=jwt.encode({"sub": "x"}, "k" * 32), expires_in=600),
        ValueError,
        r"no 'session_id' claim; mint it with /sessions/token",
    ),
    "credentials-unknown-handler": Case(
        "idle",
        lambda c, x: c.connect_with_credentials(
            {"signaling_url": WS, "session_token": x.jwt, "expires_in": 600}, on_video=print
        ),
        TypeError,
        r"unknown handler 'on_video'",
    ),
    # -- stream calls ------------------------------------------------------------------------------
    "start-prompt-int": Case(
        "idle", lambda c, x: c.start_stream(42), TypeError, r"prompt must be a string, not int"  # type: ignore[arg-type]
    ),
    "start-prompt-none": Case(
        "idle", lambda c, x: c.start_stream(None), TypeError, r"prompt must be a string, not NoneType"  # type: ignore[arg-type]
    ),
    "start-prompt-huge": Case("idle", _start("x" * 10_000), ValueError, r"keep it under 10000 \(a sentence or two works best\)"),
    "start-portrait-str": Case("idle", _start(portrait="yes"), TypeError, r"portrait must be True or False"),
    "start-broadcast-int": Case("idle", _start(broadcast=1), TypeError, r"broadcast must be True or False"),
    "start-bypass-str": Case(
        "idle", _start(bypass_prompt_expansion="no"), TypeError, r"bypass_prompt_expansion must be True or False"
    ),
    "start-timeout-negative": Case("idle", _start(timeout=-1), ValueError, TIMEOUT_VALUE),
    "interact-empty": Case("idle", lambda c, x: c.interact(""), ValueError, r"prompt is empty; describe what should happen"),
    "interact-whitespace": Case(
        "idle", lambda c, x: c.interact(" \n\t "), ValueError, r"prompt is empty; describe what should happen"
    ),
    "interact-huge": Case("idle", lambda c, x: c.interact("x" * 50_000), ValueError, r"keep it under 10000"),
    "interact-lone-surrogate": Case(
        "idle", lambda c, x: c.interact("Rain \ud800"), ValueError, r"lone surrogate \(U\+D800\).*send the text as UTF-8"
    ),
    "start-lone-surrogate": Case("idle", _start("A cat \udfff"), ValueError, r"not valid Unicode text: a lone surrogate"),
    "interact-too-many-bytes": Case(
        "idle", lambda c, x: c.interact("\u20ac" * 3000), ValueError, r"bytes once encoded.*shorten it"
    ),
    "interact-bytes": Case(
        "idle",
        lambda c, x: c.interact(b"The cat jumps"),  # type: ignore[arg-type]
        TypeError,
        r"prompt must be a string, not bytes",
    ),
    "interact-none": Case(
        "idle", lambda c, x: c.interact(None), TypeError, r"prompt must be a string"  # type: ignore[arg-type]
    ),
    "interact-timeout-nan": Case("idle", lambda c, x: c.interact("Rain", timeout=NAN), ValueError, TIMEOUT_VALUE),
    "interact-timeout-inf": Case("idle", lambda c, x: c.interact("Rain", timeout=INF), ValueError, TIMEOUT_VALUE),
    "interact-timeout-negative": Case("idle", lambda c, x: c.interact("Rain", timeout=-3), ValueError, TIMEOUT_VALUE),
    "end-timeout-str": Case(
        "idle", lambda c, x: c.end_stream(timeout="soon"), TypeError, TIMEOUT_TYPE  # type: ignore[arg-type]
    ),
    # -- frame pulling (arguments are checked before the connection state) -------------------------
    "get_frame-timeout-negative": Case("idle", lambda c, x: c.get_frame(timeout=-1), ValueError, TIMEOUT_VALUE),
    "get_frame-timeout-nan": Case("idle", lambda c, x: c.get_frame(timeout=NAN), ValueError, TIMEOUT_VALUE),
    "get_frame-timeout-str": Case(
        "idle", lambda c, x: c.get_frame(timeout="1"), TypeError, TIMEOUT_TYPE  # type: ignore[arg-type]
    ),
    "frames-limit-negative": Case("idle", lambda c, x: c.frames(limit=-1), ValueError, r"limit must be >= 0"),
    "frames-limit-float": Case(
        "idle", lambda c, x: c.frames(limit=2.5), TypeError, r"limit must be an int or None"  # type: ignore[arg-type]
    ),
    "frames-timeout-inf": Case("idle", lambda c, x: c.frames(timeout=INF), ValueError, TIMEOUT_VALUE),
    "wait_for_frame-after-str": Case(
        "idle",
        lambda c, x: c.wait_for_frame(after="x"),
        TypeError,
        r"after= takes a time\.monotonic\(\) value or the value returned by interact\(\)",
    ),
    "wait_for_frame-after-bool": Case(
        "idle", lambda c, x: c.wait_for_frame(after=True), TypeError, r"after= takes a time\.monotonic\(\) value"
    ),
    "wait_for_frame-after-nan": Case(
        "idle", lambda c, x: c.wait_for_frame(after=NAN), ValueError, r"after= must be a finite time\.monotonic\(\) value"
    ),
    "wait_for_frame-timeout-negative": Case(
        "idle", lambda c, x: c.wait_for_frame(timeout=-0.5), ValueError, TIMEOUT_VALUE
    ),
    "media-get_frame-timeout-negative": Case(
        "live", lambda c, x: c.media_stream.get_frame(timeout=-1), ValueError, TIMEOUT_VALUE  # type: ignore[union-attr]
    ),
    # -- images -------------------------------------------------------------------------------------
    "image-too-big-file": Case(
        "live", _image(lambda x: x.path("huge.jpg")), ValueError, r"the limit is 25 MB.*Downscale or re-encode it"
    ),
    "image-too-big-bytes": Case(
        "live", _image(lambda x: b"\xff\xd8\xff" + bytes(26 * 1024 * 1024)), ValueError, r"the limit is 25 MB"
    ),
    "image-truncated-jpeg": Case(
        "live", _image(lambda x: Path(x.path("truncated.jpg")).read_bytes()), ValueError, r"truncated"
    ),
    "image-tiff": Case(
        "live", _image(lambda x: x.path("picture.tiff")), ValueError, r"looks like TIFF.*Convert it to JPEG or PNG"
    ),
    "image-text-file": Case(
        "live", _image(lambda x: x.path("notes.txt")), ValueError, r"looks like text.*Convert it to JPEG or PNG"
    ),
    "image-empty-bytes": Case("live", _image(lambda x: b""), ValueError, r"Image is empty \(0 bytes\)"),
    "image-float-array": Case(
        "live", _image(lambda x: np.zeros((64, 64, 3), np.float32)), ValueError, r"dtype float32.*Convert it first"
    ),
    "image-channels-first": Case(
        "live", _image(lambda x: np.zeros((3, 64, 64), np.uint8)), ValueError, r"channels-last"
    ),
    "image-missing-path": Case(
        "live", _image(lambda x: x.path("missing.png")), ValueError, r"Image file not found.*Check the path"
    ),
    "image-directory": Case("live", _image(lambda x: str(x.files)), ValueError, r"is a directory"),
    "image-url": Case(
        "live", _image(lambda x: "https://example.com/cat.jpg"), ValueError, r"not downloaded.*pass its bytes"
    ),
    "image-bad-data-url": Case(
        "live", _image(lambda x: "data:image/png;base64,@@@@"), ValueError, r"not valid base64"
    ),
    "image-wrong-type": Case("live", _image(lambda x: 12345), TypeError, r"Unsupported image type int"),
    # -- calls in the wrong state -------------------------------------------------------------------
    "interact-before-connect": Case(
        "idle", lambda c, x: c.interact("Too early"), OdysseyStreamError, r"call connect\(\) first"
    ),
    "start-before-connect": Case("idle", _start(), OdysseyStreamError, r"call connect\(\) first"),
    "end-before-connect": Case("idle", lambda c, x: c.end_stream(), OdysseyStreamError, r"call connect\(\) first"),
    "get_frame-before-connect": Case(
        "idle", lambda c, x: c.get_frame(timeout=1), OdysseyConnectionError, r"call connect\(\) before pulling frames"
    ),
    "latest_frame-before-connect": Case(
        "idle", lambda c, x: c.latest_frame(), OdysseyConnectionError, r"call connect\(\) before pulling frames"
    ),
    "frames-before-connect": Case(
        "idle", lambda c, x: c.frames(limit=1), OdysseyConnectionError, r"call connect\(\) before pulling frames"
    ),
    "interact-before-start": Case(
        "live", lambda c, x: c.interact("No stream yet"), OdysseyStreamError, r"call start_stream\(\) before interact\(\)"
    ),
    "end-without-start": Case(
        "live", lambda c, x: c.end_stream(), OdysseyStreamError, r"nothing to end \(call start_stream\(\) first\)"
    ),
    "start-twice": Case(
        "live",
        lambda c, x: (c.start_stream("First", portrait=False), c.start_stream("Second")),
        OdysseyStreamError,
        r"call end_stream\(\) before starting another",
    ),
    "interact-after-disconnect": Case(
        "closed", lambda c, x: c.interact("Too late"), OdysseyStreamError, r"client is disconnected; call connect\(\) first"
    ),
    "start-after-disconnect": Case("closed", _start(), OdysseyStreamError, r"call connect\(\) first"),
    "end-after-disconnect": Case("closed", lambda c, x: c.end_stream(), OdysseyStreamError, r"call connect\(\) first"),
    "get_frame-after-disconnect": Case(
        "closed", lambda c, x: c.get_frame(timeout=1), OdysseyConnectionError, r"call connect\(\) to receive frames again"
    ),
}

if hasattr(Odyssey, "simulate"):
    CASES.update(
        {
            "script-none-given": Case("idle", _script(), ValueError, r"Exactly one of script, scripts or script_url"),
            "script-two-given": Case(
                "idle", _script(script=[START, END], script_url="https://example.com/s.json"), ValueError, r"Exactly one of"
            ),
            "script-not-a-list": Case(
                "idle", _script(script="start then end"), TypeError, r"script must be a list of entries"
            ),
            "script-empty": Case("idle", _script(script=[]), ValueError, r"needs a start entry at 0 and an end entry"),
            "script-no-start": Case(
                "idle", _script(script=[_interact(0), END]), ValueError, r"first entry must be"
            ),
            "script-no-end": Case("idle", _script(script=[START]), ValueError, r"last entry must be.*'end'"),
            "script-out-of-order": Case(
                "idle",
                _script(script=[START, _interact(4000), _interact(2000), END]),
                ValueError,
                r"chronological order",
            ),
            "script-empty-prompt": Case(
                "idle",
                _script(script=[{"timestamp_ms": 0, "start": {"prompt": "  "}}, END]),
                ValueError,
                r"prompt is empty; describe the scene",
            ),
            "script-too-long": Case(
                "idle", _script(script=[START, {"timestamp_ms": 10**7, "end": {}}]), ValueError, r"limit of one stream"
            ),
            "script-bad-image": Case(
                "idle",
                _script(script=[{"timestamp_ms": 0, "start": {"prompt": "x", "image": b"not an image"}}, END]),
                ValueError,
                r"start\.image.*Convert it to JPEG or PNG",
            ),
            "script-portrait-str": Case(
                "idle", _script(script=[START, END], portrait="yes"), TypeError, r"portrait must be True or False"
            ),
        }
    )


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx(shared_server: LocalOdyssey, tmp_path_factory: pytest.TempPathFactory) -> Ctx:
    files = tmp_path_factory.mktemp("bad-input")
    with open(files / "huge.jpg", "wb") as huge:  # sparse: 26 MB on paper, nothing on disk
        huge.write(b"\xff\xd8\xff\xe0")
        huge.truncate(26 * 1024 * 1024)
    jpeg_url = images.prepare_image(np.full((64, 64, 3), 120, np.uint8), portrait=False)
    jpeg = base64.b64decode(jpeg_url.split(",", 1)[1])
    (files / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (files / "picture.tiff").write_bytes(b"II*\x00" + bytes(200))
    (files / "notes.txt").write_text("a shopping list, not a picture\n")
    token = jwt.encode({"session_id": "no-such-session", "iat": 0, "exp": 2**31}, "k" * 32)
    return Ctx(server=shared_server, files=files, jwt=token)


@pytest.fixture(scope="module")
def idle_client(shared_server: LocalOdyssey) -> Iterator[Odyssey]:
    """Never connected while the cases run; connects at the end."""
    with Odyssey(api_key=shared_server.api_key, api_url=shared_server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def live_client(shared_server: LocalOdyssey) -> Iterator[Odyssey]:
    """Connected, with no stream running between cases."""
    with Odyssey(api_key=shared_server.api_key, api_url=shared_server.url, timeout=10) as client:
        client.connect()
        yield client


@pytest.fixture(scope="module")
def closed_client(shared_server: LocalOdyssey) -> Iterator[Odyssey]:
    """Connected once, then disconnected."""
    with Odyssey(api_key=shared_server.api_key, api_url=shared_server.url, timeout=10) as client:
        client.connect()
        client.disconnect()
        yield client


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any new socket connection fails the test; the list holds what was attempted."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network I/O before the argument check: connect({address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every stream message a live session sends during the test."""
    messages: list[dict[str, Any]] = []
    original = Session._send

    def spy(self: Session, message: dict[str, Any], via_signaling: bool) -> None:
        messages.append(message)
        original(self, message, via_signaling)

    monkeypatch.setattr(Session, "_send", spy)
    return messages


# -- the table --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(
    name: str,
    ctx: Ctx,
    idle_client: Odyssey,
    live_client: Odyssey,
    closed_client: Odyssey,
    no_network: list[Any],
    sent: list[dict[str, Any]],
) -> None:
    case = CASES[name]
    client = {"new": idle_client, "idle": idle_client, "live": live_client, "closed": closed_client}[case.where]
    status = client.current_status
    threads = {t.name for t in odyssey_threads()}
    streams_before = _streams(ctx.server, live_client)
    try:
        with pytest.raises(case.error) as info:
            result = case.call(client, ctx)
            if isinstance(result, Iterator):  # frames() checks its arguments when called, not when iterated
                next(result)
        message = str(info.value)
        assert re.search(case.says, message, re.DOTALL), f"{type(info.value).__name__}: {message}"
        assert not no_network, "the call touched the network"
        assert [m["type"] for m in sent] == (["interactive_stream_start"] if name == "start-twice" else [])
        assert client.current_status is status, "a bad call changed the connection status"
        assert {t.name for t in odyssey_threads()} == threads, "a bad call started or stopped threads"
        if case.where == "live":
            assert client.is_connected and client.get_frame(timeout=10)
            expected = streams_before + (1 if name == "start-twice" else 0)
            assert _streams(ctx.server, live_client) == expected, "the server saw a stream start"
    finally:
        if case.where == "live" and live_client.current_stream_id is not None:
            live_client.end_stream()


def _streams(server: LocalOdyssey, client: Odyssey) -> int:
    session_id = client.current_session_id
    record = server.session(session_id) if session_id else None
    return len(record.streams) if record is not None else 0


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


# -- and every client is still usable (these run after the table) ------------------------------


def test_idle_client_connects_and_streams_after_every_bad_call(idle_client: Odyssey) -> None:
    idle_client.connect()
    stream_id = idle_client.start_stream("After all that", portrait=False)
    assert idle_client.wait_for_frame(after=stream_id, timeout=10).stream_id == stream_id
    idle_client.disconnect()


def test_live_client_still_streams_after_every_bad_call(live_client: Odyssey) -> None:
    assert live_client.is_connected
    live_client.start_stream("Still here", portrait=False)
    ack = live_client.interact("The cat yawns")
    assert live_client.wait_for_frame(after=ack, timeout=10).prompt == ack
    live_client.end_stream()


def test_closed_client_connects_again_after_every_bad_call(closed_client: Odyssey) -> None:
    assert closed_client.current_status is ConnectionStatus.DISCONNECTED
    closed_client.connect()
    assert closed_client.start_stream("Back again", portrait=False)
    assert closed_client.get_frame(timeout=10)
    closed_client.disconnect()
