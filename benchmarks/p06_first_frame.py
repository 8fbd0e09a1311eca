"""P6: ``start_stream()`` return to the first frame of the new stream in the caller's hands: p50 <= 150 ms.

The first frame of the new stream is known by its stamp number: the server
records the first frame number rendered with the start's prompt. The SDK
caller follows frames with ``wait_for_frame(after=...)``; the bare client's
receive loop converts every frame. Baseline: the bare client, same sequence.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P6"
TITLE = "start_stream() return to first frame of the new stream, p50"
TARGET_MS = 150.0


def run(ctx: Context) -> list[Figure]:
    """One figure."""
    n = int(ctx.param("starts"))

    def body(figure: Figure) -> None:
        sdk = ctx.measure(f"sdk-starts-{n}", "benchmarks.sdk_workloads:starts", 40 + 5 * n, n=n)
        bare = ctx.measure(f"bare-starts-{n}", "benchmarks.bare_client:starts", 40 + 5 * n, n=n)
        figure.measured = sdk["first_frame_ms"]["p50"]
        figure.baseline = bare["first_frame_ms"]["p50"]
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.measured
        figure.met = figure.measured <= TARGET_MS
        figure.details = {"sdk_ms": sdk["first_frame_ms"], "bare_ms": bare["first_frame_ms"],
                          "sdk_missing": sdk["missing"], "bare_missing": bare["missing"], "starts": n}

    return [guarded(ctx, Figure(id="P6", title=TITLE, unit="ms", baseline_label="bare aiortc",
                                target=f"p50 <= {TARGET_MS:g} ms"), body)]
