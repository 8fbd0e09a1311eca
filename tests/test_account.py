"""Recordings and simulations on Odyssey, against a scripted HTTP server on loopback.

The server here is a test double (the local Odyssey server does not serve these
endpoints yet): each test scripts what a route answers, and the assertions check
the requests the client makes and how it maps the answers.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np
import pytest
from scripted import Reply, ScriptedServer, Seen, serving

from odyssey_sync import (
    Odyssey,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    OdysseyUsageError,
    RateLimitError,
    Recording,
    SimulationJobDetail,
    SimulationJobInfo,
    SimulationJobStatus,
    SimulationStream,
    StreamRecordingInfo,
)
from odyssey_sync.scripts import ScriptError, prompt_list_script

pytestmark = pytest.mark.timeout(20)

KEY = "ody_test_account_key_0123456789"
TOKEN = "account-access-token-secret"
SIGNATURE = "X-Amz-Signature=5ecr3t5ignature"
STREAM = "str_8f1c2d"
JOB = "job_5a9e01"
SCRIPT = [
    {"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}},
    {"timestamp_ms": 3000, "interact": {"prompt": "The cat is asleep"}},
    {"timestamp_ms": 6000, "end": {}},
]
FILES = {
    "video.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 2048,
    "events.jsonl": b'{"type":"stream_started","t":0}\n{"type":"interact","t":3000}\n',
    "thumb.jpg": b"\xff\xd8\xff\xe0" + b"j" * 5000,
    "preview.mp4": b"\x00\x00\x00\x18ftypisom" + b"p" * 20000,
}


def file_url(scripted: ScriptedServer, name: str) -> str:
    """A presigned-looking URL of a file the scripted server serves."""
    return f"{scripted.url}/files/{name}?X-Amz-Expires=3600&{SIGNATURE}"


def api_requests(scripted: ScriptedServer) -> list[Seen]:
    """Every request except the token exchange."""
    return [r for r in scripted.seen() if r.path != "/auth/token"]


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with serving(TOKEN) as srv:
        yield srv


@pytest.fixture
def odyssey(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Odyssey]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with Odyssey(api_key=KEY, api_url=scripted.url, timeout=5) as client:
        yield client


def recording_body(scripted: ScriptedServer, **overrides: Any) -> dict[str, Any]:
    body = {
        "stream_id": STREAM,
        "video_url": file_url(scripted, "video.mp4"),
        "events_url": file_url(scripted, "events.jsonl"),
        "thumbnail_url": file_url(scripted, "thumb.jpg"),
        "preview_url": file_url(scripted, "preview.mp4"),
        "frame_count": 2880,
        "duration_seconds": 120.0,
    }
    body.update(overrides)
    return body


def serve_files(scripted: ScriptedServer) -> None:
    for name, data in FILES.items():
        scripted.script("GET", f"/files/{name}", Reply(body=data, headers={"Content-Type": "application/octet-stream"}))


def job_body(status: str = "pending", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": JOB,
        "status": status,
        "priority": "normal",
        "created_at": "2026-05-01T10:00:00Z",
        "dispatched_at": None,
        "started_at": None,
        "completed_at": None,
        "error_message": None,
        "assigned_region": None,
        "retry_count": 0,
        "streams": [],
    }
    body.update(overrides)
    return body


def completed_job(scripted: ScriptedServer) -> dict[str, Any]:
    streams = [
        {
            "stream_id": f"sim_stream_{i}",
            "video_url": file_url(scripted, "video.mp4"),
            "events_url": file_url(scripted, "events.jsonl"),
            "thumbnail_url": None,
            "preview_url": None,
            "frame_count": 120,
            "duration_seconds": 6.0,
            "script_index": i,
        }
        for i in range(2)
    ]
    return job_body(
        "completed",
        dispatched_at="2026-05-01T10:00:05Z",
        started_at="2026-05-01T10:00:07Z",
        completed_at="2026-05-01T10:01:07Z",
        assigned_region="eu-west",
        streams=streams,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- recordings ---------------------------------------------------------------------------


def test_get_recording(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    recording = odyssey.get_recording(STREAM)
    assert recording == Recording(
        stream_id=STREAM,
        video_url=file_url(scripted, "video.mp4"),
        events_url=file_url(scripted, "events.jsonl"),
        thumbnail_url=file_url(scripted, "thumb.jpg"),
        preview_url=file_url(scripted, "preview.mp4"),
        frame_count=2880,
        duration_seconds=120.0,
    )
    (call,) = api_requests(scripted)
    assert (call.method, call.path, call.headers["Authorization"]) == ("GET", f"/recordings/{STREAM}", f"Bearer {TOKEN}")


def test_get_recording_with_missing_fields_gets_defaults(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", "/recordings/a/b c", Reply(json={"video_url": None, "frame_count": "many"}))
    assert odyssey.get_recording("a/b c") == Recording(stream_id="a/b c")
    assert api_requests(scripted)[0].path == "/recordings/a/b c"


def test_list_stream_recordings(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    entries = [
        {"stream_id": "s2", "width": 1280, "height": 704, "started_at": "2026-05-01T10:00:00Z",
         "ended_at": "2026-05-01T10:02:00Z", "duration_seconds": 120.0},
        {"stream_id": "s1", "width": 704, "height": 1280, "started_at": "2026-04-30T09:00:00Z"},
    ]
    scripted.script("GET", "/stream-recordings", Reply(json={"recordings": entries, "total": 12, "limit": 2, "offset": 4}))
    page = odyssey.list_stream_recordings(limit=2, offset=4)
    assert page.total == 12 and page.limit == 2 and page.offset == 4
    assert page.recordings == [
        StreamRecordingInfo("s2", 1280, 704, "2026-05-01T10:00:00Z", "2026-05-01T10:02:00Z", 120.0),
        StreamRecordingInfo("s1", 704, 1280, "2026-04-30T09:00:00Z", None, None),
    ]
    assert api_requests(scripted)[0].query == {"limit": "2", "offset": "4"}
    odyssey.list_stream_recordings()
    assert api_requests(scripted)[1].query == {}


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"limit": 0}, ValueError, "limit must be 1..100"),
        ({"limit": 101}, ValueError, "limit must be 1..100"),
        ({"limit": "10"}, TypeError, "limit must be an int"),
        ({"limit": True}, TypeError, "limit must be an int"),
        ({"offset": -1}, ValueError, "offset must be >= 0"),
        ({"offset": 1.0}, TypeError, "offset must be an int"),
        ({"timeout": -1}, ValueError, "timeout"),
    ],
)
def test_list_stream_recordings_checks_arguments_before_io(
    scripted: ScriptedServer, odyssey: Odyssey, kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match=message):
        odyssey.list_stream_recordings(**kwargs)
    assert scripted.seen() == []


def test_iter_stream_recordings_walks_every_page(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    all_ids = [f"s{i}" for i in range(7)]

    def page(seen: Seen) -> Reply:
        limit, offset = int(seen.query["limit"]), int(seen.query["offset"])
        items = [{"stream_id": s, "width": 1280, "height": 704, "started_at": "t"} for s in all_ids[offset : offset + limit]]
        return Reply(json={"recordings": items, "total": len(all_ids), "limit": limit, "offset": offset})

    scripted.script("GET", "/stream-recordings", page)
    iterator = odyssey.iter_stream_recordings(page_size=3)
    assert scripted.seen() == []  # lazy
    assert [r.stream_id for r in iterator] == all_ids
    calls = api_requests(scripted)
    assert [c.query for c in calls] == [{"limit": "3", "offset": str(o)} for o in (0, 3, 6)]


def test_iter_stream_recordings_stops_on_an_empty_page_and_skips_repeats(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    item = {"stream_id": "s0", "width": 1, "height": 1, "started_at": "t"}
    scripted.script(
        "GET",
        "/stream-recordings",
        Reply(json={"recordings": [item, dict(item, stream_id="s1")], "total": 99, "limit": 2, "offset": 0}),
        Reply(json={"recordings": [dict(item, stream_id="s1")], "total": 99, "limit": 2, "offset": 2}),
        Reply(json={"recordings": [], "total": 99, "limit": 2, "offset": 3}),
    )
    assert [r.stream_id for r in odyssey.iter_stream_recordings(page_size=2)] == ["s0", "s1"]
    assert len(api_requests(scripted)) == 3
    with pytest.raises(ValueError, match="limit must be 1..100"):
        odyssey.iter_stream_recordings(page_size=500)


# -- downloads ----------------------------------------------------------------------------


def test_download_everything_into_a_new_folder(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    serve_files(scripted)
    folder = tmp_path / "downloads" / "cats"
    paths = odyssey.download_recording(
        STREAM, folder, what=("video", "events", "thumbnail", "preview"), progress=False
    )
    assert paths == {
        "video": folder / f"{STREAM}.mp4",
        "events": folder / f"{STREAM}.events.jsonl",
        "thumbnail": folder / f"{STREAM}.jpg",
        "preview": folder / f"{STREAM}.preview.mp4",
    }
    assert paths["video"].read_bytes() == FILES["video.mp4"]
    assert paths["events"].read_bytes() == FILES["events.jsonl"]
    assert paths["thumbnail"].read_bytes() == FILES["thumb.jpg"]
    assert paths["preview"].read_bytes() == FILES["preview.mp4"]
    assert leftovers(folder) == sorted(p.name for p in paths.values())
    downloads = [r for r in scripted.seen() if r.path.startswith("/files/")]
    assert len(downloads) == 4
    assert all("Authorization" not in r.headers for r in downloads)
    assert capfd.readouterr() == ("", "")


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_download_one_artifact_to_a_file_path_with_progress(
    scripted: ScriptedServer,
    odyssey: Odyssey,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    serve_files(scripted)
    dest = tmp_path / "cat.mp4"
    assert odyssey.download_recording(STREAM, str(dest)) == {"video": dest}
    assert dest.read_bytes() == FILES["video.mp4"]
    assert leftovers(tmp_path) == ["cat.mp4"]
    assert capfd.readouterr() == ("", ""), "no progress bar when stderr is not a terminal (logs, CI)"
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert odyssey.download_recording(STREAM, str(dest)) == {"video": dest}
    shown = terminal.getvalue()
    assert "cat.mp4" in shown and "100%" in shown


def test_download_into_an_existing_folder_and_a_trailing_slash(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path
) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    serve_files(scripted)
    assert odyssey.download_recording(STREAM, tmp_path, what="thumbnail", progress=False) == {
        "thumbnail": tmp_path / f"{STREAM}.jpg"
    }
    assert odyssey.download_recording(STREAM, f"{tmp_path}/v1.2/", what="events", progress=False) == {
        "events": tmp_path / "v1.2" / f"{STREAM}.events.jsonl"
    }


def test_a_relative_download_link_is_resolved_against_the_api(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path
) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted, video_url="/files/video.mp4")))
    serve_files(scripted)
    paths = odyssey.download_recording(STREAM, tmp_path, progress=False)
    assert paths["video"].read_bytes() == FILES["video.mp4"]


def test_a_cut_off_download_leaves_no_file(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    data = FILES["video.mp4"]
    scripted.script("GET", "/files/video.mp4", Reply(body=data, drop_after=len(data) // 2))
    dest = tmp_path / "cat.mp4"
    dest.write_bytes(b"the previous download")
    with pytest.raises(OdysseyConnectionError, match="try again") as info:
        odyssey.download_recording(STREAM, dest, progress=False)
    assert dest.read_bytes() == b"the previous download"
    assert leftovers(tmp_path) == ["cat.mp4"]
    assert "5ecr3t" not in str(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("odyssey_sync")]
    assert any("<redacted>" in m for m in ours)
    assert not any("5ecr3t" in m for m in ours)


def test_an_expired_link_is_an_auth_error(scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    scripted.script(
        "GET", "/files/video.mp4", Reply(status=403, body=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
    )
    with pytest.raises(OdysseyAuthError, match=r"download link has expired or is invalid .*call get_recording\(\) again") as info:
        odyssey.download_recording(STREAM, tmp_path, progress=False)
    assert "5ecr3t" not in str(info.value)
    assert leftovers(tmp_path) == []


def test_a_server_error_on_the_link_is_a_connection_error(scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    scripted.script("GET", "/files/video.mp4", Reply(status=503, body=b"slow down"))
    with pytest.raises(OdysseyConnectionError, match="HTTP 503"):
        odyssey.download_recording(STREAM, tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_an_unavailable_artifact_fails_before_any_download(scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted, preview_url=None)))
    serve_files(scripted)
    with pytest.raises(OdysseyError, match=r"The preview of stream 'str_8f1c2d' is not available") as info:
        odyssey.download_recording(STREAM, tmp_path / "new", what=["video", "preview"], progress=False)
    assert not isinstance(info.value, ValueError)
    assert [r.path for r in api_requests(scripted)] == [f"/recordings/{STREAM}"]
    assert not (tmp_path / "new").exists()


def test_ctrl_c_during_a_download_leaves_no_file(scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path) -> None:
    scripted.script("GET", f"/recordings/{STREAM}", Reply(json=recording_body(scripted)))
    scripted.script("GET", "/files/video.mp4", Reply(body=FILES["video.mp4"], trickle_s=0.05))
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            odyssey.download_recording(STREAM, tmp_path, progress=False)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 2
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "message"),
    [
        ((STREAM, "out"), {"what": "audio"}, ValueError, r"unknown artifact 'audio'; choose from 'video'"),
        ((STREAM, "out"), {"what": []}, ValueError, r"what is empty"),
        ((STREAM, "out"), {"what": 5}, TypeError, r"what must be an artifact name"),
        ((STREAM, "out"), {"what": ["video", 1]}, TypeError, r"artifact names \(strings\)"),
        ((STREAM, 5), {}, TypeError, r"dest must be a folder or file path"),
        ((STREAM, ""), {}, ValueError, r"dest is empty"),
        ((STREAM, "out.mp4"), {"what": ("video", "events")}, ValueError, r"looks like a file name"),
        ((STREAM, "out"), {"progress": "yes"}, TypeError, r"progress must be True or False"),
        ((5, "out"), {}, TypeError, r"stream_id must be a string"),
        ((" ", "out"), {}, ValueError, r"stream_id is empty"),
    ],
)
def test_download_checks_arguments_before_io(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception], message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=message):
        odyssey.download_recording(*args, **kwargs)
    assert scripted.seen() == []
    assert leftovers(tmp_path) == []


def test_download_refuses_a_folder_under_a_file(scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        odyssey.download_recording(STREAM, tmp_path / "plain" / "sub", progress=False)
    with pytest.raises(ValueError, match="is a file; pass a folder"):
        odyssey.download_recording(STREAM, tmp_path / "plain", what=("video", "events"), progress=False)
    assert scripted.seen() == []


# -- simulate -----------------------------------------------------------------------------


def test_simulate_sends_the_script(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(json=job_body(estimated_wait_minutes=2.5)))
    job = odyssey.simulate(script=SCRIPT)
    assert job == SimulationJobDetail(
        job_id=JOB, status=SimulationJobStatus.PENDING, priority="normal", created_at="2026-05-01T10:00:00Z",
        estimated_wait_minutes=2.5,
    )
    (call,) = api_requests(scripted)
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.body == {"portrait": True, "output_video": True, "script": SCRIPT}


def test_simulate_batch_url_portrait_and_bypass(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(json=job_body()))
    other = prompt_list_script(["A dog", "The dog is running"])
    odyssey.simulate(scripts=[SCRIPT, other], portrait=False, bypass_prompt_expansion=False)
    odyssey.simulate(script_url="https://example.com/script.json", bypass_prompt_expansion=True)
    first, second = (r.body for r in api_requests(scripted))
    assert first == {"portrait": False, "output_video": True, "bypass_vlm_expansion": False, "scripts": [SCRIPT, other]}
    assert second == {"portrait": True, "output_video": True, "bypass_vlm_expansion": True,
                      "script_url": "https://example.com/script.json"}


@pytest.mark.parametrize("portrait", [True, False])
def test_simulate_turns_a_start_image_into_a_resized_data_url(
    scripted: ScriptedServer, odyssey: Odyssey, portrait: bool
) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(json=job_body()))
    pixels = np.zeros((300, 500, 3), dtype=np.uint8)
    pixels[:, :, 0] = 200
    script: list[dict[str, Any]] = [
        {"timestamp_ms": 0, "start": {"prompt": "A red room", "image": pixels}},
        {"timestamp_ms": 3000, "end": {}},
    ]
    odyssey.simulate(script=script, portrait=portrait)
    sent = api_requests(scripted)[0].body["script"]
    url = sent[0]["start"]["image"]
    assert url.startswith("data:image/jpeg;base64,")
    with av.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])), "r") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == ((704, 1280) if portrait else (1280, 704))
    assert script[0]["start"]["image"] is pixels  # the caller's script is left alone


BAD_SIMULATIONS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("nothing", {}, ValueError, r"Exactly one of script, scripts or script_url must be given \(got none\)"),
    ("two forms", {"script": SCRIPT, "script_url": "https://x/s.json"}, ValueError, r"got script and script_url"),
    ("script a string", {"script": "A cat"}, TypeError, r"script must be a list of entries, not str"),
    ("scripts of strings", {"scripts": ["A cat"]}, TypeError, r"scripts\[0\] must be a list of entries"),
    ("url not a string", {"script_url": 5}, TypeError, r"script_url must be a string URL"),
    ("url scheme", {"script_url": "ftp://x/s.json"}, ScriptError, r"script_url must be an http:// or https:// URL"),
    ("portrait", {"script": SCRIPT, "portrait": "yes"}, TypeError, r"portrait must be True or False"),
    ("bypass", {"script": SCRIPT, "bypass_prompt_expansion": 1}, TypeError, r"bypass_prompt_expansion must be True or False"),
    ("empty script", {"script": []}, ScriptError, r"script is empty"),
    ("no end", {"script": SCRIPT[:2]}, ScriptError, r"script entry 1: the last entry must be \{'timestamp_ms': \.\.\., 'end': \{\}\}"),
    ("no start", {"script": SCRIPT[1:]}, ScriptError, r"script entry 0: the first entry must be"),
    ("start late", {"script": [dict(SCRIPT[0], timestamp_ms=100), *SCRIPT[1:]]}, ScriptError, r"entry 0: the start entry must be at timestamp_ms 0"),
    ("out of order", {"script": [SCRIPT[0], SCRIPT[1], {"timestamp_ms": 2000, "end": {}}]}, ScriptError, r"entry 2: timestamp_ms 2000 is not after"),
    ("too long", {"script": [SCRIPT[0], {"timestamp_ms": 600_000, "end": {}}]}, ScriptError, r"longer than the 150000 ms limit"),
    ("missing prompt", {"script": [{"timestamp_ms": 0, "start": {}}, SCRIPT[2]]}, ScriptError, r"'start' must include a 'prompt' field"),
    ("typo key", {"script": [SCRIPT[0], {"timestamp_ms": 3000, "interact": {"prompt": "x"}, "ned": {}}]}, ScriptError, r"unknown key\(s\) 'ned'"),
    ("empty prompt", {"script": [SCRIPT[0], {"timestamp_ms": 3000, "interact": {"prompt": ""}}, SCRIPT[2]]}, ScriptError, r"interact.prompt is empty"),
    ("second start", {"script": [SCRIPT[0], {"timestamp_ms": 3000, "start": {"prompt": "b"}}, SCRIPT[2]]}, ScriptError, r"only the first entry may be 'start'"),
    ("too many scripts", {"scripts": [SCRIPT] * 11}, ScriptError, r"one job takes at most 10"),
    ("bad batch member", {"scripts": [SCRIPT, SCRIPT[:1]]}, ScriptError, r"^scripts\[1\] entry 0: the last entry must be"),
    ("image missing file", {"script": [{"timestamp_ms": 0, "start": {"prompt": "a", "image": "/nonexistent/cat.png"}}, SCRIPT[2]]},
     ScriptError, r"^script entry 0: start.image: "),
    ("image wrong type", {"script": [{"timestamp_ms": 0, "start": {"prompt": "a", "image": 3.5}}, SCRIPT[2]]},
     TypeError, r"^script entry 0: start.image: Unsupported image type float"),
    ("image not an image", {"script": [{"timestamp_ms": 0, "start": {"prompt": "a", "image": b"plain text"}}, SCRIPT[2]]},
     ScriptError, r"start.image: "),
]


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"), [(k, e, m) for _, k, e, m in BAD_SIMULATIONS], ids=[n for n, _, _, _ in BAD_SIMULATIONS]
)
def test_simulate_rejects_bad_input_before_any_request(
    scripted: ScriptedServer, odyssey: Odyssey, kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match=message):
        odyssey.simulate(**kwargs)
    assert scripted.seen() == []


def test_simulate_400_carries_the_servers_reason(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(status=400, json={"detail": "Script must end with an 'end' action"}))
    with pytest.raises(OdysseyError, match=r"The server rejected the simulation job: Script must end with an 'end' action") as info:
        odyssey.simulate(script=SCRIPT)
    assert not isinstance(info.value, ValueError)


def test_simulate_403_on_bypass_says_why(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(status=403, json={"detail": "Prompt expansion bypass not allowed"}))
    with pytest.raises(OdysseyAuthError, match=r"bypass not allowed.*bypass_prompt_expansion needs a privilege"):
        odyssey.simulate(script=SCRIPT, bypass_prompt_expansion=True)


def test_simulate_429_queue_full_is_a_usage_error(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(status=429, json={"detail": "Too many queued jobs (max 10)"}))
    with pytest.raises(OdysseyUsageError, match="Too many queued jobs"):
        odyssey.simulate(script=SCRIPT)


# -- job status, listing, cancelling --------------------------------------------------------


def test_get_simulate_status_with_streams(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", f"/simulation-jobs/{JOB}", Reply(json=completed_job(scripted)))
    detail = odyssey.get_simulate_status(JOB)
    assert detail.status is SimulationJobStatus.COMPLETED
    assert (detail.assigned_region, detail.retry_count, detail.completed_at) == ("eu-west", 0, "2026-05-01T10:01:07Z")
    assert detail.streams == [
        SimulationStream(f"sim_stream_{i}", file_url(scripted, "video.mp4"), file_url(scripted, "events.jsonl"),
                         None, None, 120, 6.0, i)
        for i in range(2)
    ]
    assert odyssey.get_simulate_status(detail) == detail  # a job object works as its id


def test_an_unknown_status_is_a_clear_odyssey_error(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", f"/simulation-jobs/{JOB}", Reply(json=job_body("running")))
    with pytest.raises(OdysseyError, match=r"'running', a status this version of odyssey_sync does not know") as info:
        odyssey.get_simulate_status(JOB)
    assert not isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "body",
    [[], {"status": "pending"}, {"job_id": JOB}, {"job_id": JOB, "status": "pending", "streams": {"a": 1}}],
    ids=["list", "no job_id", "no status", "streams not a list"],
)
def test_a_malformed_job_is_a_connection_error(scripted: ScriptedServer, odyssey: Odyssey, body: Any) -> None:
    scripted.script("POST", "/simulation-jobs", Reply(json=body))
    with pytest.raises(OdysseyConnectionError, match="Invalid response to POST /simulation-jobs"):
        odyssey.simulate(script=SCRIPT)


def test_list_simulations(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    jobs = [
        {"job_id": "j2", "status": "processing", "priority": "high", "created_at": "t2", "completed_at": None, "error_message": None},
        {"job_id": "j1", "status": "failed", "created_at": "t1", "completed_at": "t1b", "error_message": "Streamer crashed"},
    ]
    scripted.script("GET", "/simulation-jobs", Reply(json={"jobs": jobs, "total": 2, "limit": 20, "offset": 0}))
    page = odyssey.list_simulations()
    assert page.jobs == [
        SimulationJobInfo("j2", SimulationJobStatus.PROCESSING, "high", "t2"),
        SimulationJobInfo("j1", SimulationJobStatus.FAILED, "normal", "t1", "t1b", "Streamer crashed"),
    ]
    assert (page.total, page.limit, page.offset) == (2, 20, 0)
    odyssey.list_simulations(status=SimulationJobStatus.PENDING, active=True, limit=5, offset=10)
    odyssey.list_simulations(status="Failed", active=False)
    queries = [r.query for r in api_requests(scripted)]
    assert queries == [
        {},
        {"status": "pending", "active": "true", "limit": "5", "offset": "10"},
        {"status": "failed", "active": "false"},
    ]


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"status": "running"}, ValueError, r"status must be one of pending, dispatched, processing, completed, failed, cancelled"),
        ({"status": 3}, TypeError, r"status must be a SimulationJobStatus"),
        ({"active": "yes"}, TypeError, r"active must be True or False"),
        ({"limit": 0}, ValueError, r"limit must be 1..100"),
        ({"offset": -5}, ValueError, r"offset must be >= 0"),
    ],
)
def test_list_simulations_checks_arguments_before_io(
    scripted: ScriptedServer, odyssey: Odyssey, kwargs: dict[str, Any], exc: type[Exception], message: str
) -> None:
    with pytest.raises(exc, match=message):
        odyssey.list_simulations(**kwargs)
    assert scripted.seen() == []


def test_cancel_simulation(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("DELETE", f"/simulation-jobs/{JOB}", Reply(json={"job_id": JOB, "status": "cancelled"}))
    assert odyssey.cancel_simulation(JOB) == SimulationJobInfo(JOB, SimulationJobStatus.CANCELLED)
    assert api_requests(scripted)[0].method == "DELETE"


def test_cancel_a_running_job_says_why_not(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("DELETE", f"/simulation-jobs/{JOB}", Reply(status=400, json={"detail": "Job is already processing"}))
    with pytest.raises(OdysseyError, match=r"Cannot cancel simulation job 'job_5a9e01': Job is already processing.*only pending or dispatched") as info:
        odyssey.cancel_simulation(JOB)
    assert type(info.value) is OdysseyError


@pytest.mark.parametrize("bad", [None, 5, "", SCRIPT])
def test_job_ids_are_checked_before_io(scripted: ScriptedServer, odyssey: Odyssey, bad: Any) -> None:
    for call in (odyssey.get_simulate_status, odyssey.cancel_simulation, odyssey.wait_for_simulation):
        with pytest.raises((TypeError, ValueError), match="job_id"):
            call(bad)
    assert scripted.seen() == []


# -- waiting ------------------------------------------------------------------------------


def test_wait_for_simulation_follows_the_job_to_completion(
    scripted: ScriptedServer, odyssey: Odyssey, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted.script(
        "GET",
        f"/simulation-jobs/{JOB}",
        Reply(json=job_body("pending")),
        Reply(json=job_body("dispatched")),
        Reply(json=job_body("processing")),
        Reply(json=completed_job(scripted)),
    )
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    detail = odyssey.wait_for_simulation(JOB, poll_interval=0.01)
    assert detail.status is SimulationJobStatus.COMPLETED
    assert len(detail.streams) == 2
    assert len(api_requests(scripted)) == 4
    assert f"Simulation {JOB}: completed" in terminal.getvalue(), "the status line shows on a terminal"
    monkeypatch.undo()
    scripted.script("GET", f"/simulation-jobs/{JOB}", Reply(json=completed_job(scripted)))
    odyssey.wait_for_simulation(JOB, poll_interval=0.01)
    assert capfd.readouterr().err == "", "and nowhere else"


def test_a_failed_job_is_returned_not_raised(scripted: ScriptedServer, odyssey: Odyssey, capfd: pytest.CaptureFixture[str]) -> None:
    scripted.script(
        "GET", f"/simulation-jobs/{JOB}",
        Reply(json=job_body("processing")),
        Reply(json=job_body("failed", error_message="Streamer crashed", retry_count=2)),
    )
    detail = odyssey.wait_for_simulation(JOB, poll_interval=0.01, progress=False)
    assert (detail.status, detail.error_message, detail.retry_count) == (SimulationJobStatus.FAILED, "Streamer crashed", 2)
    assert capfd.readouterr() == ("", "")


def test_wait_for_simulation_rides_out_a_brief_outage(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script(
        "GET", f"/simulation-jobs/{JOB}",
        Reply(status=502, json={"detail": "bad gateway"}),
        Reply(json=job_body("cancelled")),
    )
    assert odyssey.wait_for_simulation(JOB, poll_interval=0.01, progress=False).status is SimulationJobStatus.CANCELLED


def test_wait_for_simulation_times_out(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", f"/simulation-jobs/{JOB}", Reply(json=job_body("processing")))
    started = time.monotonic()
    with pytest.raises(OdysseyTimeoutError, match=r"'job_5a9e01' is still processing after 0.3 s.*timeout=None") as info:
        odyssey.wait_for_simulation(JOB, timeout=0.3, poll_interval=0.02, progress=False)
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 1.5
    assert isinstance(info.value, TimeoutError)
    polls = len(api_requests(scripted))
    assert 3 <= polls <= 15  # backoff: 0.02, 0.03, 0.045, ...


def test_wait_for_simulation_checks_arguments(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a finite number of seconds > 0"):
        odyssey.wait_for_simulation(JOB, poll_interval=0)
    with pytest.raises(TypeError, match="poll_interval must be a number"):
        odyssey.wait_for_simulation(JOB, poll_interval="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress must be True or False"):
        odyssey.wait_for_simulation(JOB, progress=None)  # type: ignore[arg-type]
    assert scripted.seen() == []


def test_ctrl_c_stops_a_wait_promptly(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    scripted.script("GET", f"/simulation-jobs/{JOB}", Reply(json=job_body("pending")))
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            odyssey.wait_for_simulation(JOB, poll_interval=5, timeout=30, progress=False)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 1.5


# -- error mapping, every endpoint ------------------------------------------------------------


def _download(client: Odyssey, tmp: Path) -> Any:
    return client.download_recording(STREAM, tmp, progress=False)


ENDPOINTS: dict[str, tuple[str, str, Callable[[Odyssey, Path], Any]]] = {
    "get_recording": ("GET", f"/recordings/{STREAM}", lambda c, t: c.get_recording(STREAM)),
    "list_stream_recordings": ("GET", "/stream-recordings", lambda c, t: c.list_stream_recordings()),
    "iter_stream_recordings": ("GET", "/stream-recordings", lambda c, t: list(c.iter_stream_recordings())),
    "download_recording": ("GET", f"/recordings/{STREAM}", _download),
    "simulate": ("POST", "/simulation-jobs", lambda c, t: c.simulate(script=SCRIPT)),
    "get_simulate_status": ("GET", f"/simulation-jobs/{JOB}", lambda c, t: c.get_simulate_status(JOB)),
    "list_simulations": ("GET", "/simulation-jobs", lambda c, t: c.list_simulations()),
    "cancel_simulation": ("DELETE", f"/simulation-jobs/{JOB}", lambda c, t: c.cancel_simulation(JOB)),
    "wait_for_simulation": ("GET", f"/simulation-jobs/{JOB}", lambda c, t: c.wait_for_simulation(JOB, progress=False, poll_interval=0.01)),
}
BY_ID = {"get_recording", "download_recording", "get_simulate_status", "cancel_simulation", "wait_for_simulation"}
RATE_LIMITED = {
    "detail": {
        "error": "RATE_LIMITED",
        "message": "Too many requests",
        "action": "Slow down",
        "details": {"retry_after_seconds": 2},
    }
}


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_status_codes_map_to_odyssey_errors(
    scripted: ScriptedServer, odyssey: Odyssey, tmp_path: Path, endpoint: str, status: int
) -> None:
    method, path, call = ENDPOINTS[endpoint]
    body = RATE_LIMITED if status == 429 else {"detail": f"status {status}"}
    scripted.script(method, path, Reply(status=status, json=body))
    expected: type[OdysseyError] = {
        401: OdysseyAuthError,
        403: OdysseyAuthError,
        404: OdysseyStreamError if endpoint in BY_ID else OdysseyConnectionError,
        429: RateLimitError,
        500: OdysseyConnectionError,
    }[status]
    with pytest.raises(OdysseyError) as info:
        call(odyssey, tmp_path)
    assert isinstance(info.value, expected), repr(info.value)
    assert not isinstance(info.value, ValueError)
    if status == 404 and endpoint in BY_ID:
        assert info.value.reason == "not_found"  # type: ignore[attr-defined]
        assert ("Recording not found" if "recording" in endpoint else "Simulation job 'job_5a9e01' not found") in str(info.value)
    if status == 429:
        assert info.value.retry_after == 2  # type: ignore[attr-defined]
    calls = len([r for r in scripted.seen(path) if r.method == method])
    assert calls == (4 if endpoint == "wait_for_simulation" and status == 500 else 1)  # a wait rides out 3 failures
    assert leftovers(tmp_path) == []


def test_no_api_key_is_an_auth_error(scripted: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ODYSSEY_API_KEY", raising=False)
    with Odyssey(api_url=scripted.url, timeout=5) as client:
        with pytest.raises(OdysseyAuthError, match="No API key"):
            client.get_recording(STREAM)
    assert scripted.seen() == []


def test_a_slow_server_times_out(scripted: ScriptedServer, odyssey: Odyssey) -> None:
    def slow(seen: Seen) -> Reply:
        time.sleep(0.5)
        return Reply(json=job_body())

    scripted.script("GET", f"/simulation-jobs/{JOB}", slow)
    with pytest.raises(OdysseyTimeoutError):
        odyssey.get_simulate_status(JOB, timeout=0.2)
