"""The notebook preview against the local server, and the sample notebook executed with nbclient."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from odyssey_sync import Odyssey, OdysseyError, OdysseyTimeoutError
from odyssey_sync.local import LocalOdyssey
from odyssey_sync.notebook import Preview, _JpegEncoder, preview
from odyssey_sync.stamp import read_stamp

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "notebook_preview.ipynb"


def jpeg_size(data: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(data), mode="r") as container:
        frame = next(container.decode(video=0))
    return frame.width, frame.height


def test_the_preview_shows_new_frames_and_stops_when_the_client_disconnects(client: Odyssey) -> None:
    client.connect()
    stream_id = client.start_stream("A lighthouse on a cliff at dusk", portrait=False)
    view = preview(client, fps=20, width=320)
    first = view.wait_for_frame(after=stream_id, timeout=10)
    later = view.wait_for_frame(after=first.received_at, timeout=10)
    assert first.stream_id == later.stream_id == stream_id
    first_stamp, later_stamp = read_stamp(first.data), read_stamp(later.data)
    assert first_stamp is not None and later_stamp is not None
    assert later_stamp.frame_number > first_stamp.frame_number
    assert view.widget.format == "jpeg" and jpeg_size(view.widget.value) == (320, 176)
    assert view.running and view.frames_shown >= 2 and "running" in repr(view)

    client.disconnect()
    assert view.wait(timeout=5), "the preview stops by itself when the client disconnects"
    assert not view.running and view.error is None
    with pytest.raises(OdysseyError, match="stopped"):
        view.wait_for_frame(timeout=5)


def test_stop_keeps_the_image_and_start_resumes(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A calm lake at noon", portrait=True)
    with preview(client, width=None) as view:
        view.wait_for_frame(timeout=10)
        assert view.stop() and not view.running
        shown, image = view.frames_shown, view.widget.value
        with pytest.raises(OdysseyError, match="stopped"):
            view.wait_for_frame(timeout=5)
        assert view.frames_shown == shown and view.widget.value == image
        assert jpeg_size(image) == (704, 1280), "width=None: full size"
        view.start()
        resumed = view.wait_for_frame(timeout=10)
        assert view.frames_shown > shown and resumed.stream_id == client.current_stream_id
    assert not view.running, "leaving the with block stops it"


def test_a_timeout_is_reported_while_no_new_frame_is_shown(client: Odyssey, server: LocalOdyssey) -> None:
    client.connect()
    view = preview(client, fps=50)
    stalled_since = view.wait_for_frame(timeout=10).received_at
    server.faults.stall_video(True)  # well under the client's 5 s no-video watchdog
    try:
        with pytest.raises(OdysseyTimeoutError, match="no new frame within 0.3 s"):
            while True:  # frames already in flight may still come; then the stall shows
                stalled_since = view.wait_for_frame(after=stalled_since, timeout=0.3).received_at
    finally:
        server.faults.stall_video(False)
    assert view.running, "a stall is not an end"
    view.stop()


def test_arguments_are_checked(server: LocalOdyssey) -> None:
    idle = Odyssey(api_key=server.api_key, api_url=server.url)
    with pytest.raises(OdysseyError, match="call connect"):
        preview(idle)
    not_started = Preview(idle)
    assert not not_started.running and not_started.wait(0)
    with pytest.raises(TypeError, match="latest_frame"):
        preview(object())  # type: ignore[arg-type]  # the point of the test
    for bad in ({"fps": 0}, {"width": 8}, {"quality": 1}, {"quality": 40}):
        with pytest.raises(ValueError):
            Preview(idle, **bad)


def test_the_jpeg_encoder_scales_to_even_sizes_and_sets_the_quality() -> None:
    rgb = np.zeros((704, 1280, 3), np.uint8)
    rgb[:, 640:] = (255, 0, 0)
    small = _JpegEncoder(333, 5).encode(rgb)
    assert small[:2] == b"\xff\xd8" and jpeg_size(small) == (332, 182)
    with av.open(io.BytesIO(small), mode="r") as container:
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert decoded[:, :150].mean() < 10 and decoded[:, 200:, 0].mean() > 200, "left black, right red"
    noise = np.random.default_rng(0).integers(0, 256, (704, 1280, 3), dtype=np.uint8)
    assert len(_JpegEncoder(None, 2).encode(noise)) > 2 * len(_JpegEncoder(None, 31).encode(noise))


def test_without_ipywidgets_the_import_names_the_extra() -> None:
    code = "import sys\nsys.modules['ipywidgets'] = None\nimport odyssey_sync.notebook\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "MissingExtraError" in done.stderr and "pip install 'odyssey-sync[notebook]'" in done.stderr


@pytest.mark.slow
def test_the_sample_notebook_runs_against_a_local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from ipykernel.kernelspec import write_kernel_spec

    # A "python3" kernel running this interpreter, found before any other kernel of that name.
    jupyter_path = tmp_path / "jupyter"
    write_kernel_spec(jupyter_path / "kernels" / "python3")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    for name in ("ODYSSEY_API_KEY", "ODYSSEY_API_URL"):
        monkeypatch.delenv(name, raising=False)  # the notebook starts its own local server

    notebook = nbformat.read(SAMPLE, as_version=4)
    runner = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    runner.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs)
    last = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    shown = int(last.split("the preview showed ")[1].split()[0])
    assert shown >= 2


def test_a_preview_takes_no_frame_from_a_reader(client: Odyssey) -> None:
    client.connect()
    client.start_stream("A harbour at night", portrait=False)
    with preview(client, fps=20, width=320) as view:
        frames = list(client.frames(limit=30, timeout=10))
        shown = view.wait_for_frame(timeout=10)
    assert [f.index for f in frames] == list(range(30)), "the recorder got every frame while the preview ran"
    assert view.frames_shown >= 1 and shown.stream_id == frames[0].stream_id
