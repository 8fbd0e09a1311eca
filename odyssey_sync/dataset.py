"""Training-ready datasets: one H.264 MP4 per stream, one Parquet row per frame (``pip install 'odyssey-sync[data]'``).

::

    from odyssey_sync.dataset import Dataset, write_dataset

    # finished simulations and recorded streams, in one call (resumable, with a tqdm bar):
    write_dataset("data/", client, simulations=[job], streams=[stream_id])

    # a live stream, as the client receives it:
    dataset = Dataset("data/")
    with dataset.live_episode("cat-0") as episode:
        client.start_stream("A cat", portrait=False)
        for frame in client.frames(limit=200):
            episode.add(frame)
    table = dataset.read()                                  # pyarrow.Table of every frame row

Layout of the directory::

    videos/<episode>.mp4        the episode's stream, H.264
    frames/<episode>.parquet    one row per frame of that video; written last, so it marks the
                                episode complete (pyarrow, pandas, Polars, Spark or HF datasets
                                read the whole folder as one table)
    .partial/<episode>/         work in progress; a re-run removes it and redoes the episode

An *episode* is one stream, named by an id that stays the same across runs (a
live stream gets a new stream id each time it is run, so the stream id cannot
be the key); a re-run skips every episode whose Parquet file exists and
redoes the others. Files are written under temporary names and renamed into
place, so a crash never leaves a truncated file under a real name.

Why MP4 per stream and not WebDataset shards: the frames of a stream are
nearly identical from one to the next, and H.264 stores the differences. At
1280x704 (the local server's world, measured) a live capture costs ~3 kB per
frame and the server's own recording ~14 kB (2.5 Mbit/s), where a JPEG of the
same frame is ~47 kB and a PNG ~250 kB: shards of images would be 3-15x (JPEG)
to 20-80x (PNG) larger, and JPEG adds a second lossy step. A simulation's
recording is taken as it is, with no decode and no re-encode. A stream is also the natural unit of resumption (one file, renamed
once). Trainers that sample frames read the Parquet rows and seek in the
video with any H.264 decoder (PyAV, torchvision, decord): ``video_frame`` is
the frame's position in the file and ``timestamp_ms`` its presentation time.
Shards win for shuffled per-frame streaming across a cluster; converting this
dataset into them later is one pass, the other way round needs re-encoding.

Columns (see :func:`frame_schema`): ``episode_id``, ``episode_index``,
``source`` (``"live"``: frames as the client received them; ``"simulation"`` /
``"recording"``: the server's recording of a simulation / a live stream),
``stream_id``, ``frame_index`` and ``timestamp_ms`` (stream-relative: 0 is the
stream's first frame; live captures keep the stream's own numbering, so frames
the client dropped show as gaps), ``prompt`` (the applied prompt in force),
``prompt_index`` (0 for the start prompt, +1 at each change of the applied
prompt), ``video_path`` (relative to the dataset folder), ``video_frame``,
``width``, ``height``. Episode-level facts (the episode's description, frames
dropped, the SDK version) are in each Parquet file's metadata;
:meth:`Dataset.episodes` reads them.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs
import av
from tqdm import tqdm

from ._account import _bar_off
from ._extras import require
from ._version import __version__
from .errors import OdysseyError
from .frames import VideoFrame
from .save import DEFAULT_CRF, STREAMING_PRESET, Mp4Writer
from .types import SimulationJobDetail, SimulationJobInfo, SimulationJobStatus

if TYPE_CHECKING:
    import pyarrow as pa

    from .client import Odyssey

__all__ = [
    "Dataset",
    "EpisodeSummary",
    "LiveEpisode",
    "check_episode_id",
    "frame_schema",
    "write_dataset",
]

Source = Literal["live", "simulation", "recording"]

_EPISODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_METADATA_KEY = b"odyssey_sync.episode"
_FEATURE = "Writing an Odyssey dataset"


@attrs.frozen
class EpisodeSummary:
    """What happened to one episode: ``status`` is ``"written"``, ``"skipped"`` (complete already) or ``"failed"``."""

    episode_id: str
    status: Literal["written", "skipped", "failed"]
    stream_id: str | None = None
    frames: int = 0
    dropped: int = 0
    video: Path | None = None
    error: str | None = None


def check_episode_id(episode_id: object) -> str:
    """``episode_id`` if it can name the episode's files: letters, digits, ``.``, ``_``, ``-``, up to 128."""
    if not isinstance(episode_id, str) or not _EPISODE_ID.fullmatch(episode_id):
        raise ValueError(
            f"episode id {episode_id!r} cannot name a file: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. 'cat-0001')"
        )
    return episode_id


def frame_schema() -> pa.Schema:
    """The Arrow schema of the per-frame rows."""
    pa = _pyarrow()
    return pa.schema(
        [
            pa.field("episode_id", pa.string(), nullable=False),
            pa.field("episode_index", pa.int32(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("stream_id", pa.string(), nullable=False),
            pa.field("frame_index", pa.int64(), nullable=False),
            pa.field("timestamp_ms", pa.int64(), nullable=False),
            pa.field("prompt", pa.string()),
            pa.field("prompt_index", pa.int32(), nullable=False),
            pa.field("video_path", pa.string(), nullable=False),
            pa.field("video_frame", pa.int64(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
        ]
    )


class Dataset:
    """A dataset folder: videos, Parquet rows, and which episodes are complete.

    Several threads may write different episodes into one ``Dataset`` at
    once; two writers of the same episode id are not supported.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        _pyarrow()
        self.root = Path(root)
        """The dataset folder."""
        self._partial_lock = threading.Lock()  # .partial/ is created and removed by several writers

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r})"

    # -- reading -----------------------------------------------------------------------------

    def is_complete(self, episode_id: str) -> bool:
        """Whether the episode's rows (and so its video) are in place."""
        return self._rows_path(check_episode_id(episode_id)).is_file()

    def complete_episodes(self) -> list[str]:
        """The ids of the complete episodes, sorted."""
        folder = self.root / "frames"
        if not folder.is_dir():
            return []
        return sorted(path.stem for path in folder.glob("*.parquet") if _EPISODE_ID.fullmatch(path.stem))

    def episodes(self) -> list[dict[str, Any]]:
        """Each complete episode's facts (id, index, source, stream id, frames, dropped, description, ...)."""
        pq = _parquet()
        found = []
        for episode_id in self.complete_episodes():
            metadata = pq.read_schema(self._rows_path(episode_id)).metadata or {}
            found.append(json.loads(metadata.get(_METADATA_KEY, b"{}")))
        return sorted(found, key=lambda info: (info.get("episode_index", 0), info.get("episode_id", "")))

    def read(self) -> pa.Table:
        """Every frame row of the complete episodes, by episode index then video position."""
        pa, pq = _pyarrow(), _parquet()
        paths = [self._rows_path(episode_id) for episode_id in self.complete_episodes()]
        if not paths:
            return frame_schema().empty_table()
        table = pa.concat_tables([pq.read_table(path, schema=frame_schema()) for path in paths])
        return table.sort_by([("episode_index", "ascending"), ("episode_id", "ascending"), ("video_frame", "ascending")])

    # -- writing -----------------------------------------------------------------------------

    def live_episode(
        self,
        episode_id: str,
        *,
        episode_index: int = 0,
        description: Mapping[str, Any] | None = None,
        preset: str = STREAMING_PRESET,
        crf: int = DEFAULT_CRF,
    ) -> LiveEpisode:
        """Start writing an episode from frames as the client receives them (see :class:`LiveEpisode`).

        Leftovers of an earlier, unfinished attempt are removed first.
        ``description`` (JSON-able) is kept in the episode's metadata.
        """
        episode_id = check_episode_id(episode_id)
        _check_index(episode_index)
        partial = self._fresh_partial(episode_id)
        return LiveEpisode(self, episode_id, episode_index, dict(description or {}), partial, preset, crf)

    def add_recording(
        self,
        client: Odyssey,
        stream_id: str,
        *,
        episode_id: str | None = None,
        episode_index: int = 0,
        source: Source = "recording",
        description: Mapping[str, Any] | None = None,
        timeout: float | None = 120.0,
    ) -> EpisodeSummary:
        """Add a finished stream from the server's recording: its MP4 as it is, rows from its events.

        For a simulation's streams pass ``source="simulation"``. ``episode_id``
        defaults to the stream id. An episode that is complete already is
        skipped (``status="skipped"``) without any request.
        """
        if not isinstance(stream_id, str) or not stream_id:
            raise TypeError(f"stream_id must be a non-empty string, not {stream_id!r}")
        episode_id = check_episode_id(stream_id if episode_id is None else episode_id)
        _check_index(episode_index)
        if source not in ("live", "simulation", "recording"):
            raise ValueError(f"source must be 'live', 'simulation' or 'recording', not {source!r}")
        if self.is_complete(episode_id):
            return EpisodeSummary(episode_id, "skipped", stream_id=stream_id, video=self._video_path(episode_id))
        partial = self._fresh_partial(episode_id)
        files = client.download_recording(stream_id, partial, what=("video", "events"), progress=False, timeout=timeout)
        events = _read_events(files["events"])
        positions, width, height = _video_timeline(files["video"])
        rows = _recording_rows(events, positions)
        table = _table(
            rows,
            episode_id=episode_id,
            episode_index=episode_index,
            source=source,
            stream_id=stream_id,
            video_path=self._relative_video(episode_id),
            width=width,
            height=height,
        )
        facts = _facts(episode_id, episode_index, source, stream_id, len(rows["video_frame"]), 0, width, height, description)
        return self._commit(episode_id, files["video"], table, facts)

    def add_episode_files(self, episode_id: str, video: bytes, rows: bytes) -> EpisodeSummary:
        """Adopt an episode written elsewhere (another machine): its MP4 and Parquet file contents.

        This is how Ray workers hand their episodes to the driver's dataset.
        """
        pq, pa = _parquet(), _pyarrow()
        episode_id = check_episode_id(episode_id)
        partial = self._fresh_partial(episode_id)
        video_path = partial / "video.mp4"
        video_path.write_bytes(video)
        table = pq.read_table(pa.BufferReader(rows))
        facts = json.loads((table.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
        if facts.get("episode_id") != episode_id:
            raise ValueError(f"the rows given are of episode {facts.get('episode_id')!r}, not {episode_id!r}")
        return self._commit(episode_id, video_path, table, facts)

    def episode_files(self, episode_id: str) -> tuple[Path, Path]:
        """The video and Parquet paths of a complete episode."""
        episode_id = check_episode_id(episode_id)
        if not self.is_complete(episode_id):
            raise FileNotFoundError(f"episode {episode_id!r} is not complete in {self.root}")
        return self._video_path(episode_id), self._rows_path(episode_id)

    # -- internals ---------------------------------------------------------------------------

    def _rows_path(self, episode_id: str) -> Path:
        return self.root / "frames" / f"{episode_id}.parquet"

    def _video_path(self, episode_id: str) -> Path:
        return self.root / "videos" / f"{episode_id}.mp4"

    def _relative_video(self, episode_id: str) -> str:
        return f"videos/{episode_id}.mp4"

    def _fresh_partial(self, episode_id: str) -> Path:
        partial = self.root / ".partial" / episode_id
        with self._partial_lock:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        return partial

    def _drop_partial(self, episode_id: str) -> None:
        with self._partial_lock:
            shutil.rmtree(self.root / ".partial" / episode_id, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.root / ".partial").rmdir()  # only when no other episode is in progress

    def _commit(self, episode_id: str, video: Path, table: pa.Table, facts: dict[str, Any]) -> EpisodeSummary:
        """Move the video into place, then write the rows: the rows file marks the episode complete."""
        pq = _parquet()
        table = table.replace_schema_metadata({_METADATA_KEY: json.dumps(facts).encode("utf-8")})
        target_video, target_rows = self._video_path(episode_id), self._rows_path(episode_id)
        target_video.parent.mkdir(parents=True, exist_ok=True)
        target_rows.parent.mkdir(parents=True, exist_ok=True)
        os.replace(video, target_video)
        temp_rows = target_rows.with_name(f".{target_rows.name}.part")
        pq.write_table(table, temp_rows)
        os.replace(temp_rows, target_rows)
        self._drop_partial(episode_id)
        return EpisodeSummary(
            episode_id,
            "written",
            stream_id=facts.get("stream_id"),
            frames=int(facts.get("frames", table.num_rows)),
            dropped=int(facts.get("dropped", 0)),
            video=target_video,
        )


class LiveEpisode:
    """One episode being written from live frames: an :class:`~odyssey_sync.save.Mp4Writer` plus its rows.

    :meth:`add` each frame the client hands over; it encodes on the writer's
    thread as frames arrive, so memory stays flat. Leaving the ``with``
    block commits the episode (:meth:`commit`); an exception discards it.
    Frames that belong to no stream (idle video before a start) are skipped;
    an episode holds one stream.
    """

    def __init__(
        self,
        dataset: Dataset,
        episode_id: str,
        episode_index: int,
        description: dict[str, Any],
        partial: Path,
        preset: str,
        crf: int,
    ) -> None:
        self._dataset = dataset
        self.episode_id = episode_id
        """The episode's id."""
        self._index = episode_index
        self._description = description
        self._writer = Mp4Writer(partial / "video.mp4", preset=preset, crf=crf)
        self._rows: dict[str, list[Any]] = {name: [] for name in _ROW_FIELDS}
        self._stream_id: str | None = None
        self._prompt: str | None = None
        self._prompt_index = -1
        self._size = (0, 0)
        self._summary: EpisodeSummary | None = None

    @property
    def stream_id(self) -> str | None:
        """The stream of the frames added so far."""
        return self._stream_id

    @property
    def frames(self) -> int:
        """Frames in the video so far."""
        return self._writer.frames_written

    @property
    def dropped(self) -> int:
        """Frames the encoder could not keep up with (not in the video, no row)."""
        return self._writer.frames_dropped

    def add(self, frame: VideoFrame) -> int | None:
        """Add a frame; its position in the video, or ``None`` if skipped (idle) or dropped (encoder behind)."""
        if not isinstance(frame, VideoFrame):
            raise TypeError(f"add() takes an odyssey_sync.VideoFrame, not {type(frame).__name__}")
        if frame.stream_id is None:
            return None
        if self._stream_id is None:
            self._stream_id = frame.stream_id
            self._size = (frame.width, frame.height)
        elif frame.stream_id != self._stream_id:
            raise ValueError(
                f"episode {self.episode_id!r} holds stream {self._stream_id}; this frame is of stream "
                f"{frame.stream_id}: start a new episode for each stream"
            )
        position = self._writer.write(frame)
        if position is None:
            return None
        if frame.prompt != self._prompt or self._prompt_index < 0:
            self._prompt, self._prompt_index = frame.prompt, self._prompt_index + 1
        rows = self._rows
        rows["frame_index"].append(frame.index)
        rows["timestamp_ms"].append(frame.timestamp_ms)
        rows["prompt"].append(frame.prompt)
        rows["prompt_index"].append(self._prompt_index)
        rows["video_frame"].append(position)
        return position

    def commit(self) -> EpisodeSummary:
        """Finish the video and write the rows; the episode is complete. Idempotent."""
        if self._summary is not None:
            return self._summary
        if self._stream_id is None:
            self.abort()
            raise ValueError(f"episode {self.episode_id!r} got no frame of a stream: start a stream before adding frames")
        written = self._writer.close()
        table = _table(
            self._rows,
            episode_id=self.episode_id,
            episode_index=self._index,
            source="live",
            stream_id=self._stream_id,
            video_path=self._dataset._relative_video(self.episode_id),
            width=self._size[0],
            height=self._size[1],
        )
        facts = _facts(
            self.episode_id, self._index, "live", self._stream_id, written.frames, written.dropped,
            self._size[0], self._size[1], self._description,
        )
        self._summary = self._dataset._commit(self.episode_id, written.path, table, facts)
        return self._summary

    def abort(self) -> None:
        """Discard the episode's partial files. Idempotent."""
        self._writer.abort()
        self._dataset._drop_partial(self.episode_id)

    def __enter__(self) -> LiveEpisode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_dataset(
    root: str | os.PathLike[str],
    client: Odyssey,
    *,
    simulations: Iterable[str | SimulationJobInfo | SimulationJobDetail] = (),
    streams: Iterable[str] = (),
    progress: bool = True,
    timeout: float | None = 600.0,
) -> list[EpisodeSummary]:
    """Turn finished simulations and recorded streams into a dataset in ``root``, in one call.

    Each stream of each simulation job (waited for if still running, up to
    ``timeout`` s) and each stream id in ``streams`` (a finished live stream's
    recording) becomes one episode named by its stream id, indexed in the
    order given. Complete episodes are skipped, partial ones redone; a failed
    job or a missing recording is reported (``status="failed"``) and the
    rest goes on. ``progress`` shows a tqdm bar on stderr when it is a terminal.
    """
    dataset = Dataset(root)
    jobs = list(simulations)
    stream_ids = list(streams)
    for stream_id in stream_ids:
        if not isinstance(stream_id, str) or not stream_id:
            raise TypeError(f"streams takes stream id strings, not {stream_id!r}")
    summaries: list[EpisodeSummary] = []
    index = 0
    with tqdm(total=len(stream_ids) or None, desc="dataset", unit="stream", disable=_bar_off(progress)) as bar:
        for job in jobs:
            try:
                detail = client.wait_for_simulation(job, timeout=timeout, progress=False)
            except OdysseyError as error:
                job_id = job if isinstance(job, str) else job.job_id
                summaries.append(EpisodeSummary(job_id, "failed", error=f"{type(error).__name__}: {error}"))
                continue
            if detail.status is not SimulationJobStatus.COMPLETED:
                summaries.append(
                    EpisodeSummary(detail.job_id, "failed", error=f"simulation {detail.status.value}: {detail.error_message or 'no reason given'}")
                )
                continue
            bar.total = (bar.total or 0) + len(detail.streams)
            bar.refresh()
            for stream in sorted(detail.streams, key=lambda s: s.script_index):
                summaries.append(_add_safely(dataset, client, stream.stream_id, index, "simulation", {"job_id": detail.job_id, "script_index": stream.script_index}, timeout))
                index += 1
                bar.update()
        for stream_id in stream_ids:
            summaries.append(_add_safely(dataset, client, stream_id, index, "recording", None, timeout))
            index += 1
            bar.update()
    return summaries


# -- helpers -----------------------------------------------------------------------------------

_ROW_FIELDS = ("frame_index", "timestamp_ms", "prompt", "prompt_index", "video_frame")


def _add_safely(
    dataset: Dataset,
    client: Odyssey,
    stream_id: str,
    index: int,
    source: Source,
    description: Mapping[str, Any] | None,
    timeout: float | None,
) -> EpisodeSummary:
    try:
        return dataset.add_recording(
            client, stream_id, episode_index=index, source=source, description=description, timeout=timeout
        )
    except (OdysseyError, ValueError) as error:  # a missing recording, or a file PyAV cannot read
        return EpisodeSummary(stream_id, "failed", stream_id=stream_id, error=f"{type(error).__name__}: {error}")


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    event = json.loads(line)
                except ValueError as error:
                    raise ValueError(f"{path} line {number} is not JSON ({error}); download the recording again") from None
                if isinstance(event, dict):
                    events.append(event)
    return events


def _video_timeline(path: Path) -> tuple[list[int], int, int]:
    """Presentation times (ms from the first frame) of every frame of an MP4, in order, read from packets only."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        if base is None:
            raise ValueError(f"{path} has no time base; it is not a usable video")
        pts = sorted(int(packet.pts) for packet in container.demux(stream) if packet.pts is not None and packet.size)
        width, height = stream.codec_context.width, stream.codec_context.height
    if not pts:
        raise ValueError(f"{path} holds no video frames")
    return [round((value - pts[0]) * base * 1000) for value in pts], width, height


def _recording_rows(events: Sequence[Mapping[str, Any]], times_ms: Sequence[int]) -> dict[str, list[Any]]:
    """Rows of a recorded stream: the prompt in force at each frame, from the start and update events.

    An event's ``frame_number`` (counted in the video) says where it takes
    effect; without one, its ``t_ms`` is compared with the frame's time.
    """
    changes: list[tuple[int, str | None]] = []
    for event in events:
        if event.get("type") not in ("start", "update"):
            continue
        text = event.get("applied_prompt") or event.get("prompt")
        number = event.get("frame_number")
        if isinstance(number, int) and not isinstance(number, bool):
            first = number
        else:
            at = event.get("t_ms", 0)
            first = next((i for i, t in enumerate(times_ms) if t >= at), len(times_ms))
        changes.append((max(0, first), text if isinstance(text, str) else None))
    changes.sort(key=lambda change: change[0])
    rows: dict[str, list[Any]] = {name: [] for name in _ROW_FIELDS}
    prompt: str | None = None
    prompt_index = -1
    pending = 0
    for position, time_ms in enumerate(times_ms):
        changed = False
        while pending < len(changes) and changes[pending][0] <= position:
            if changes[pending][1] != prompt or prompt_index < 0:
                prompt, changed = changes[pending][1], True
            pending += 1
        if changed or prompt_index < 0:
            prompt_index += 1
        rows["frame_index"].append(position)
        rows["timestamp_ms"].append(time_ms)
        rows["prompt"].append(prompt)
        rows["prompt_index"].append(prompt_index)
        rows["video_frame"].append(position)
    return rows


def _table(
    rows: Mapping[str, list[Any]],
    *,
    episode_id: str,
    episode_index: int,
    source: str,
    stream_id: str,
    video_path: str,
    width: int,
    height: int,
) -> pa.Table:
    pa = _pyarrow()
    count = len(rows["video_frame"])
    schema = frame_schema()
    columns = {
        "episode_id": pa.array([episode_id] * count, pa.string()),
        "episode_index": pa.array([episode_index] * count, pa.int32()),
        "source": pa.array([source] * count, pa.string()),
        "stream_id": pa.array([stream_id] * count, pa.string()),
        "frame_index": pa.array(rows["frame_index"], pa.int64()),
        "timestamp_ms": pa.array(rows["timestamp_ms"], pa.int64()),
        "prompt": pa.array(rows["prompt"], pa.string()),
        "prompt_index": pa.array(rows["prompt_index"], pa.int32()),
        "video_path": pa.array([video_path] * count, pa.string()),
        "video_frame": pa.array(rows["video_frame"], pa.int64()),
        "width": pa.array([width] * count, pa.int32()),
        "height": pa.array([height] * count, pa.int32()),
    }
    return pa.table([columns[field.name] for field in schema], schema=schema)


def _facts(
    episode_id: str,
    episode_index: int,
    source: str,
    stream_id: str,
    frames: int,
    dropped: int,
    width: int,
    height: int,
    description: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "episode_id": episode_id,
        "episode_index": episode_index,
        "source": source,
        "stream_id": stream_id,
        "frames": frames,
        "dropped": dropped,
        "width": width,
        "height": height,
        "description": dict(description or {}),
        "written_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "odyssey_sync_version": __version__,
    }


def _check_index(index: object) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 2**31:
        raise ValueError(f"episode_index must be an int >= 0, got {index!r}")


def _pyarrow() -> ModuleType:
    return require("pyarrow", "data", _FEATURE)


def _parquet() -> ModuleType:
    return require("pyarrow.parquet", "data", _FEATURE)
