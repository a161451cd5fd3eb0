"""A loan's repayment schedule, as the lender's core system keeps it, and what it says is owed.

The loan book (``overdue loans sync``) holds each loan's instalments: a due date, the amount due
and the amount paid so far. What is in collection is read from them, not from a single due date:

- an instalment is **past due** once its due date is behind the borrower's today (DPD 1 is the
  day after the due date);
- the **amount overdue** is what is unpaid of the past-due instalments;
- the **outstanding** balance is what is unpaid of all instalments;
- **days past due** count from the oldest instalment not paid in full.

Pure and deterministic: "today" comes in as an argument (the borrower-local date).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

# The source of the payments the loan book lists: the lender's core system received them.
CORE_SYSTEM = "core"


@dataclass(frozen=True)
class ScheduledInstalment:
    """One instalment of a loan's repayment schedule (amounts in minor units)."""

    due_date: str  # ISO date, borrower-local
    amount_due_minor: int
    amount_paid_minor: int = 0

    @property
    def unpaid_minor(self) -> int:
        return max(0, self.amount_due_minor - self.amount_paid_minor)


def oldest_unpaid(schedule: Sequence[ScheduledInstalment]) -> ScheduledInstalment | None:
    """The earliest instalment not paid in full, or None when the loan is paid up."""
    unpaid = [i for i in schedule if i.unpaid_minor > 0]
    return min(unpaid, key=lambda i: i.due_date) if unpaid else None


def days_past_due(schedule: Sequence[ScheduledInstalment], today: date) -> int:
    """Days since the oldest unpaid instalment fell due; 0 when nothing unpaid is past due."""
    oldest = oldest_unpaid(schedule)
    if oldest is None:
        return 0
    return max(0, (today - date.fromisoformat(oldest.due_date)).days)


def amount_overdue(schedule: Sequence[ScheduledInstalment], today: date) -> int:
    """What is unpaid of the instalments whose due date is behind ``today``."""
    return sum(i.unpaid_minor for i in schedule if date.fromisoformat(i.due_date) < today)


def outstanding(schedule: Sequence[ScheduledInstalment]) -> int:
    """What is unpaid of every instalment, due or not."""
    return sum(i.unpaid_minor for i in schedule)


def is_delinquent(schedule: Sequence[ScheduledInstalment], today: date) -> bool:
    """Whether the loan belongs in collection: an unpaid instalment is past due (DPD ≥ 1)."""
    return days_past_due(schedule, today) >= 1
