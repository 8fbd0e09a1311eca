"""P5: ``connect()`` to ready on loopback: p50 <= 250 ms, p95 <= 500 ms.

``connect()`` of a fresh client (REST authentication, region ping, session
request and token, ICE config, signaling, offer/answer, ICE/DTLS, until video
flows and ``clientToStreamer`` is open), after one warm-up connect in the same
process. The bare aiortc client doing the same sequence is the baseline.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P5"
TITLE = "connect() to ready"


def run(ctx: Context) -> list[Figure]:
    """P5 p50 and P5 p95."""
    n = int(ctx.param("connects"))

    def runs() -> tuple[dict, dict]:
        sdk = ctx.measure(f"sdk-connects-{n}", "benchmarks.sdk_workloads:connects", 30 + 5 * n, n=n)
        bare = ctx.measure(f"bare-connects-{n}", "benchmarks.bare_client:connects", 30 + 5 * n, n=n)
        return sdk, bare

    figures = []
    for pct, limit in (("p50", 250.0), ("p95", 500.0)):

        def body(figure: Figure, pct: str = pct, limit: float = limit) -> None:
            sdk, bare = runs()
            figure.measured = sdk["connect_ms"][pct]
            figure.baseline = bare["connect_ms"][pct]
            figure.ratio = ratio(figure.measured, figure.baseline)
            figure.checked = figure.measured
            figure.met = figure.measured <= limit
            figure.details = {"sdk_ms": sdk["connect_ms"], "bare_ms": bare["connect_ms"], "connects": n}

        figures.append(guarded(ctx, Figure(id=f"P5 {pct}", title=f"{TITLE} {pct}", unit="ms", baseline_label="bare aiortc",
                                           target=f"{pct} <= {limit:g} ms"), body))
    return figures
