"""The HTTP API's request and response bodies: pydantic models, so the OpenAPI document is the
contract (``overdue.api`` serves them). Every field is held to the shared limits
(``workflows.limits``, through ``overdue.schemas``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

from overdue.loanbook import BookLoanIn, Change
from overdue.outbox import (
    IncomingPayment,
    OutboxEntry,
)
from overdue.schemas import (
    PAID_WINDOW,
    Identifier,
    Note,
    PaymentFields,
    ShortText,
)
from workflows import limits
from workflows.money import format_minor
from workflows.types import PaymentReceived


class PaymentIn(PaymentFields):
    """A payment received, as a payment service reports it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "payment_id": "BANK-2026-000123",
                    "loan_id": "L-1001",
                    "amount": "125.00",
                    "currency": "USD",
                    "paid_at": "2026-03-02T09:30:00Z",
                    "reference": "statement 2026-03-02 line 17",
                }
            ]
        },
    )

    paid_at: Annotated[AwareDatetime, PAID_WINDOW] | None = Field(
        default=None,
        description="When the money was received (with a zone), from 1990-01-01 to now (plus"
        " 5 minutes of clock skew). Default: now.",
    )
    source: Identifier = Field(default="api", description="Who reports the payment.")

    def incoming(self) -> IncomingPayment:
        return IncomingPayment(
            loan_id=self.loan_id,
            payment=PaymentReceived(
                payment_id=self.payment_id,
                amount_minor=self.amount_minor,
                currency=self.currency,
                paid_at=(self.paid_at or datetime.now(UTC)).astimezone(UTC),
                source=self.source,
            ),
            reference=self.reference,
        )


class PaymentOut(BaseModel):
    """A stored payment and what became of it."""

    payment_id: str
    loan_id: str
    status: Literal["applied", "queued", "rejected"] = Field(
        description="applied: the collection (or the ledger) took it; queued: stored, to be"
        " delivered when Temporal answers; rejected: refused for good (see last_error)."
    )
    replayed: bool = Field(
        description="This request repeated a payment id already stored: nothing new was done."
    )
    amount: str
    amount_minor: int
    currency: str
    paid_at: datetime
    source: str
    reference: str | None
    outstanding_minor: int | None = Field(description="The balance after it, once applied.")
    outstanding: str | None
    stage: str | None
    attempts: int = Field(description="Deliveries tried so far.")
    next_attempt_at: datetime | None = Field(description="When a queued payment is tried next.")
    last_error: str | None

    @classmethod
    def of(cls, entry: OutboxEntry, *, replayed: bool = False) -> PaymentOut:
        payment, result = entry.payment, entry.result
        return cls(
            payment_id=payment.payment_id,
            loan_id=entry.loan_id,
            status=entry.outcome,  # type: ignore[arg-type]
            replayed=replayed,
            amount=format_minor(payment.amount_minor, payment.currency),
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            paid_at=payment.paid_at,
            source=payment.source,
            reference=entry.reference,
            outstanding_minor=result.outstanding_minor if result else None,
            outstanding=format_minor(result.outstanding_minor, result.currency) if result else None,
            stage=result.stage if result else None,
            attempts=entry.attempts,
            next_attempt_at=entry.next_attempt_at if entry.status == "pending" else None,
            last_error=entry.last_error,
        )


# How a conversation was held: ``workflows.types.CONVERSATION_CHANNELS``, spelt out for the
# schema (tests/unit/test_outcome_validation.py keeps the two equal).
ConversationChannel = Literal["call", "inbound_call", "sms", "email", "in_person"]
# A situation or complaint code: the vocabulary's are a few words; more is no code.
CODE_MAX_LENGTH = 64


class OutcomeIn(BaseModel):
    """What a conversation revealed, as a collector, a dialer or an agent desk reports it."""

    model_config = ConfigDict(extra="forbid")

    outcome_id: Identifier = Field(description="The outcome's unique id: the idempotency key.")
    source: str = Field(
        default="collector:api",
        max_length=limits.SOURCE_MAX,
        description="Who reports, as kind:name.",
    )
    right_party: StrictBool = Field(
        default=True, description="False: the borrower was not reached."
    )
    situation: str | None = Field(
        default=None, max_length=CODE_MAX_LENGTH, description="A situation code."
    )
    promise_amount: str | None = Field(
        default=None,
        max_length=limits.MAX_AMOUNT_TEXT,
        description="Amount promised, in major units of the loan's currency.",
    )
    promise_date: date | None = Field(default=None, description="Borrower-local date promised.")
    complaint: str | None = Field(
        default=None, max_length=CODE_MAX_LENGTH, description="A complaint category."
    )
    dispute: StrictBool = Field(default=False, description="The borrower disputes the debt itself.")
    hardship: Literal["short", "long"] | None = None
    hardship_reason: ShortText | None = None
    deceased_reported_by: ShortText | None = None
    cease: StrictBool = Field(default=False, description="The borrower asks that contact stop.")
    refusal: StrictBool = Field(default=False, description="The borrower wilfully refuses to pay.")
    note: Note | None = Field(
        default=None, description="Free text; tabs and line breaks allowed, no other control."
    )
    channel: ConversationChannel = Field(
        default="call",
        description="How the conversation was held: call (outbound), inbound_call, sms, email"
        " or in_person. A right-party one by phone counts for the borrower's conversation rules.",
    )


# The fields of an outcome checked before its loan is looked up (``check_outcome_fields``).
OUTCOME_FORM_FIELDS = {
    "outcome_id",
    "source",
    "situation",
    "promise_amount",
    "promise_date",
    "complaint",
    "hardship",
    "hardship_reason",
    "deceased_reported_by",
    "note",
    "channel",
}


class OutcomeOut(BaseModel):
    loan_id: str
    outcome_id: str
    source: str
    channel: str
    at: datetime = Field(description="Stamped with the collection's time.")
    right_party: bool
    facts: dict[str, Any]
    signalled: bool


class BookLoanPut(BookLoanIn):
    """A loan of the book as the core system sends it: the fields of a line of
    ``overdue loans sync`` in JSON Lines, checked by the same rules (``BookLoanIn``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 3,
                    "borrower_id": "B-77",
                    "borrower_name": "Ann Lee",
                    "phone": "+12025550123",
                    "timezone": "America/New_York",
                    "product": "personal",
                    "principal": "1200.00",
                    "currency": "USD",
                    "jurisdiction": "us",
                    "schedule": [
                        {"due_date": "2026-10-01", "amount_due": "100.00", "amount_paid": "100.00"},
                        {"due_date": "2026-11-01", "amount_due": "100.00"},
                    ],
                }
            ]
        },
    )

    # The path names the loan; the body may repeat it (a sync line as it is), but not differ.
    loan_id: Identifier | None = Field(  # type: ignore[assignment]
        default=None, description="Optional: the path's loan id, when given."
    )


class BookLoanOut(BaseModel):
    """What a ``PUT /v1/loans/{loan_id}`` did to the loan book."""

    loan_id: str
    version: int = Field(description="The version sent.")
    change: Literal["added", "updated", "unchanged", "stale"] = Field(
        description="added: a new loan; updated: a newer version replaced the book's; unchanged:"
        " the book holds this version with this content; stale: the book holds a newer version,"
        " and this one was not stored."
    )
    book_version: int = Field(description="The version the book holds after the request.")
    message: str

    @classmethod
    def of(cls, loan_id: str, version: int, change: str, book_version: int) -> BookLoanOut:
        messages = {
            Change.ADDED: f"version {version} added to the loan book",
            Change.UPDATED: f"the loan book now holds version {version}",
            Change.UNCHANGED: f"the loan book already holds version {version}; nothing changed",
            Change.STALE: f"the loan book holds version {book_version}, newer than {version};"
            " nothing changed",
        }
        return cls(
            loan_id=loan_id,
            version=version,
            change=change,  # type: ignore[arg-type]
            book_version=book_version,
            message=messages[change],
        )


class ErrorOut(BaseModel):
    """Every refusal: one line naming the field at fault."""

    error: str = Field(examples=["amount: must be positive, got -5"])
    field: str | None = Field(examples=["amount"])
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="On a 422 from the schema: FastAPI's standard list."
    )
