"""P12: a 10 Hz control loop steers without stalling: time inside ``interact(wait=False)`` / blocking ``interact()``.

The loop reads ``latest_frame()`` on every step of a 100 ms period and calls
``interact()`` on every fifth step (twice a second: the local server builds a
new world per prompt, 50-80 ms each, so it acknowledges at most ~10 prompts a
second and a loop that steers on every step would only queue them). Figure:
the p99 time the caller spends inside ``interact(wait=False)`` / inside the
blocking ``interact()`` (the default, and all the official SDK offers), both
measured in the same run. The note gives the loop periods of both and of the
same loop never steering, and of the loop steering on every step with
``wait=False`` (the prompts queue on the server; the loop does not wait), and
the acknowledgement round trips.
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded, ratio

FIGURE = "P12"
TITLE = "10 Hz loop steering twice a second: time in interact(), wait=False / blocking, p99"
RATE_HZ = 10.0
TARGET = 0.05


def run(ctx: Context) -> list[Figure]:
    """One figure."""
    seconds = ctx.param("control_s")

    def body(figure: Figure) -> None:
        kwargs = {"seconds": seconds, "rate_hz": RATE_HZ, "warmup": ctx.param("warmup_s")}
        workload, timeout = "benchmarks.sdk_workloads:steering", 60 + seconds
        free = ctx.measure("sdk-steering-nowait", workload, timeout, wait=False, **kwargs)
        blocking = ctx.measure("sdk-steering-blocking", workload, timeout, wait=True, **kwargs)
        still = ctx.measure("sdk-steering-none", workload, timeout, wait=False, steer_every=0, **kwargs)
        every = ctx.measure("sdk-steering-every-step", workload, timeout, wait=False, steer_every=1, **kwargs)
        figure.measured = free["call_ms"]["p99"]
        figure.baseline = blocking["call_ms"]["p99"]
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= TARGET and free["failures"] == 0
        period = lambda run: f"{run['period_ms']['p99']}/{run['period_ms']['max']}"  # noqa: E731
        figure.note = (
            f"loop period p99/max: wait=False {period(free)} ms, blocking {period(blocking)} ms, never steering "
            f"{period(still)} ms, steering every step with wait=False {period(every)} ms ({every['failures']} failed); "
            f"ack round trip p50/p99: wait=False {free['ack_ms'].get('p50')}/"
            f"{free['ack_ms'].get('p99')} ms, blocking {blocking['ack_ms'].get('p50')}/{blocking['ack_ms'].get('p99')} ms"
        )
        figure.details = {"nowait": free, "blocking": blocking, "no_steering": still, "every_step": every}

    return [guarded(ctx, Figure(id="P12", title=TITLE, unit="ms", baseline_label="blocking interact()",
                                target=f"ratio <= {TARGET:g}"), body)]
