"""P3: client CPU per second, SDK with a 10 Hz ``latest_frame()`` control loop / bare aiortc client (<= 0.60).

The control loop reads the newest frame ten times a second (``data`` and the
stamp) on a 20 fps stream; the bare client converts all 20 frames a second in
its receive loop, as the official SDK does. Best run of each, several
interleaved fresh-process runs (see :meth:`Context.cpu_rounds`).
"""

from __future__ import annotations

import statistics

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P3"
TITLE = "client CPU per second, SDK 10 Hz latest_frame() loop / bare aiortc"
TARGET = 0.60


def run(ctx: Context) -> list[Figure]:
    """One figure (20 fps stream, 10 Hz loop)."""

    def body(figure: Figure) -> None:
        runs = ctx.cpu_rounds()
        sdk = [100.0 * r["client_cpu_per_s"] for r in runs["latest"]]
        bare = [100.0 * r["client_cpu_per_s"] for r in runs["bare"]]
        figure.measured, figure.baseline = min(sdk), min(bare)
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= TARGET
        figure.note = (f"best of {len(sdk)} runs each; SDK {[round(x, 2) for x in sdk]}, bare {[round(x, 2) for x in bare]} "
                       f"% of a core; median ratio {ratio(statistics.median(sdk), statistics.median(bare)):.2f}")
        figure.details = {"sdk_percent": sdk, "bare_percent": bare,
                          "sdk": [{k: r.get(k) for k in ("reads", "no_new_frame", "frame_age_ms", "wall_s")} for r in runs["latest"]]}

    return [guarded(ctx, Figure(id="P3", title=TITLE, unit="% of a core", baseline_label="bare aiortc (20 fps, converts all)",
                                target=f"ratio <= {TARGET}"), body)]
