"""The exception tree, and the mappings from wire errors to it.

Every error the SDK raises for a server-side or connection problem is an
:class:`OdysseyError`; wrong arguments raise :class:`TypeError` or
:class:`ValueError` before any I/O.
"""

from __future__ import annotations

from typing import Any, Mapping

PORTAL_URL = "https://portal.odyssey.systems"

__all__ = [
    "OdysseyError",
    "OdysseyAuthError",
    "OdysseyConnectionError",
    "OdysseyStreamError",
    "OdysseyStateError",
    "OdysseyTimeoutError",
    "OdysseyUsageError",
    "MonthlyLimitReachedError",
    "ConcurrentLimitReachedError",
    "StreamDurationExceededError",
    "AccountSuspendedError",
    "RateLimitError",
]


class OdysseyError(Exception):
    """Base class of every error raised by odyssey_sync."""


class OdysseyAuthError(OdysseyError):
    """The API key, access token or session token was refused (HTTP 401/403, 422)."""


class OdysseyConnectionError(OdysseyError):
    """The connection could not be made, or was lost.

    ``reason`` is the server's reason code when it sent one.
    """

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class OdysseyStreamError(OdysseyError):
    """A stream operation failed or was called in the wrong state.

    ``reason`` is the server's ``interactive_stream_error`` reason when it sent one.
    """

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class OdysseyStateError(OdysseyStreamError, OdysseyConnectionError):
    """The call does not fit the client's state: not connected, no stream running, a stream
    already running, or the stream ended. The message says what to call first.

    Every wrong-state error is of this one type; it is both an
    :class:`OdysseyStreamError` and an :class:`OdysseyConnectionError`, so
    code that catches either keeps working. ``reason`` names the state:
    ``not_connected``, ``connection_ended``, ``no_active_stream``, ``stream_already_active``
    or ``stream_ended``.
    """


class OdysseyTimeoutError(OdysseyError, TimeoutError):
    """A blocking call ran out of time. The client stays usable."""


class OdysseyUsageError(OdysseyError):
    """A plan or usage limit was hit (HTTP 429 or an ``interactive_stream_error``).

    Attributes mirror the hosted body: ``code``, ``message``, ``action``,
    ``action_url`` and ``details``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        action: str = "",
        action_url: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.action = action
        self.action_url = action_url
        self.details: dict[str, Any] = dict(details or {})
        super().__init__(code, message)

    def _detail_lines(self) -> list[str]:
        return []

    def __str__(self) -> str:
        parts = [self.message.rstrip(".") + "."]
        parts.extend(self._detail_lines())
        if self.action:
            parts.append(self.action.rstrip(".") + ".")
        if self.action_url:
            parts.append(f"See {self.action_url}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class MonthlyLimitReachedError(OdysseyUsageError):
    """The account's monthly usage is used up (details: used_hours, limit_hours, reset_date)."""

    def _detail_lines(self) -> list[str]:
        d = self.details
        lines = []
        if "used_hours" in d and "limit_hours" in d:
            lines.append(f"Used {d['used_hours']} of {d['limit_hours']} hours.")
        if d.get("reset_date"):
            lines.append(f"The limit resets on {d['reset_date']}.")
        return lines


class ConcurrentLimitReachedError(OdysseyUsageError):
    """Too many streams are open at once for this key (details: active_count, limit)."""

    def _detail_lines(self) -> list[str]:
        d = self.details
        if "active_count" in d and "limit" in d:
            return [f"{d['active_count']} of {d['limit']} concurrent sessions are in use."]
        return []


class StreamDurationExceededError(OdysseyUsageError):
    """The stream reached its maximum duration (details: max_duration_seconds)."""

    def _detail_lines(self) -> list[str]:
        seconds = self.details.get("max_duration_seconds")
        return [f"The limit is {seconds} s per stream."] if seconds is not None else []


class AccountSuspendedError(OdysseyUsageError):
    """The account is suspended (details: reason)."""

    def _detail_lines(self) -> list[str]:
        reason = self.details.get("reason")
        return [f"Reason: {reason}."] if reason else []


class RateLimitError(OdysseyUsageError):
    """Requests are coming too fast (details: retry_after_seconds)."""

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying, when the server said."""
        value = self.details.get("retry_after_seconds")
        return float(value) if isinstance(value, (int, float)) else None

    def _detail_lines(self) -> list[str]:
        after = self.retry_after
        return [f"Retry after {after:g} s."] if after is not None else []


_USAGE_CLASSES: dict[str, type[OdysseyUsageError]] = {
    "MONTHLY_LIMIT_REACHED": MonthlyLimitReachedError,
    "CONCURRENT_LIMIT_REACHED": ConcurrentLimitReachedError,
    "CONCURRENT_LIMIT_EXCEEDED": ConcurrentLimitReachedError,
    "STREAM_DURATION_EXCEEDED": StreamDurationExceededError,
    "ACCOUNT_SUSPENDED": AccountSuspendedError,
    "RATE_LIMITED": RateLimitError,
}


def usage_error_from_body(body: Any) -> OdysseyUsageError | None:
    """Build the usage error a 429 body describes, or ``None`` if it is not one.

    The body may carry the fields at top level or inside FastAPI's ``detail``;
    the code is in ``error`` (current) or ``code`` (legacy).
    """
    if isinstance(body, Mapping) and isinstance(body.get("detail"), Mapping):
        body = body["detail"]
    if not isinstance(body, Mapping):
        return None
    code = body.get("error") or body.get("code")
    message = body.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        return None
    cls = _USAGE_CLASSES.get(code, OdysseyUsageError)
    details = body.get("details")
    action_url = body.get("action_url")
    return cls(
        code=code,
        message=message,
        action=str(body.get("action") or ""),
        action_url=action_url if isinstance(action_url, str) else None,
        details=details if isinstance(details, Mapping) else None,
    )


def stream_error_from_reason(reason: str, message: str) -> OdysseyError:
    """Map an ``interactive_stream_error`` reason to the exception a pending call raises."""
    if reason == "quota_exceeded":
        return MonthlyLimitReachedError(
            "MONTHLY_LIMIT_REACHED",
            "Monthly usage limit reached",
            "Upgrade your plan or wait for the monthly reset",
            f"{PORTAL_URL}/dashboard",
        )
    if reason == "concurrent_limit_exceeded":
        return ConcurrentLimitReachedError(
            "CONCURRENT_LIMIT_EXCEEDED",
            "Too many concurrent streams for this API key",
            "End another stream (disconnect idle clients) and try again",
            f"{PORTAL_URL}/dashboard",
        )
    if reason == "session_timeout":
        return StreamDurationExceededError(
            "STREAM_DURATION_EXCEEDED",
            f"Stream exceeded maximum duration ({message})" if message else "Stream exceeded maximum duration",
            "Connect again and start a new stream to continue",
        )
    if reason == "lease_denied":
        return OdysseyStreamError("Stream request denied by the server; try again in a moment.", reason=reason)
    return OdysseyStreamError(f"{reason}: {message}" if message else reason, reason=reason)


_SIGNALING_MESSAGES = {
    "streamer_not_available": "Streamer not available. Try connecting again in a moment.",
    "streamer_disconnected": "Streamer has disconnected. Connect again to get a new session.",
    "duration_limit_reached": "Connection exceeded maximum allowed duration. Connect again to continue.",
    "unknown": "An unknown error occurred on the server. Connect again.",
}


def connection_error_from_reason(reason: str) -> OdysseyConnectionError:
    """Map a signaling ``error`` reason to the connection error it stands for."""
    text = _SIGNALING_MESSAGES.get(reason, f"Server error: {reason}. Connect again.")
    return OdysseyConnectionError(text, reason=reason)
