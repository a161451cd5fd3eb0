"""Arguments and results of the activities the collection workflow calls.

Each activity takes one dataclass, so that fields can be added later without breaking histories.
Every write carries its own idempotency key, which the ledger enforces with a unique constraint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.types import Loan, PaymentReceived


@dataclass
class LoadStrategy:
    name: str = "default"


@dataclass
class OpenLoan:
    loan: Loan
    opened_at: datetime


@dataclass
class ContactRequest:
    """One outreach to carry out; ``idempotency_key`` names it for every retry."""

    idempotency_key: str
    loan_id: str
    borrower_id: str
    attempt_no: int
    channel: str
    target: str
    target_id: str
    slot: str
    purpose: str
    template: str
    stage: str
    at: datetime  # UTC collection time the planner allowed
    at_local: str
    timezone: str
    message: str  # template text from the strategy; rendered by the activity
    outstanding_minor: int
    currency: str


@dataclass
class ContactResult:
    idempotency_key: str
    outcome: str


PAYMENT_CONFLICT = "PaymentConflict"  # error type: a payment id already recorded otherwise


@dataclass
class PaymentEntry:
    loan_id: str
    payment: PaymentReceived
    outstanding_before: int
    outstanding_after: int
    overpaid_minor: int
    stage: str


@dataclass
class RejectedPayment:
    loan_id: str
    payment: PaymentReceived
    reason: str


@dataclass
class StageChange:
    loan_id: str
    sequence: int  # ordinal of this change in the loan's life: the idempotency key
    from_stage: str
    to_stage: str
    days_past_due: int
    outstanding_minor: int
    at: datetime


@dataclass
class NoticeRequest:
    notice_key: str
    loan_id: str
    kind: str
    days_past_due: int
    outstanding_minor: int
    currency: str
    issued_at: datetime
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class NoticeRecord:
    notice_key: str
    path: str
    sha256: str
