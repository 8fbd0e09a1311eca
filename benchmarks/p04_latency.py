"""P4 / P4+: stamp-to-caller latency, SDK vs bare aiortc client (20 fps stream).

Latency = wall clock when the caller holds the frame's RGB array minus the
server time written in the stamp when the frame was rendered (same machine,
same clock). P4: SDK minus bare, p50 <= +3 ms and p99 <= +10 ms. P4+ (stretch,
needs a jitter buffer that releases on the RTP marker bit): SDK / bare p50 <= 0.60.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P4"
TITLE = "stamp-to-caller latency"


def run(ctx: Context) -> list[Figure]:
    """P4 p50, P4 p99 and P4+ (p50 ratio)."""
    figures = []
    for pct, limit in (("p50", 3.0), ("p99", 10.0)):

        def body(figure: Figure, pct: str = pct, limit: float = limit) -> None:
            sdk = ctx.stream_run("sdk", 20.0)
            bare = ctx.stream_run("bare", 20.0)
            figure.measured = sdk["latency_ms"][pct]
            figure.baseline = bare["latency_ms"][pct]
            figure.ratio = ratio(figure.measured, figure.baseline)
            figure.checked = figure.measured - figure.baseline
            figure.met = figure.checked <= limit
            figure.details = {"sdk_latency_ms": sdk["latency_ms"], "bare_latency_ms": bare["latency_ms"],
                              "sdk_decode_to_caller_ms": sdk.get("decode_to_caller_ms")}
            figure.note = f"SDK - bare = {figure.checked:+.1f} ms"

        figures.append(guarded(ctx, Figure(id=f"P4 {pct}", title=f"{TITLE} {pct}, SDK minus bare", unit="ms",
                                           baseline_label="bare aiortc", target=f"SDK - bare <= +{limit:g} ms"), body))

    def stretch(figure: Figure) -> None:
        sdk = ctx.stream_run("sdk", 20.0)
        bare = ctx.stream_run("bare", 20.0)
        figure.measured = sdk["latency_ms"]["p50"]
        figure.baseline = bare["latency_ms"]["p50"]
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= 0.60

    figures.append(guarded(ctx, Figure(id="P4+", title=f"{TITLE} p50, SDK / bare (stretch: marker-bit release)",
                                       unit="ms", baseline_label="bare aiortc", target="ratio <= 0.60"), stretch))
    return figures
