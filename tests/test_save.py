"""odyssey_sync.save: MP4 (at once and streaming) and stills, decoded back with PyAV and checked by their stamps."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from video_checks import decode, decode_image, stamp_of

from odyssey_sync import Odyssey, VideoFrame
from odyssey_sync import save as save_module
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.save import Mp4Writer, record, save_image, write_mp4
from odyssey_sync.stamp import read_stamp, write_stamp_rgb

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow


def stream_frames(client: Odyssey, count: int) -> list[VideoFrame]:
    """The first ``count`` frames of a new stream."""
    client.connect()
    stream_id = client.start_stream("A lighthouse on a cliff", portrait=False)
    frames = [client.get_frame(timeout=10) for _ in range(count)]
    assert {frame.stream_id for frame in frames} == {stream_id} and frames[0].index == 0
    return frames


def stamped_arrays(count: int, width: int = 320, height: int = 192) -> list[np.ndarray]:
    """RGB arrays carrying stamps 0..count-1."""
    out = []
    for number in range(count):
        rgb = np.full((height, width, 3), 90, np.uint8)
        write_stamp_rgb(rgb, number, 1000 + number)
        out.append(rgb)
    return out


def test_write_mp4_keeps_every_frame_in_order_with_the_media_clock_timing(client: Odyssey, tmp_path: Path) -> None:
    frames = stream_frames(client, 30)
    kept = frames[:10] + frames[20:]  # a 10-frame hole: the timing must show it
    summary = write_mp4(kept, tmp_path / "clip.mp4")

    video = decode(tmp_path / "clip.mp4")
    assert summary.frames == video.count == 20 and summary.dropped == 0
    assert (video.width, video.height) == (summary.width, summary.height) == (1280, 704)
    assert video.stamps == [stamp_of(frame) for frame in kept]
    media = [frame.timestamp_ms - kept[0].timestamp_ms for frame in kept]
    assert video.times_ms == pytest.approx(media, abs=1)
    assert video.times_ms[10] - video.times_ms[9] >= 500  # the hole: 11 frame intervals of 50 ms
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]  # no temporary file left


def test_write_mp4_of_arrays_needs_fps_and_uses_it(tmp_path: Path) -> None:
    arrays = stamped_arrays(12)
    with pytest.raises(ValueError, match=r"pass fps="):
        write_mp4(arrays, tmp_path / "a.mp4")
    summary = write_mp4(arrays, tmp_path / "a.mp4", fps=25)
    video = decode(tmp_path / "a.mp4")
    assert video.stamps == list(range(12))
    assert video.times_ms == [i * 40 for i in range(12)]
    assert summary.duration_seconds == pytest.approx(12 / 25)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], r"no frames"),
        ([np.zeros((191, 320, 3), np.uint8)], r"even width and height"),
        ([np.zeros((192, 320, 3), np.uint8), np.zeros((320, 192, 3), np.uint8)], r"a file of its own"),
        ([np.zeros((192, 320), np.uint8)], r"\(height, width, 3\) uint8 RGB"),
    ],
)
def test_write_mp4_refuses_bad_input_and_leaves_no_file(tmp_path: Path, frames: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_mp4(frames, tmp_path / "bad.mp4", fps=20)
    assert list(tmp_path.iterdir()) == []


def test_write_mp4_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.mp4"):
        write_mp4(stamped_arrays(1), tmp_path / "clip.avi", fps=20)
    with pytest.raises(ValueError, match=r"fps must be a number > 0"):
        write_mp4(stamped_arrays(1), tmp_path / "clip.mp4", fps=0)
    with pytest.raises(ValueError, match=r"crf"):
        write_mp4(stamped_arrays(1), tmp_path / "clip.mp4", fps=20, crf=99)
    with pytest.raises(TypeError, match=r"VideoFrame or an RGB numpy array"):
        write_mp4(["not a frame"], tmp_path / "clip.mp4", fps=20)  # type: ignore[list-item]


def test_save_image_writes_png_and_jpeg_by_extension(tmp_path: Path) -> None:
    rgb = stamped_arrays(8, width=640, height=352)[7]
    frame = VideoFrame(rgb)
    png = decode_image(save_image(frame, tmp_path / "shot.png"))
    assert np.array_equal(png, rgb)  # lossless
    jpeg = decode_image(save_image(rgb, tmp_path / "shot.JPG"))
    assert jpeg.shape == rgb.shape
    stamp = read_stamp(jpeg)
    assert stamp is not None and stamp.frame_number == 7
    with pytest.raises(ValueError, match=r"use \.png, \.jpg or \.jpeg"):
        save_image(rgb, tmp_path / "shot.gif")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["shot.JPG", "shot.png"]


def test_mp4_writer_encodes_while_frames_arrive(client: Odyssey, tmp_path: Path) -> None:
    frames = stream_frames(client, 1)
    with Mp4Writer(tmp_path / "live.mp4") as writer:
        positions = [writer.write(frames[0])]
        for _ in range(39):
            positions.append(writer.write(client.get_frame(timeout=10)))
    summary = writer.close()  # idempotent: the with block closed it
    video = decode(tmp_path / "live.mp4")
    assert positions == list(range(40)) and summary.frames == video.count == 40 and summary.dropped == 0
    stamps = [stamp for stamp in video.stamps if stamp is not None]
    assert len(stamps) == 40 and stamps == list(range(stamps[0], stamps[0] + 40))


def test_mp4_writer_drops_with_a_count_when_the_encoder_falls_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = save_module._to_av

    def slow_encoder_input(frame: Any) -> Any:
        assert gate.wait(30), "the test never opened the gate"
        return real(frame)

    monkeypatch.setattr(save_module, "_to_av", slow_encoder_input)
    arrays = stamped_arrays(10)
    writer = Mp4Writer(tmp_path / "behind.mp4", fps=20, max_queue=3)
    positions = [writer.write(rgb) for rgb in arrays]
    gate.set()
    summary = writer.close(timeout=30)

    kept = [p for p in positions if p is not None]
    assert kept == list(range(len(kept))) and 3 <= len(kept) <= 4  # the queue, plus the frame in the encoder
    assert summary.frames == len(kept) and summary.dropped == writer.frames_dropped == 10 - len(kept)
    assert positions[: len(kept)] == kept  # the first ones were kept, the later ones dropped
    assert decode(tmp_path / "behind.mp4").stamps == list(range(len(kept)))


def test_mp4_writer_discards_the_file_on_an_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Mp4Writer(tmp_path / "gone.mp4", fps=20) as writer:
        writer.write(stamped_arrays(1)[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"closed"):
        writer.write(stamped_arrays(1)[0])


def test_mp4_writer_reports_a_size_change_in_the_callers_thread(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "sizes.mp4", fps=20)
    writer.write(np.zeros((192, 320, 3), np.uint8))
    with pytest.raises(ValueError, match=r"320x192"):
        writer.write(np.zeros((320, 192, 3), np.uint8))
    assert writer.close().frames == 1


def test_record_pulls_the_stream_into_an_mp4(client: Odyssey, tmp_path: Path) -> None:
    stream_frames(client, 1)
    summary = record(client, tmp_path / "rec.mp4", seconds=1.0)
    video = decode(tmp_path / "rec.mp4")
    assert summary.frames == video.count and 3 <= video.count <= 25  # 1 s at 20 fps (fewer on a loaded machine)
    stamps = [stamp for stamp in video.stamps if stamp is not None]
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps))) and len(stamps) == video.count
    assert video.times_ms[-1] == pytest.approx(50 * (video.count - 1), abs=60)
    with pytest.raises(ValueError, match=r"seconds must be a number > 0"):
        record(client, tmp_path / "x.mp4", seconds=0)


def test_record_ends_with_the_stream(tmp_path: Path) -> None:
    with LocalOdyssey(max_stream_seconds=1.0) as local, Odyssey(api_key=local.api_key, api_url=local.url) as client:
        client.connect()
        client.start_stream("A lighthouse on a cliff", portrait=False)
        summary = record(client, tmp_path / "whole.mp4")  # no seconds=: until the server's limit ends the stream
    video = decode(tmp_path / "whole.mp4")
    assert summary.frames == video.count and 3 <= video.count <= 25  # the 1 s the server allowed
    first = video.stamps[0]
    assert first is not None and video.stamps == list(range(first, first + video.count))
