"""Watch a stream in an OpenCV window; headless, save a frame a second and print what is seen.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server. Frames come as BGR arrays (``frame.to_ndarray("bgr24")``,
OpenCV's layout, converted once from the decoded frame). What it does:

* a display and OpenCV with GUI support: a window (press q or Esc to close);
* otherwise (no display, ``opencv-python-headless``, or no OpenCV at all): one
  JPEG a second in ``--out`` (with ``cv2.imwrite``, or ``odyssey_sync.save.save_image``
  without OpenCV) and a line with the frame number and its mean colour.

    python samples/opencv_viewer.py [--seconds 10] [--out viewer-output] [--headless]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from odyssey_sync.local import hosted_or_local
from odyssey_sync.save import save_image


def load_opencv() -> ModuleType | None:
    """OpenCV if it is installed; the viewer also runs without it."""
    try:
        return importlib.import_module("cv2")
    except ImportError:
        return None


def window_wanted(opencv: ModuleType | None, headless: bool) -> bool:
    """Whether to try a window: OpenCV is there, a display is, and ``--headless`` is not given."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return opencv is not None and has_display and not headless


def main(argv: list[str] | None = None) -> int:
    """View the stream; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default: 10)")
    parser.add_argument("--out", type=Path, default=Path("viewer-output"), help="where headless mode saves JPEGs")
    parser.add_argument("--headless", action="store_true", help="never open a window")
    args = parser.parse_args(argv)
    cv2 = load_opencv()
    window = window_wanted(cv2, args.headless)
    saved: list[Path] = []
    shown = 0

    with hosted_or_local() as api, api.client() as client:
        target = api.description
        client.connect()
        stream_id = client.start_stream("A neon city street at night in the rain", portrait=False)
        end = time.monotonic() + args.seconds
        next_save = time.monotonic()
        for frame in client.frames(timeout=10):
            bgr = frame.to_ndarray("bgr24")
            shown += 1
            if window and cv2 is not None:
                try:
                    cv2.imshow("Odyssey", bgr)
                except cv2.error:  # OpenCV built without GUI support (e.g. opencv-python-headless)
                    window = False
                else:
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
            if not window and time.monotonic() >= next_save:
                next_save += 1.0
                path = args.out / f"frame-{frame.index:05d}.jpg"
                args.out.mkdir(parents=True, exist_ok=True)
                if cv2 is not None:
                    cv2.imwrite(str(path), bgr)
                else:
                    save_image(frame, path)
                saved.append(path)
                blue, green, red = (float(c) for c in bgr[::8, ::8].reshape(-1, 3).mean(axis=0))
                print(f"frame {frame.index:5d}  {frame.width}x{frame.height}  mean BGR ({blue:.0f}, {green:.0f}, {red:.0f})"
                      f"  -> {path}")
            if time.monotonic() >= end:
                break
        client.end_stream()
    if window and cv2 is not None:
        cv2.destroyAllWindows()

    print(f"target:  {target}")
    print(f"stream:  {stream_id}")
    print(f"mode:    {'window' if window else 'files'} (OpenCV {'found' if cv2 is not None else 'not installed'})")
    print(f"frames:  {shown} in {args.seconds:g} s")
    for path in saved:
        print(f"saved:   {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
