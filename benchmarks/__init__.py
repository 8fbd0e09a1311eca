"""Performance benchmark harness of ``odyssey_sync`` (run by hand, not in CI).

``python -m benchmarks`` runs every figure of the performance issue (P1..P12)
against a local server in a separate process and writes
``benchmarks/results/report.md`` and ``report.json``. Every figure is a ratio
against a baseline measured in the same run (a bare aiortc client, or a bare
render + PyAV encode), because absolute times on a shared 2-core machine drift.
See ``benchmarks/README.md``.
"""

__all__: list[str] = []
