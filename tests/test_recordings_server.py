"""Recordings and simulations on the local server: real HTTP, real WebRTC on loopback, real files.

Streams are driven with the SDK client; the REST endpoints are called with
``requests`` directly, so the server's wire shapes are what is checked (a few
tests at the end go through the SDK's account methods as well).
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np
import pytest
import requests

from odyssey_sync import Odyssey, OdysseyError, SimulationJobStatus
from odyssey_sync.images import prepare_image
from odyssey_sync.local import ApiKey, LocalOdyssey
from odyssey_sync.local.presign import UrlSigner
from odyssey_sync.local.world import World
from odyssey_sync.scripts import ScriptError, validate_job_request
from odyssey_sync.stamp import read_stamp

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

ALICE = ApiKey("ody_test_alice_0123456789", name="alice", bypass_privilege=True)
BOB = ApiKey("ody_test_bob_0123456789", name="bob")
CAROL = ApiKey("ody_test_carol_0123456789", name="carol")
FPS = 20.0
CAT, ASLEEP = "A cat on a windowsill", "The cat is asleep in the sun"
DOG, BALL = "A dog in a green park", "A red ball bounces over the grass"


def script(*prompts: str, gap_ms: int = 2000) -> list[dict[str, Any]]:
    """``prompts[0]`` starts, each later prompt interacts ``gap_ms`` later, the end follows ``gap_ms`` after."""
    entries: list[dict[str, Any]] = [{"timestamp_ms": 0, "start": {"prompt": prompts[0]}}]
    entries += [{"timestamp_ms": i * gap_ms, "interact": {"prompt": p}} for i, p in enumerate(prompts) if i]
    entries.append({"timestamp_ms": len(prompts) * gap_ms, "end": {}})
    return entries


def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Api:
    """Bearer-authenticated REST calls for one key on one server."""

    def __init__(self, server: LocalOdyssey, key: ApiKey) -> None:
        self.url = server.url
        token = requests.post(f"{self.url}/auth/token", json={"api_key": key.key}, timeout=10).json()["access_token"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(self.url + path, timeout=10)

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post("/simulation-jobs", body)
        assert response.status_code == 200, response.text
        return response.json()

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/simulation-jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def finished_job(self, job_id: str, timeout: float = 20) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in ("completed", "failed", "cancelled") else None

        return wait_for(probe, timeout, f"job {job_id} to finish")

    def recording(self, stream_id: str, timeout: float = 15) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            response = self.get(f"/recordings/{stream_id}")
            return response.json() if response.status_code == 200 else None

        return wait_for(probe, timeout, f"the recording of {stream_id}")


def decode(path: Path) -> tuple[tuple[int, int], list[np.ndarray], float]:
    """((width, height), RGB frames, container duration in s) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return size, frames, container.duration / 1e6


def fetch(url: str, dest: Path) -> Path:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    dest.write_bytes(response.content)
    return dest


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rec_server() -> Iterator[LocalOdyssey]:
    """One server with three keys (alice may bypass prompt expansion), a temporary data directory."""
    # Private script URLs allowed: the script_url tests serve their scripts from loopback.
    with LocalOdyssey(
        api_keys=[ALICE, BOB, CAROL], max_concurrent_per_key=10, max_queued_jobs=50, allow_private_script_urls=True
    ) as local:
        yield local


@pytest.fixture(scope="module")
def alice(rec_server: LocalOdyssey) -> Api:
    return Api(rec_server, ALICE)


@pytest.fixture(scope="module")
def bob(rec_server: LocalOdyssey) -> Api:
    return Api(rec_server, BOB)


@pytest.fixture(scope="module")
def recorded(rec_server: LocalOdyssey, alice: Api) -> dict[str, Any]:
    """A portrait stream alice ran through the SDK: start, interact, end; what the client saw, and the recording."""
    seen: list[str | None] = []
    with Odyssey(api_key=ALICE.key, api_url=rec_server.url, timeout=20) as client:
        client.connect(on_video_frame=lambda frame: seen.append(frame.stream_id))
        began = time.monotonic()
        stream_id = client.start_stream(CAT)
        time.sleep(2.0)
        running = alice.get(f"/recordings/{stream_id}")
        client.interact(ASLEEP)
        time.sleep(2.0)
        client.end_stream()
        wall = time.monotonic() - began
    return {
        "stream_id": stream_id,
        "client_frames": seen.count(stream_id),
        "wall_s": wall,
        "while_running": running,
        "recording": alice.recording(stream_id),
    }


@pytest.fixture(scope="module")
def script_host() -> Iterator[Callable[[str, bytes], str]]:
    """A tiny HTTP server on loopback: ``serve(path, body)`` returns the URL that answers ``body``."""
    documents: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = documents.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body or b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(path: str, body: bytes) -> str:
        documents[path] = body
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    yield serve
    httpd.shutdown()
    httpd.server_close()


# -- live recordings ----------------------------------------------------------------------


def test_a_stream_is_recorded_as_sent(recorded: dict[str, Any], tmp_path: Path) -> None:
    recording = recorded["recording"]
    assert recording["stream_id"] == recorded["stream_id"]
    assert all(recording[f"{name}_url"] for name in ("video", "events", "thumbnail", "preview"))

    size, frames, duration = decode(fetch(recording["video_url"], tmp_path / "video.mp4"))
    assert size == (704, 1280)
    received = recorded["client_frames"]
    assert abs(len(frames) - received) <= 0.05 * received, (len(frames), received)
    assert recording["frame_count"] == len(frames)
    assert abs(duration - recording["duration_seconds"]) < 0.06
    assert abs(recording["duration_seconds"] - received / FPS) <= 0.5
    assert abs(recording["duration_seconds"] - recorded["wall_s"]) <= 0.5
    numbers = [read_stamp(frame).frame_number for frame in frames]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "every frame sent, in order"


def test_the_events_log_lists_the_prompts_in_order(recorded: dict[str, Any]) -> None:
    response = requests.get(recorded["recording"]["events_url"], timeout=10)
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["type"] for e in events] == ["start", "update", "end"]
    assert [e.get("prompt") for e in events[:2]] == [CAT, ASLEEP]
    assert CAT in events[0]["applied_prompt"] and ASLEEP in events[1]["applied_prompt"]
    times = [e["t_ms"] for e in events]
    assert times == sorted(times) and times[0] == 0 and 1800 <= times[1] <= 3500
    assert events[0]["frame_number"] == 0 and 30 <= events[1]["frame_number"] <= 70
    assert events[2]["reason"] == "ended" and events[2]["frame_count"] == recorded["recording"]["frame_count"]


def test_thumbnail_and_preview_are_small_pictures_of_the_stream(recorded: dict[str, Any], tmp_path: Path) -> None:
    recording = recorded["recording"]
    thumb = requests.get(recording["thumbnail_url"], timeout=10)
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    with av.open(str(fetch(recording["thumbnail_url"], tmp_path / "t.jpg"))) as container:
        picture = next(container.decode(video=0))
        assert (picture.width, picture.height) == (320, 582)
    size, frames, duration = decode(fetch(recording["preview_url"], tmp_path / "p.mp4"))
    assert size == (320, 582) and 0 < duration <= 10.0 and frames


def test_a_running_stream_has_no_recording_yet(recorded: dict[str, Any]) -> None:
    running = recorded["while_running"]
    assert running.status_code == 404 and "not finished" in running.json()["detail"]


def test_stream_recordings_lists_the_callers_streams(recorded: dict[str, Any], alice: Api, bob: Api) -> None:
    listing = alice.get("/stream-recordings").json()
    assert listing["limit"] == 50 and listing["offset"] == 0
    mine = [r for r in listing["recordings"] if r["stream_id"] == recorded["stream_id"]]
    assert mine and mine[0]["width"] == 704 and mine[0]["height"] == 1280
    assert mine[0]["started_at"] < mine[0]["ended_at"] and mine[0]["duration_seconds"] > 3
    assert recorded["stream_id"] not in [r["stream_id"] for r in bob.get("/stream-recordings").json()["recordings"]]
    assert bob.get(f"/recordings/{recorded['stream_id']}").status_code == 404


# -- presigned links ----------------------------------------------------------------------


def test_presigned_links_refuse_tampering_and_expiry(rec_server: LocalOdyssey, recorded: dict[str, Any]) -> None:
    url = recorded["recording"]["video_url"]
    base, _, query = url.partition("?")
    params = dict(pair.split("=") for pair in query.split("&"))
    ranged = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert ranged.status_code == 206 and len(ranged.content) == 100

    forged_sig = f"{base}?expires={params['expires']}&sig={'0' * 64}"
    later = f"{base}?expires={int(params['expires']) + 3600}&sig={params['sig']}"
    other_file = url.replace("/video.mp4?", "/preview.mp4?")
    for bad in (forged_sig, later, other_file, base):
        response = requests.get(bad, timeout=10)
        assert response.status_code == 403, bad
        assert "fresh presigned URL" in response.json()["detail"]

    signer = UrlSigner.in_directory(rec_server.data_dir, ttl_s=3600)
    path = base[len(rec_server.url) :]
    expired = requests.get(rec_server.url + signer.sign(path, now=time.time() - 7200), timeout=10)
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    unknown = requests.get(rec_server.url + signer.sign("/files/no-such-stream/video.mp4"), timeout=10)
    assert unknown.status_code == 404


# -- simulations --------------------------------------------------------------------------


def test_a_three_entry_simulation_shows_the_interact(alice: Api, tmp_path: Path) -> None:
    submitted = alice.submit({"script": script(DOG, BALL), "portrait": False})
    assert submitted["status"] == "pending" and submitted["streams"] == []
    assert submitted["estimated_wait_minutes"] is not None
    job = alice.finished_job(submitted["job_id"])
    assert job["status"] == "completed", job
    assert job["dispatched_at"] and job["started_at"] and job["completed_at"] and job["assigned_region"] == "local"
    [stream] = job["streams"]
    assert stream["script_index"] == 0 and stream["frame_count"] == 80 and stream["duration_seconds"] == 4.0

    size, frames, _ = decode(fetch(stream["video_url"], tmp_path / "sim.mp4"))
    assert size == (1280, 704) and len(frames) == 80
    world = World(1280, 704, fps=FPS)

    def closest(index: int) -> str:
        errors = {}
        for prompt in (DOG, BALL):
            world.set_prompt(prompt)
            reference = world.render_rgb(index, stamp_time_ms=index * 50)
            errors[prompt] = np.abs(frames[index].astype(np.int16) - reference).mean()
        return min(errors, key=errors.get)

    assert [closest(i) for i in (5, 39, 40, 75)] == [DOG, DOG, BALL, BALL]
    events = [json.loads(line) for line in requests.get(stream["events_url"], timeout=10).text.splitlines()]
    assert [(e["type"], e.get("prompt"), e["t_ms"]) for e in events] == [
        ("start", DOG, 0),
        ("update", BALL, 2000),
        ("end", None, 4000),
    ]
    assert alice.get(f"/recordings/{stream['stream_id']}").json()["frame_count"] == 80


def test_a_batch_of_two_scripts_yields_two_streams(alice: Api) -> None:
    job = alice.finished_job(alice.submit({"scripts": [script(CAT), script(DOG, BALL, gap_ms=1500)]})["job_id"])
    assert job["status"] == "completed", job
    streams = job["streams"]
    assert [s["script_index"] for s in streams] == [0, 1]
    assert [s["frame_count"] for s in streams] == [40, 60]
    assert len({s["stream_id"] for s in streams}) == 2
    listed = [r["stream_id"] for r in alice.get("/stream-recordings", limit=2).json()["recordings"]]
    assert listed == [streams[1]["stream_id"], streams[0]["stream_id"]], "newest first"


def test_a_start_image_seeds_the_video(alice: Api, tmp_path: Path) -> None:
    red = np.zeros((704, 1280, 3), np.uint8)
    red[..., 0] = 220
    body = {"script": script(CAT), "portrait": False}
    body["script"][0]["start"]["image"] = prepare_image(red, portrait=False)
    job = alice.finished_job(alice.submit(body)["job_id"])
    assert job["status"] == "completed", job
    _, frames, _ = decode(fetch(job["streams"][0]["video_url"], tmp_path / "seeded.mp4"))
    r, g, b = frames[10][352:].reshape(-1, 3).mean(axis=0)
    assert r > g + 40 and r > b + 40

    broken = {"script": script(CAT)}
    broken["script"][0]["start"]["image"] = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    failed = alice.finished_job(alice.submit(broken)["job_id"])
    assert failed["status"] == "failed" and "start image" in failed["error_message"]


def test_script_url_is_fetched_when_the_job_runs(alice: Api, script_host: Callable[[str, bytes], str]) -> None:
    url = script_host("/cat.json", json.dumps(script(CAT, ASLEEP, gap_ms=1000)).encode())
    job = alice.finished_job(alice.submit({"script_url": url})["job_id"])
    assert job["status"] == "completed" and job["streams"][0]["frame_count"] == 40

    batch = script_host("/batch.json", json.dumps([script(CAT, gap_ms=500), script(DOG, gap_ms=500)]).encode())
    assert len(alice.finished_job(alice.submit({"script_url": batch})["job_id"])["streams"]) == 2

    missing = alice.finished_job(alice.submit({"script_url": url.replace("/cat.json", "/gone.json")})["job_id"])
    # The answer's status is not echoed (script_url must not map what answers where): the message says what to fix.
    assert missing["status"] == "failed" and "could not be fetched" in missing["error_message"]
    assert "404" not in missing["error_message"]
    invalid = script_host("/bad.json", json.dumps([{"timestamp_ms": 0, "start": {"prompt": "A"}}]).encode())
    failed = alice.finished_job(alice.submit({"script_url": invalid})["job_id"])
    assert failed["status"] == "failed" and failed["error_message"].startswith("script_url: ")
    assert "last entry must be" in failed["error_message"]


@pytest.mark.parametrize(
    "body",
    [
        {"script": [{"timestamp_ms": 0, "start": {"prompt": "A"}}]},
        {"script": [{"timestamp_ms": 0, "interact": {"prompt": "A"}}, {"timestamp_ms": 1000, "end": {}}]},
        {"script": script(CAT, ASLEEP)[::-1]},
        {"script": script(CAT), "scripts": [script(CAT)]},
        {"portrait": True},
        {"scripts": []},
        {"script_url": "ftp://example.com/script.json"},
        {"script": script(CAT), "output_video": False},
    ],
)
def test_invalid_jobs_are_refused_as_the_sdk_would(alice: Api, body: dict[str, Any]) -> None:
    with pytest.raises(ScriptError) as expected:
        validate_job_request(body)
    response = alice.post("/simulation-jobs", body)
    assert response.status_code == 400
    assert response.json() == {"detail": str(expected.value)}


def test_bypass_needs_the_privilege(alice: Api, bob: Api) -> None:
    body = {"script": script(DOG, gap_ms=500), "bypass_vlm_expansion": True}
    refused = bob.post("/simulation-jobs", body)
    assert refused.status_code == 403 and "bypass" in refused.json()["detail"]
    job = alice.finished_job(alice.submit(body)["job_id"])
    events = requests.get(job["streams"][0]["events_url"], timeout=10).text.splitlines()
    assert json.loads(events[0])["applied_prompt"] == DOG


def test_jobs_and_recordings_belong_to_their_key(alice: Api, bob: Api) -> None:
    job = alice.finished_job(alice.submit({"script": script(CAT, gap_ms=500)})["job_id"])
    job_id, stream_id = job["job_id"], job["streams"][0]["stream_id"]
    assert bob.get(f"/simulation-jobs/{job_id}").status_code == 403
    assert bob.delete(f"/simulation-jobs/{job_id}").status_code == 403
    assert bob.get(f"/recordings/{stream_id}").status_code == 404
    assert job_id not in [j["job_id"] for j in bob.get("/simulation-jobs", limit=100).json()["jobs"]]
    assert alice.get("/simulation-jobs/no-such-job").status_code == 404
    assert alice.delete("/simulation-jobs/no-such-job").status_code == 404
    assert alice.get("/recordings/no-such-stream").status_code == 404
    finished = alice.delete(f"/simulation-jobs/{job_id}")
    assert finished.status_code == 400 and "completed" in finished.json()["detail"]


def test_everything_needs_a_token(rec_server: LocalOdyssey) -> None:
    for method, path in [
        ("GET", "/recordings/x"),
        ("GET", "/stream-recordings"),
        ("POST", "/simulation-jobs"),
        ("GET", "/simulation-jobs"),
        ("GET", "/simulation-jobs/x"),
        ("DELETE", "/simulation-jobs/x"),
    ]:
        assert requests.request(method, rec_server.url + path, timeout=10).status_code == 401, path


def test_pagination_ordering_and_filters(rec_server: LocalOdyssey) -> None:
    carol = Api(rec_server, CAROL)
    ids = [carol.submit({"script": script(f"Scene {i}", gap_ms=250)})["job_id"] for i in range(3)]
    jobs = [carol.finished_job(job_id) for job_id in ids]
    streams = [job["streams"][0]["stream_id"] for job in jobs]

    first = carol.get("/stream-recordings", limit=2).json()
    second = carol.get("/stream-recordings", limit=2, offset=2).json()
    assert first["total"] == second["total"] == 3 and (first["limit"], second["offset"]) == (2, 2)
    assert [r["stream_id"] for r in first["recordings"] + second["recordings"]] == streams[::-1]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"offset": "1.5"}):
        assert carol.get("/stream-recordings", **params).status_code == 422, params

    listing = carol.get("/simulation-jobs").json()
    assert listing["limit"] == 20 and listing["total"] == 3 and [j["job_id"] for j in listing["jobs"]] == ids[::-1]
    assert set(listing["jobs"][0]) == {"job_id", "status", "priority", "created_at", "completed_at", "error_message"}
    assert carol.get("/simulation-jobs", status="completed", limit=1).json()["total"] == 3
    assert carol.get("/simulation-jobs", status="completed", limit=1, offset=2).json()["jobs"][0]["job_id"] == ids[0]
    assert carol.get("/simulation-jobs", active="true").json()["total"] == 0
    assert carol.get("/simulation-jobs", active="false").json()["total"] == 3
    for params in ({"status": "running"}, {"limit": 101}, {"active": "maybe"}):
        assert carol.get("/simulation-jobs", **params).status_code == 422, params


# -- the queue, cancellation and restarts -------------------------------------------------


def test_queue_limit_cancellation_and_restart(tmp_path: Path) -> None:
    keys = [ALICE, BOB]
    long_script = script(DOG, BALL, gap_ms=5000)
    with LocalOdyssey(api_keys=keys, data_dir=tmp_path, max_queued_jobs=3, simulation_speed=0.25) as first:
        api = Api(first, ALICE)
        with Odyssey(api_key=ALICE.key, api_url=first.url, timeout=20) as client:
            client.connect()
            stream_id = client.start_stream(CAT, portrait=False)
            client.wait_for_frame(after=stream_id, timeout=10)
            time.sleep(0.5)
            client.end_stream()
        before = api.recording(stream_id)

        running = api.submit({"script": long_script})["job_id"]
        wait_for(lambda: api.job(running)["status"] == "processing", 10, "the first job to run")
        doomed = api.submit({"script": script(CAT)})["job_id"]
        waiting = api.submit({"script": script(DOG, gap_ms=500)})["job_id"]
        full = api.post("/simulation-jobs", {"script": script(CAT)})
        assert full.status_code == 429
        usage = full.json()["detail"]
        assert usage["error"] == "CONCURRENT_LIMIT_REACHED" and usage["details"] == {"active_count": 3, "limit": 3}
        assert Api(first, BOB).post("/simulation-jobs", {"script": script(CAT)}).status_code == 200

        cancelled = api.delete(f"/simulation-jobs/{doomed}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert api.delete(f"/simulation-jobs/{doomed}").status_code == 400
        busy = api.delete(f"/simulation-jobs/{running}")
        assert busy.status_code == 400 and "processing" in busy.json()["detail"]
        port = int(first.url.rsplit(":", 1)[1])

    with LocalOdyssey(api_keys=keys, data_dir=tmp_path, port=port) as second:
        api = Api(second, ALICE)
        after = api.recording(stream_id)
        assert after["frame_count"] == before["frame_count"] and after["duration_seconds"] == before["duration_seconds"]
        assert requests.get(before["video_url"], timeout=10).status_code == 200, "links survive a restart"
        resumed = api.finished_job(running)
        assert resumed["status"] == "completed" and resumed["retry_count"] == 1
        assert resumed["streams"][0]["frame_count"] == 200
        assert api.finished_job(waiting)["status"] == "completed"
        assert api.job(doomed)["status"] == "cancelled" and api.job(doomed)["streams"] == []
    assert (tmp_path / "odyssey-local.sqlite3").is_file()


def test_a_temporary_data_directory_is_removed_at_stop() -> None:
    with LocalOdyssey() as local:
        directory = local.data_dir
        assert directory.is_dir()
    assert not directory.exists()


def test_recording_can_be_turned_off() -> None:
    with LocalOdyssey(recording=False) as local:
        with Odyssey(api_key=local.api_key, api_url=local.url, timeout=20) as client:
            client.connect()
            stream_id = client.start_stream(CAT)
            client.wait_for_frame(after=stream_id, timeout=10)
            client.end_stream()
        api = Api(local, local.api_keys[0])
        assert api.get(f"/recordings/{stream_id}").status_code == 404
        assert api.get("/stream-recordings").json()["total"] == 0


# -- through the SDK ----------------------------------------------------------------------


def test_sdk_downloads_a_recording(rec_server: LocalOdyssey, recorded: dict[str, Any], tmp_path: Path) -> None:
    with Odyssey(api_key=ALICE.key, api_url=rec_server.url, timeout=20) as client:
        recording = client.get_recording(recorded["stream_id"])
        assert recording.frame_count == recorded["recording"]["frame_count"]
        paths = client.download_recording(
            recorded["stream_id"], tmp_path, what=("video", "events", "thumbnail", "preview"), progress=False
        )
    _, frames, _ = decode(paths["video"])
    assert len(frames) == recording.frame_count
    assert paths["events"].read_text().count("\n") == 3 and paths["thumbnail"].stat().st_size > 1000


def test_sdk_simulate_and_wait(rec_server: LocalOdyssey) -> None:
    with Odyssey(api_key=BOB.key, api_url=rec_server.url, timeout=20) as client:
        job = client.simulate(scripts=[script(CAT, gap_ms=500), script(DOG, BALL, gap_ms=500)], portrait=False)
        assert job.status is SimulationJobStatus.PENDING
        detail = client.wait_for_simulation(job, timeout=30, progress=False)
        assert detail.status is SimulationJobStatus.COMPLETED
        assert [s.script_index for s in detail.streams] == [0, 1]
        assert [s.frame_count for s in detail.streams] == [10, 20]
        assert client.get_recording(detail.streams[1].stream_id).duration_seconds == 1.0
        assert job.job_id in [j.job_id for j in client.list_simulations(status="completed").jobs]
        with pytest.raises(OdysseyError):
            client.cancel_simulation(job)


def test_a_recording_is_readable_right_after_end_stream(rec_server: LocalOdyssey, tmp_path: Path) -> None:
    with Odyssey(api_key=ALICE.key, api_url=rec_server.url, timeout=20) as client:
        client.connect()
        stream_id = client.start_stream(CAT, portrait=False)
        received = 0  # frames buffered before the start belong to no stream and are not recorded
        while received < 20:
            received += client.get_frame(timeout=10).stream_id == stream_id
        client.end_stream()
        recording = client.get_recording(stream_id)  # no polling: the server waits for its files
        paths = client.download_recording(stream_id, tmp_path, progress=False)
    size, frames, _ = decode(paths["video"])
    assert size == (1280, 704)
    assert recording.frame_count == len(frames) >= received - 2
