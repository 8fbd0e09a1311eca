"""Bodies of the hosted service's usage errors (HTTP 429), one builder for every code."""

from __future__ import annotations

import datetime
from typing import Any

from ..errors import PORTAL_URL

__all__ = ["usage_error_body"]

_DASHBOARD = f"{PORTAL_URL}/dashboard"


def _next_month_start() -> str:
    today = datetime.date.today()
    return (today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1).isoformat()


def usage_error_body(code: str, *, active_count: int = 0, limit: int = 0) -> dict[str, Any]:
    """The ``{"error", "message", "action", "action_url"?, "details"}`` body for ``code``.

    ``active_count`` and ``limit`` fill ``CONCURRENT_LIMIT_REACHED``'s details;
    the other codes get fixed, plausible details. An unknown code gets a
    generic body carrying that code.
    """
    if code == "CONCURRENT_LIMIT_REACHED":
        return {
            "error": code,
            "message": f"Maximum concurrent sessions ({limit}) reached",
            "action": "End an active session and try again",
            "details": {"active_count": active_count, "limit": limit},
        }
    if code == "MONTHLY_LIMIT_REACHED":
        return {
            "error": code,
            "message": "Monthly usage limit reached",
            "action": "Upgrade your plan or wait for the monthly reset",
            "action_url": _DASHBOARD,
            "details": {"used_hours": 10.0, "limit_hours": 10.0, "reset_date": _next_month_start()},
        }
    if code == "STREAM_DURATION_EXCEEDED":
        return {
            "error": code,
            "message": "Maximum stream duration exceeded",
            "action": "Start a new stream to continue",
            "details": {"max_duration_seconds": 150},
        }
    if code == "ACCOUNT_SUSPENDED":
        return {
            "error": code,
            "message": "Account suspended",
            "action": "Contact support",
            "action_url": _DASHBOARD,
            "details": {"reason": "suspended by the local server's fault knob"},
        }
    if code == "RATE_LIMITED":
        return {
            "error": code,
            "message": "Too many requests",
            "action": "Wait and try again",
            "details": {"retry_after_seconds": 1},
        }
    return {"error": code, "message": f"Usage limit: {code}", "action": "Try again later", "details": {}}
