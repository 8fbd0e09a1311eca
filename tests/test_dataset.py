"""odyssey_sync.dataset against the local server: videos decoded, rows read back, resumption, the extra's hint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from video_checks import decode

from odyssey_sync import Odyssey
from odyssey_sync.dataset import (
    Dataset,
    EpisodeSummary,
    check_episode_id,
    frame_schema,
    write_dataset,
)
from odyssey_sync.types import SimulationJobDetail

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

SCRIPT = [
    {"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}},
    {"timestamp_ms": 1000, "interact": {"prompt": "The cat stretches"}},
    {"timestamp_ms": 2000, "end": {}},
]
EXPANSION = ", cinematic lighting, smooth camera motion, rich detail"
REPO_ROOT = Path(__file__).resolve().parent.parent


def finished_simulation(client: Odyssey) -> SimulationJobDetail:
    job = client.simulate(script=SCRIPT, portrait=False)
    return client.wait_for_simulation(job, timeout=60, progress=False, poll_interval=0.1)


def test_a_live_episode_is_the_frames_the_client_received(client: Odyssey, tmp_path: Path) -> None:
    dataset = Dataset(tmp_path)
    client.connect()
    with dataset.live_episode("dog-0", episode_index=3, description={"note": "test"}) as episode:
        stream_id = client.start_stream("A dog in a park", portrait=False)
        ack = None
        for frame in client.frames(timeout=10):
            episode.add(frame)
            if episode.frames == 15 and ack is None:
                ack = client.interact("The dog runs")
            if episode.frames == 60:
                break
        client.end_stream()
    summary = episode.commit()
    assert summary == EpisodeSummary(
        "dog-0", "written", stream_id=stream_id, frames=60, dropped=0, video=tmp_path / "videos" / "dog-0.mp4"
    )

    rows = dataset.read().to_pylist()
    video = decode(tmp_path / "videos" / "dog-0.mp4")
    assert len(rows) == video.count == 60 and (video.width, video.height) == (1280, 704)
    assert [row["video_frame"] for row in rows] == list(range(60))
    assert {(row["episode_id"], row["episode_index"], row["source"], row["stream_id"], row["video_path"],
             row["width"], row["height"]) for row in rows} == {("dog-0", 3, "live", stream_id, "videos/dog-0.mp4", 1280, 704)}
    # Stream-relative numbering that agrees with the server's stamps in the pictures.
    assert rows[0]["frame_index"] == 0 and rows[0]["timestamp_ms"] == 0
    assert all(stamp is not None for stamp in video.stamps)
    first_stamp = video.stamps[0]
    assert [row["frame_index"] for row in rows] == [stamp - first_stamp for stamp in video.stamps]  # type: ignore[operator]
    assert [row["timestamp_ms"] for row in rows] == pytest.approx([50 * row["frame_index"] for row in rows], abs=2)
    # The prompt in force: the start prompt, then the interact's, from some frame after the 15th on.
    prompts = [(row["prompt_index"], row["prompt"]) for row in rows]
    changed = next(i for i, (index, _) in enumerate(prompts) if index == 1)
    assert 15 <= changed < 60
    assert set(prompts[:changed]) == {(0, "A dog in a park" + EXPANSION)}
    assert set(prompts[changed:]) == {(1, "The dog runs" + EXPANSION)}
    assert dataset.episodes()[0]["description"] == {"note": "test"}


def test_a_simulation_becomes_an_episode_from_its_recording(client: Odyssey, tmp_path: Path) -> None:
    detail = finished_simulation(client)
    stream_id = detail.streams[0].stream_id
    summaries = write_dataset(tmp_path, client, simulations=[detail.job_id], progress=False)
    assert [(s.episode_id, s.status, s.frames) for s in summaries] == [(stream_id, "written", 40)]

    rows = pq.read_table(tmp_path / "frames").to_pylist()  # the folder reads as one table
    assert [row["frame_index"] for row in rows] == [row["video_frame"] for row in rows] == list(range(40))
    assert [row["timestamp_ms"] for row in rows] == [50 * i for i in range(40)]
    assert [row["prompt_index"] for row in rows] == [0] * 20 + [1] * 20  # the interact at 1000 ms = frame 20
    assert rows[0]["prompt"] == "A cat on a windowsill" + EXPANSION
    assert rows[39]["prompt"] == "The cat stretches" + EXPANSION
    assert {row["source"] for row in rows} == {"simulation"}
    video = decode(tmp_path / "videos" / f"{stream_id}.mp4")
    assert video.stamps == list(range(40))  # offline frames are stamped 0..39
    # The recording is taken as it is, not re-encoded.
    original = client.download_recording(stream_id, tmp_path / "original.mp4", progress=False)["video"]
    assert original.read_bytes() == (tmp_path / "videos" / f"{stream_id}.mp4").read_bytes()
    facts = Dataset(tmp_path).episodes()[0]
    assert facts["description"] == {"job_id": detail.job_id, "script_index": 0} and facts["frames"] == 40


def test_a_rerun_skips_complete_episodes_and_redoes_partial_ones(client: Odyssey, tmp_path: Path) -> None:
    first, second = finished_simulation(client), finished_simulation(client)
    done_id, partial_id = first.streams[0].stream_id, second.streams[0].stream_id
    write_dataset(tmp_path, client, simulations=[first, second], progress=False)
    done_video = tmp_path / "videos" / f"{done_id}.mp4"
    before = done_video.stat()
    # An interrupted second episode: its rows never written, leftovers in .partial.
    (tmp_path / "frames" / f"{partial_id}.parquet").unlink()
    (tmp_path / "videos" / f"{partial_id}.mp4").write_bytes(b"truncated")
    (tmp_path / ".partial" / partial_id).mkdir(parents=True)
    (tmp_path / ".partial" / partial_id / "junk").write_bytes(b"x")

    again = write_dataset(tmp_path, client, simulations=[first, second], progress=False)
    assert [(s.episode_id, s.status) for s in again] == [(done_id, "skipped"), (partial_id, "written")]
    after = done_video.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # untouched
    assert decode(tmp_path / "videos" / f"{partial_id}.mp4").count == 40
    assert not (tmp_path / ".partial").exists()
    assert Dataset(tmp_path).read().num_rows == 80


def test_an_aborted_live_episode_leaves_nothing(client: Odyssey, tmp_path: Path) -> None:
    dataset = Dataset(tmp_path)
    client.connect()
    stream_id = client.start_stream("A dog in a park", portrait=False)
    with pytest.raises(KeyboardInterrupt), dataset.live_episode("gone") as episode:
        for frame in client.frames(timeout=10):
            episode.add(frame)
            if episode.frames == 5:
                raise KeyboardInterrupt
    assert episode.stream_id == stream_id
    assert not dataset.is_complete("gone")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(ValueError, match=r"got no frame of a stream"), dataset.live_episode("empty"):
        pass


def test_a_missing_recording_is_reported_and_the_rest_goes_on(client: Odyssey, tmp_path: Path) -> None:
    detail = finished_simulation(client)
    summaries = write_dataset(tmp_path, client, streams=["no-such-stream", detail.streams[0].stream_id], progress=False)
    assert [s.status for s in summaries] == ["failed", "written"]
    assert "not found" in (summaries[0].error or "").lower()
    assert Dataset(tmp_path).complete_episodes() == [detail.streams[0].stream_id]


def test_a_recorded_live_stream_is_added_from_its_recording(client: Odyssey, tmp_path: Path) -> None:
    client.connect()
    stream_id = client.start_stream("A dog in a park", portrait=False)
    for _ in range(10):
        client.get_frame(timeout=10)
    client.interact("The dog runs")
    for _ in range(10):  # frames the server sent well after it applied the prompt
        client.get_frame(timeout=10)
    client.end_stream()
    (summary,) = write_dataset(tmp_path, client, streams=[stream_id], progress=False)
    rows = Dataset(tmp_path).read().to_pylist()
    assert summary.status == "written" and len(rows) == summary.frames == decode(summary.video).count  # type: ignore[arg-type]
    assert {row["source"] for row in rows} == {"recording"}
    assert rows[0]["prompt"] == "A dog in a park" + EXPANSION and rows[-1]["prompt"] == "The dog runs" + EXPANSION


def test_an_empty_dataset_reads_as_an_empty_table(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "nothing-yet")
    assert dataset.read().schema == frame_schema() and dataset.read().num_rows == 0
    assert dataset.complete_episodes() == [] and dataset.episodes() == []


@pytest.mark.parametrize("bad", ["", "../up", "a/b", ".hidden", "x" * 129, 7])
def test_episode_ids_must_name_files(bad: object) -> None:
    with pytest.raises(ValueError, match=r"cannot name a file"):
        check_episode_id(bad)


def test_without_pyarrow_the_error_says_which_extra_to_install(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["pyarrow"] = None  # as if it were not installed
        from odyssey_sync.dataset import Dataset
        try:
            Dataset({str(tmp_path)!r})
        except ImportError as error:
            print(error)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert "Writing an Odyssey dataset needs the optional package 'pyarrow'" in done.stdout
    assert "pip install 'odyssey-sync[data]'" in done.stdout

