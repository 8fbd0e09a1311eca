"""Region latency probes, run on the SDK's event-loop thread.

Before asking for a session the client times a ``GET`` of every region's
``ping_url`` so the API can pick the nearest streamer. A region that does not
answer in time is reported as :data:`UNREACHABLE_MS`; probing never fails.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

__all__ = ["UNREACHABLE_MS", "measure_region_latencies"]

UNREACHABLE_MS = 9999
"""The latency reported for a region that did not answer 2xx before the deadline."""

_log = logging.getLogger("odyssey_sync.rest")


async def measure_region_latencies(
    session: aiohttp.ClientSession,
    regions: list[tuple[str, str]],
    *,
    deadline_s: float = 1.0,
) -> dict[str, int]:
    """Time a ``GET`` of every region's ping URL, all in parallel.

    ``regions`` is what :meth:`RestClient.regions` returns: ``(region_id, ping_url)``
    pairs. The result maps each region id to whole milliseconds until the
    response headers arrived; a region that answers with a non-2xx status, fails,
    or does not answer within ``deadline_s`` of the start gets
    :data:`UNREACHABLE_MS`. Network errors are never raised, and the call
    returns within about ``deadline_s`` however the regions behave.
    """
    if not regions:
        return {}
    loop = asyncio.get_running_loop()
    started = loop.time()
    client_timeout = aiohttp.ClientTimeout(total=max(deadline_s, 0.001))

    async def ping(url: str) -> int:
        async with session.get(url, timeout=client_timeout) as response:
            elapsed_ms = round((loop.time() - started) * 1000)
            if 200 <= response.status < 300:
                return min(max(elapsed_ms, 0), UNREACHABLE_MS)
            _log.debug("region ping %s answered %d", url, response.status)
            return UNREACHABLE_MS

    tasks = {region_id: asyncio.ensure_future(ping(url)) for region_id, url in regions}
    try:
        await asyncio.wait(tasks.values(), timeout=max(deadline_s, 0.0))
    finally:
        for task in tasks.values():
            task.cancel()
        # Let every cancelled probe close its connection before returning.
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    latencies: dict[str, int] = {}
    for region_id, task in tasks.items():
        if task.cancelled():
            latencies[region_id] = UNREACHABLE_MS
        elif task.exception() is not None:
            _log.debug("region ping for %s failed: %r", region_id, task.exception())
            latencies[region_id] = UNREACHABLE_MS
        else:
            latencies[region_id] = task.result()
    return latencies
