"""A timeline entry as a sentence an operator reads ("Delivered to BANK-VCB after 3 attempts"). Pure."""

from __future__ import annotations

from typing import Any


def _attempts(n: Any) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _seconds(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return ""
    s = int(ms) // 1000
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _why(detail: dict[str, Any]) -> str:
    reason = detail.get("reason")
    return f": {reason}" if isinstance(reason, str) and reason else ""


def sentence(event: str, actor: str, detail: dict[str, Any], sender: str, recipient: str) -> str:
    """One sentence for one evidence; unknown events read as their name."""
    attempt = detail.get("attempt")
    by = detail.get("by") or actor
    match event:
        case "received":
            return f"Received from {sender}"
        case "queued":
            return f"Queued for {recipient}"
        case "delivered":
            channel = detail.get("channel")
            via = f" via {channel}" if isinstance(channel, str) else ""
            if isinstance(attempt, int) and attempt > 1:
                return f"Delivered to {recipient}{via} after {_attempts(attempt)}"
            return f"Delivered to {recipient}{via}"
        case "delivery_failed":
            wait = _seconds(detail.get("retry_in_ms"))
            error = detail.get("error") or "no reason given"
            text = f"Attempt {attempt or '?'} to {recipient} failed: {error}"
            return f"{text}; next attempt in {wait}" if wait else text
        case "redelivered":
            return f"Attempt {attempt or '?'} to {recipient} started (the recipient may get it twice)"
        case "duplicate_suppressed":
            return "A repeated copy was not passed on again"
        case "failed":
            if detail.get("error"):
                n = detail.get("attempts")
                after = f" after {_attempts(n)}" if isinstance(n, int) else ""
                return f"Gave up delivering to {recipient}{after}: {detail['error']}; parked"
            return f"Marked failed{_why(detail)}"
        case "not_delivered_revoked":
            return "Not delivered: revoked by its sender"
        case "revoked":
            return f"Revoked by {actor}{_why(detail)}"
        case "replayed_from_parking":
            return f"Replayed from parking ({detail.get('queue', '')}) by {by}{_why(detail)}"
        case "discarded_from_parking":
            return f"Discarded from parking ({detail.get('queue', '')}) by {by}{_why(detail)}"
        case "retry_now":
            return f"Attempt {attempt or '?'} pulled forward by {by}{_why(detail)}"
        case "retry_superseded":
            return f"The scheduled copy of attempt {attempt or '?'} was dropped: it had been pulled forward"
        case "answered":
            return f"Answered by {recipient}"
        case "confirmed":
            return f"Processing confirmed by {actor}"
        case "overdue":
            return "Past its deadline"
        case _:
            return event.replace("_", " ").capitalize() + (f" ({actor})" if actor else "")
