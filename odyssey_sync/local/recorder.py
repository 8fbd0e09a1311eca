"""Recording one interactive stream while it runs.

A :class:`LiveRecording` subscribes to the session track's packet sink: each
frame the track encodes for the peer is also handed, as bytes, to a worker
thread that muxes it into the MP4 (:class:`~.media.Mp4PacketWriter`). The
loop thread does no more per frame than copy the packet and put it on a
queue; the disk is only touched by the worker, which wakes a few times a
second to mux what has gathered. The video starts at the first
key frame at or after the stream's first frame (a key frame is requested
there) with its timestamps rebased to 0.

Prompts, errors and the end are logged as events on the loop thread and
written, with the thumbnail and the preview, by the worker once the stream
ends. If the worker falls more than :data:`QUEUE_SECONDS` behind, packets
are dropped up to the next key frame and the recording is marked incomplete;
the stream itself never waits for the recording.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

import attrs

from .media import ARTIFACT_FILES, Mp4PacketWriter, write_events, write_stills
from .store import RecordingRow, RecordingStatus, Store, utc_now

__all__ = ["BATCH_SECONDS", "LiveRecording", "QUEUE_SECONDS"]

logger = logging.getLogger("odyssey_sync.local.recorder")

QUEUE_SECONDS = 20.0
"""How far (in video seconds) the writer may fall behind before packets are dropped."""

BATCH_SECONDS = 0.25
"""How long the writer sleeps after emptying its queue."""


@attrs.frozen
class _End:
    events: list[dict[str, Any]]
    first_frame: int | None
    dropped: int


class LiveRecording:
    """The recording of one running stream: MP4 from the track's packets, events, then stills.

    Create it when the stream starts, :meth:`attach` it to the track, report
    :meth:`update` and :meth:`error` as they happen and :meth:`finish` once;
    all of these on the loop thread. ``on_done`` is called from the worker
    thread when every file is written and the row is final.
    """

    def __init__(
        self,
        *,
        stream_id: str,
        key_name: str,
        width: int,
        height: int,
        fps: float,
        start_frame: int,
        directory: Path,
        store: Store,
        start_event: dict[str, Any],
        on_done: Callable[[LiveRecording], None],
    ) -> None:
        """Prepare the recording of ``stream_id`` from the track's frame ``start_frame`` on."""
        self.stream_id = stream_id
        """The recorded stream."""
        self._row = RecordingRow(
            stream_id=stream_id, key_name=key_name, width=width, height=height, fps=fps, started_at=utc_now()
        )
        self._start_frame = start_frame
        self._directory = directory
        self._store = store
        self._on_done = on_done
        self._t0 = time.monotonic()
        self._events: list[dict[str, Any]] = [{"t_ms": 0, "type": "start", **start_event, "frame_number": start_frame}]
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_queued = max(1, round(QUEUE_SECONDS * fps))
        self._first_frame: int | None = None
        self._first_pts = 0
        self._dropping = False
        self._dropped = 0
        self._detach: Callable[[], None] | None = None
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=f"local-odyssey-rec-{stream_id[:8]}", daemon=True)

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._finished

    # -- loop thread -----------------------------------------------------------------------

    def attach(self, track: Any) -> None:
        """Start the worker and take ``track``'s packets (a :class:`~.track.WorldVideoTrack`)."""
        self._thread.start()
        self._detach = track.add_sink(self._on_packet)
        track.request_keyframe()

    def update(self, prompt: str, applied_prompt: str, frame_number: int) -> None:
        """Log a prompt applied from the track's ``frame_number`` on."""
        self._event("update", prompt=prompt, applied_prompt=applied_prompt, frame_number=frame_number)

    def error(self, reason: str, message: str) -> None:
        """Log a stream error sent to the client."""
        self._event("error", reason=reason, message=message)

    def finish(self, reason: str) -> None:
        """Stop taking packets and let the worker write the files (idempotent)."""
        if self._finished:
            return
        self._finished = True
        if self._detach is not None:
            self._detach()
        self._event("end", reason=reason)
        self._queue.put(_End(list(self._events), self._first_frame, self._dropped))
        if self._thread.ident is None:
            self._thread.start()

    def _event(self, kind: str, **fields: Any) -> None:
        if not self._finished or kind == "end":
            self._events.append({"t_ms": round((time.monotonic() - self._t0) * 1000), "type": kind, **fields})

    def _on_packet(self, packet: Any, frame_number: int, frame: Any) -> None:
        if self._finished or frame_number < self._start_frame:
            return
        try:
            keyframe = bool(packet.is_keyframe)
            if self._first_frame is None:
                if not keyframe:
                    return
                self._first_frame, self._first_pts = frame_number, packet.pts
            if self._dropping and not keyframe:
                self._dropped += 1
                return
            if self._queue.qsize() >= self._max_queued:
                self._dropping = True
                self._dropped += 1
                return
            self._dropping = False
            self._queue.put((bytes(packet), packet.pts - self._first_pts, keyframe))
        except Exception:
            logger.exception("stream %s: recording failed; the stream goes on unrecorded", self.stream_id)
            self._dropped += 1
            self.finish("recording_failed")

    # -- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        writer = Mp4PacketWriter(
            self._directory / ARTIFACT_FILES["video"], width=self._row.width, height=self._row.height, fps=self._row.fps
        )
        problems: list[str] = []
        try:
            self._store.add_recording(self._row)
        except Exception:
            logger.exception("stream %s: cannot register the recording", self.stream_id)
            problems.append("the recording could not be registered")
        broken = False
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                break
            if not broken:
                try:
                    writer.write(*item)
                except Exception:
                    logger.exception("stream %s: writing the video failed", self.stream_id)
                    writer.abort()
                    broken = True
                    problems.append("writing the video failed")
            if self._queue.empty():
                # Let packets gather: one wake-up per batch rather than one per frame.
                time.sleep(BATCH_SECONDS)
        try:
            self._finalise(writer, item, problems)
        except Exception:
            logger.exception("stream %s: finishing the recording failed", self.stream_id)
        finally:
            self._on_done(self)

    def _finalise(self, writer: Mp4PacketWriter, end: _End, problems: list[str]) -> None:
        artifacts: list[str] = []
        try:
            if writer.close():
                artifacts.append("video")
        except Exception:
            logger.exception("stream %s: closing the video failed", self.stream_id)
            problems.append("closing the video failed")
        if end.dropped:
            problems.append(f"{end.dropped} frames were dropped (the disk was too slow)")
        if not writer.frame_count and not problems:
            problems.append("no frames were recorded")
        first = end.first_frame if end.first_frame is not None else self._start_frame
        events = [_video_frame(event, first) for event in end.events]
        events[-1].update(frame_count=writer.frame_count, duration_seconds=writer.duration_seconds)
        try:
            write_events(self._directory / ARTIFACT_FILES["events"], events)
            artifacts.append("events")
        except Exception:
            logger.exception("stream %s: writing the events failed", self.stream_id)
        if "video" in artifacts:
            try:
                artifacts.extend(
                    write_stills(
                        self._directory / ARTIFACT_FILES["video"],
                        self._directory / ARTIFACT_FILES["thumbnail"],
                        self._directory / ARTIFACT_FILES["preview"],
                    )
                )
            except Exception:
                logger.exception("stream %s: deriving the thumbnail and preview failed", self.stream_id)
        has_video = "video" in artifacts
        self._store.finish_recording(
            self.stream_id,
            status=RecordingStatus.INCOMPLETE if problems else RecordingStatus.COMPLETE,
            ended_at=utc_now(),
            duration_seconds=writer.duration_seconds if has_video else None,
            frame_count=writer.frame_count if has_video else 0,
            artifacts=artifacts,
            end_reason=end.events[-1].get("reason"),
            error="; ".join(problems) or None,
        )
        logger.info("stream %s: recorded %d frames", self.stream_id, writer.frame_count)


def _video_frame(event: dict[str, Any], first_frame: int) -> dict[str, Any]:
    """The event with ``frame_number`` counted in the video (0 = its first frame) instead of the connection."""
    if "frame_number" in event:
        return {**event, "frame_number": max(0, event["frame_number"] - first_frame)}
    return dict(event)
