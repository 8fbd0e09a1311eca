"""P2: client CPU seconds per delivered frame, SDK ``frames()`` consumer / bare aiortc client (<= 1.10).

Both read every frame as RGB and its stamp; CPU is the client process's
``time.process_time()`` over the window (all its threads), at 20 fps. Each
client is run several times, interleaved, in fresh processes; the figure
compares the best run of each (see :meth:`Context.cpu_rounds`).
"""

from __future__ import annotations

import statistics

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P2"
TITLE = "client CPU per delivered frame, SDK frames() / bare aiortc"
TARGET = 1.10


def run(ctx: Context) -> list[Figure]:
    """One figure (20 fps)."""

    def body(figure: Figure) -> None:
        runs = ctx.cpu_rounds()
        sdk = [r["client_cpu_ms_per_frame"] for r in runs["sdk"]]
        bare = [r["client_cpu_ms_per_frame"] for r in runs["bare"]]
        figure.measured, figure.baseline = min(sdk), min(bare)
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= TARGET
        figure.note = (f"best of {len(sdk)} runs each; SDK {[round(x, 2) for x in sdk]}, bare {[round(x, 2) for x in bare]} "
                       f"ms/frame; median ratio {ratio(statistics.median(sdk), statistics.median(bare)):.2f}")
        figure.details = {
            "sdk_ms_per_frame": sdk, "bare_ms_per_frame": bare,
            "sdk_minor_faults_per_frame": [r.get("minor_faults_per_frame") for r in runs["sdk"]],
            "bare_minor_faults_per_frame": [r.get("minor_faults_per_frame") for r in runs["bare"]],
        }

    return [guarded(ctx, Figure(id="P2", title=TITLE, unit="ms CPU/frame", baseline_label="bare aiortc",
                                target=f"ratio <= {TARGET}"), body)]
