"""P10: server CPU per added broadcast spectator / one session's encode cost: <= 0.10.

A client starts a stream with ``broadcast=True``; the server's CPU per second
is measured without spectators, with K WHEP spectators (bare aiortc viewers in
another process), then without again. Per added spectator = (with - mean of
the two without) / K; one session's encode cost = the bare render + encode CPU
per second at the same codec. Needs broadcast support on the local server: "n/a" until then.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, not_available, ratio

FIGURE = "P10"
TITLE = "server CPU per added broadcast spectator / one session's encode cost"
TARGET = 0.10


def run(ctx: Context) -> list[Figure]:
    """One figure (or n/a)."""
    figure = Figure(id="P10", title=TITLE, unit="% of a core", baseline_label="bare encode of one session",
                    target=f"ratio <= {TARGET}")

    def body(figure: Figure) -> None:
        probe = ctx.probe()
        if not probe.get("broadcast"):
            not_available(figure, f"the local server sends no broadcast_ready ({probe.get('broadcast_reason', 'probe')})")
            return
        k = int(ctx.param("p10_spectators"))
        window = ctx.param("p10_window_s")
        result = ctx.measure(f"sdk-broadcast-{k}-{window:g}s", "benchmarks.sdk_workloads:broadcast", 5 * window + 120,
                             seconds=window, spectators=k, warmup=3.0)
        if "error" in result or result.get("with_spectators") is None:
            raise RuntimeError(f"spectators did not connect: {result.get('error') or result.get('viewers')}")
        alone_windows = [result["alone"]] + ([result["alone_after"]] if result.get("alone_after") else [])
        alone = sum(w["cpu_per_s"] for w in alone_windows) / len(alone_windows)
        loaded = result["with_spectators"]["cpu_per_s"]
        per_spectator = (loaded - alone) / k
        encode = ctx.encode_run(20.0)  # broadcast relays the encode-once H.264 packets: the server's bitrate
        figure.measured = 100.0 * per_spectator
        figure.baseline = 100.0 * encode["cpu_per_s"]
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= TARGET
        figure.note = (f"{k} spectators: server {100 * alone:.1f}% -> {100 * loaded:.1f}% of a core "
                       f"(alone before/after: {[round(100 * w['cpu_per_s'], 1) for w in alone_windows]})")
        figure.details = {"broadcast": result, "bare_encode": encode}

    return [guarded(ctx, figure, body)]
