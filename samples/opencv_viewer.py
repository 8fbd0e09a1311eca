"""Watch a stream in an OpenCV window; headless, save frames or print what is seen instead.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server. Frames come as BGR arrays (``frame.to_ndarray("bgr24")``,
OpenCV's layout, converted once from the decoded frame). What it does:

* a display and OpenCV with GUI support: a window (press q or Esc to close);
* OpenCV without a display (or ``opencv-python-headless``): one JPEG a second in ``--out``;
* no OpenCV: one line a second with the frame number and its mean colour.

    python samples/opencv_viewer.py [--seconds 10] [--out viewer-output] [--headless]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Iterator

from odyssey_sync import Odyssey


def load_opencv() -> ModuleType | None:
    """OpenCV if it is installed; without it the viewer prints instead."""
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None



@contextlib.contextmanager
def odyssey_client() -> Iterator[tuple[Odyssey, str]]:
    """A client for the hosted API if a key is set, else for a local server."""
    if os.environ.get("ODYSSEY_API_KEY"):
        with Odyssey() as client:
            yield client, "hosted Odyssey API"
        return
    from odyssey_sync.local import LocalOdyssey

    with LocalOdyssey() as server, Odyssey(api_key=server.api_key, api_url=server.url) as client:
        yield client, f"local server at {server.url}"


def choose_mode(opencv: ModuleType | None, headless: bool) -> str:
    """``"window"``, ``"files"`` or ``"print"``, from what this machine has."""
    if opencv is None:
        return "print"
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return "window" if has_display and not headless else "files"


def main(argv: list[str] | None = None) -> int:
    """View the stream; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default: 10)")
    parser.add_argument("--out", type=Path, default=Path("viewer-output"), help="where headless mode saves JPEGs")
    parser.add_argument("--headless", action="store_true", help="never open a window")
    args = parser.parse_args(argv)
    cv2 = load_opencv()
    mode = choose_mode(cv2, args.headless)
    saved: list[Path] = []
    shown = 0

    with odyssey_client() as (client, target):
        client.connect()
        stream_id = client.start_stream("A neon city street at night in the rain", portrait=False)
        end = time.monotonic() + args.seconds
        next_report = time.monotonic()
        for frame in client.frames(timeout=10):
            bgr = frame.to_ndarray("bgr24")
            if cv2 is not None and mode == "window":
                try:
                    cv2.imshow("Odyssey", bgr)
                except cv2.error:  # OpenCV built without GUI support (e.g. opencv-python-headless)
                    mode = "files"
                else:
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
            shown += 1
            if mode != "window" and time.monotonic() >= next_report:
                next_report += 1.0
                if cv2 is not None and mode == "files":
                    args.out.mkdir(parents=True, exist_ok=True)
                    saved.append(args.out / f"frame-{frame.index:05d}.jpg")
                    cv2.imwrite(str(saved[-1]), bgr)
                else:
                    blue, green, red = (float(c) for c in bgr[::8, ::8].reshape(-1, 3).mean(axis=0))
                    print(f"frame {frame.index:5d}  {frame.width}x{frame.height}  mean BGR ({blue:.0f}, {green:.0f}, {red:.0f})")
            if time.monotonic() >= end:
                break
        client.end_stream()
    if cv2 is not None and mode == "window":
        cv2.destroyAllWindows()

    print(f"target:  {target}")
    print(f"stream:  {stream_id}")
    print(f"mode:    {mode}")
    print(f"frames:  {shown} in {args.seconds:g} s")
    for path in saved:
        print(f"saved:   {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
