"""P1: frames delivered / frames sent over a 60 s window, consumer keeping up, at 20 and 30 fps.

The SDK consumer reads every frame through ``frames()`` (``frame.data`` and the
stamp); frames sent are the consecutive stamp numbers of the window, so a frame
lost anywhere (network, jitter buffer, SDK buffer overflow) counts. Target
>= 99.5 %; the bare aiortc client at the same rate is the baseline.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P1"
TITLE = "frames delivered / frames sent (60 s, consumer keeping up)"
TARGET_PERCENT = 99.5


def run(ctx: Context) -> list[Figure]:
    """One figure per frame rate."""
    figures = []
    for fps in (20.0, 30.0):

        def body(figure: Figure, fps: float = fps) -> None:
            sdk = ctx.stream_run("sdk", fps)
            bare = ctx.stream_run("bare", fps)
            measured = 100.0 * sdk["delivered_fraction"]
            baseline = 100.0 * bare["delivered_fraction"]
            figure.measured, figure.baseline = measured, baseline
            figure.ratio = ratio(measured, baseline)
            figure.checked = measured
            figure.met = measured >= TARGET_PERCENT
            figure.details = {
                "sdk": {k: sdk.get(k) for k in ("delivered", "sent", "complete", "unreadable_stamps", "out_of_order", "sdk_stats")},
                "bare": {k: bare.get(k) for k in ("delivered", "sent", "complete", "unreadable_stamps", "out_of_order")},
                "server_fps_sent": (sdk.get("server") or {}).get("fps_sent"),
                "window_s": ctx.param("stream_s"),
            }
            figure.note = f"SDK {sdk['delivered']}/{sdk['sent']}, bare {bare['delivered']}/{bare['sent']} frames"

        figures.append(
            guarded(ctx, Figure(id=f"P1 {fps:g} fps", title=TITLE, unit="%", baseline_label="bare aiortc",
                                target=f">= {TARGET_PERCENT}%"), body)
        )
    return figures
