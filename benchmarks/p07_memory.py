"""P7: client RSS growth over a long stream (<= 20 MB) and over 100 connect/disconnect cycles
(<= 30 MB, with threads and file descriptors back to baseline).

The stream reads every frame (``frames()``, ``data``, stamp) at 20 fps for
``p7_stream_s`` seconds (600 by default); growth is measured from the RSS after
``p7_warmup_s``. The cycles connect a fresh client, read one frame and
disconnect; the baseline is taken after one warm-up cycle. A bare aiortc
client doing the same cycles is the baseline of the cycle figure (it tells
what aiortc/PyAV themselves keep).
"""

from __future__ import annotations

from benchmarks.harness import Context, Figure, guarded

FIGURE = "P7"
TITLE_STREAM = "client RSS growth over a long stream"
TITLE_CYCLES = "client RSS growth over connect/disconnect cycles; threads, fds back to baseline"


def run(ctx: Context) -> list[Figure]:
    """The stream figure and the cycles figure."""
    seconds = ctx.param("p7_stream_s")
    n = int(ctx.param("p7_cycles"))

    def cycles(figure: Figure) -> None:
        sdk = ctx.measure(f"sdk-cycles-{n}", "benchmarks.sdk_workloads:cycles", 60 + 10 * n, n=n)
        bare = ctx.measure(f"bare-cycles-{n}", "benchmarks.bare_client:cycles", 60 + 10 * n, n=n)
        figure.measured = sdk["rss_growth_mb"]
        figure.baseline = bare["rss_growth_mb"]
        figure.checked = figure.measured
        back = sdk["threads_delta"] <= 0 and sdk["fds_delta"] <= 0
        figure.met = figure.measured <= 30.0 and back
        figure.note = (f"{n} cycles; threads {sdk['threads_delta']:+d}, fds {sdk['fds_delta']:+d} vs baseline "
                       f"(bare: threads {bare['threads_delta']:+d}, fds {bare['fds_delta']:+d})")
        figure.details = {"sdk": sdk, "bare": bare}

    def stream(figure: Figure) -> None:
        result = ctx.measure(f"sdk-memory-{seconds:g}s", "benchmarks.sdk_workloads:memory_stream", seconds + 120,
                             fps=20.0, seconds=seconds, warmup=ctx.param("p7_warmup_s"))
        figure.measured = result["rss_growth_mb"]
        figure.checked = figure.measured
        figure.met = figure.measured is not None and figure.measured <= 20.0
        figure.note = (f"{result['seconds']:g} s stream, RSS {result['rss_warm_mb']:.0f} -> {result['rss_end_mb']:.0f} MiB, "
                       f"{result['frames_delivered']} frames read")
        figure.details = result

    # Cycles first: they are short; the long stream ends the run.
    first = guarded(ctx, Figure(id="P7 cycles", title=TITLE_CYCLES, unit="MiB", baseline_label="bare aiortc cycles",
                                target="<= 30 MB, threads/fds back"), cycles)
    second = guarded(ctx, Figure(id="P7 stream", title=f"{TITLE_STREAM} ({seconds:g} s)", unit="MiB",
                                 target="<= 20 MB"), stream)
    return [second, first]
