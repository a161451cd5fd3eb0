"""Collection time: days past due, stage boundaries and the compressed demo clock.

Pure functions of their arguments, safe in workflow code. Storage and arithmetic are in UTC; a day
past due starts at the borrower's local midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from workflows.types import ClockAnchor

DAY = timedelta(days=1)


def collection_now(anchor: ClockAnchor, real_now: datetime) -> datetime:
    """The collection-time instant that corresponds to workflow time ``real_now``."""
    elapsed = real_now - anchor.real_origin
    if anchor.day_seconds is not None:
        elapsed = elapsed * (DAY.total_seconds() / anchor.day_seconds)
    return anchor.collection_origin + elapsed


def real_delay(anchor: ClockAnchor, collection_delay: timedelta) -> timedelta:
    """How long to sleep in workflow time to let ``collection_delay`` pass in collection time."""
    if anchor.day_seconds is None:
        return collection_delay
    return collection_delay * (anchor.day_seconds / DAY.total_seconds())


def local(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone)


def local_midnight_utc(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)


def days_past_due(due_date: str, at: datetime, zone: ZoneInfo) -> int:
    """Days since the missed due date, counted on the borrower's local calendar."""
    return (local(at, zone).date() - date.fromisoformat(due_date)).days


def day_starts(due_date: str, dpd: int, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the loan becomes ``dpd`` days past due."""
    return local_midnight_utc(date.fromisoformat(due_date) + timedelta(days=dpd), zone)


def format_local(at: datetime, zone: ZoneInfo) -> str:
    return local(at, zone).strftime("%Y-%m-%d %H:%M %Z")
