"""The ledger: what PostgreSQL holds about loans and payments, and the one place that writes them.

Both sides use this module: the ledger activities (``activities/ledger.py``, which the workflow
runs) and the payment services' side (``overdue.client``, the outbox, the API and the CLI). A
check made here is made once for everyone, with one message:

- a payment id is the key of ``payments``: written once (``ON CONFLICT DO NOTHING``), and the same
  id seen again with another loan, amount or currency is a ``PaymentConflict``
  (``same_payment`` is the one comparison, for the ledger's rows and the outbox's alike);
- a payment fits a loan when its amount is positive and its currency is the loan's
  (``payment_problem``);
- a loan the ledger does not hold is an ``UnknownLoan``.

Every write is keyed, so that a retry (an activity's, a relay's, a caller's) finds its row and
changes nothing, and each runs in one transaction with its audit entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from workflows.commands import PaymentEntry
from workflows.types import PaymentReceived, PaymentResult

Executor = asyncpg.Connection | PoolConnectionProxy
"""A connection, or a pool's: whatever runs the statements of one transaction."""

# The audit action of a payment recorded once its collection has ended (the workflow's own
# writes are ``payment_applied``).
RECORDED_AFTER_COLLECTION = "payment_recorded_after_collection"


class UnknownLoan(LookupError):
    """No collection and no ledger record for the loan."""

    def __init__(self, loan_id: str) -> None:
        super().__init__(f"loan_id: no collection for loan {loan_id!r}")


class PaymentInvalid(ValueError):
    """A payment that cannot be applied; the message starts with the field at fault."""


class PaymentConflict(PaymentInvalid):
    """A payment id already recorded (or stored in the outbox) with another loan, amount or
    currency. No retry can fix it."""

    def __init__(self, payment_id: str) -> None:
        super().__init__(
            f"payment_id: {payment_id} is already recorded with another loan, amount or currency"
        )


# --- checks ---------------------------------------------------------------------------------


def same_payment(
    recorded: asyncpg.Record | Mapping[str, Any], loan_id: str, payment: PaymentReceived
) -> bool:
    """Whether a row recorded under a payment id is this payment.

    Loan, amount and currency are compared; payment time and source are not, because a bank's
    resend may restamp them. ``recorded`` is a ``payments`` or ``payment_outbox`` row.
    """
    return bool(
        recorded["loan_id"] == loan_id
        and recorded["amount_minor"] == payment.amount_minor
        # ``char(3)`` in ``payments``: strip its padding.
        and recorded["currency"].strip() == payment.currency
    )


def payment_problem(payment: PaymentReceived, loan_currency: str) -> str | None:
    """Why a payment cannot be applied to a loan in ``loan_currency``, naming the field, or None.

    The rule is the collection's own (``workflows.collection.rules.payment_problem``, which its
    update validator and signal handler apply), so the ledger refuses exactly what a running
    collection would; only the wording is this side's, ``field: why``.
    """
    # Imported here, not at the top: the workflow imports this module (through the ledger
    # activities) passed through its sandbox, and must import its own rules inside it.
    from workflows.collection.rules import payment_problem as collection_rule

    problem = collection_rule(payment, loan_currency)
    return None if problem is None else field_named(problem)


def field_named(message: str) -> str:
    """``currency EUR does not match`` as ``currency: EUR does not match``: the collection's
    refusals start with the field, and every refusal on this side names it with a colon."""
    word, _, rest = message.partition(" ")
    if word.isidentifier() and word.islower() and not word.endswith(":") and rest:
        return f"{word}: {rest}"
    return message


async def loan_currency(conn: Executor | asyncpg.Pool, loan_id: str) -> str | None:
    """The currency of a loan the ledger holds, or None when it does not hold it (yet)."""
    currency: str | None = await conn.fetchval(
        "SELECT trim(currency) FROM loans WHERE loan_id = $1", loan_id
    )
    return currency


async def check_payment_id(
    conn: Executor | asyncpg.Pool, loan_id: str, payment: PaymentReceived
) -> bool:
    """Whether the ledger holds this payment already.

    Returns:
        True when it holds this payment id with the same loan, amount and currency; False when it
        does not hold the id.

    Raises:
        PaymentConflict: it holds the id with another loan, amount or currency.
    """
    recorded = await conn.fetchrow(
        "SELECT loan_id, amount_minor, currency FROM payments WHERE payment_id = $1",
        payment.payment_id,
    )
    if recorded is None:
        return False
    if not same_payment(recorded, loan_id, payment):
        raise PaymentConflict(payment.payment_id)
    return True


# --- writes ---------------------------------------------------------------------------------


async def append_audit(
    conn: Executor,
    *,
    event_key: str,
    loan_id: str,
    at: Any,
    action: str,
    details: dict[str, Any],
    actor: str = "workflow",
) -> bool:
    """Append one audit entry; the same ``event_key`` twice is one entry.

    Returns:
        True when this call wrote the entry, False when it was already there.
    """
    appended = await conn.fetchval(
        "INSERT INTO audit_log (event_key, loan_id, at, actor, action, details)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (event_key) DO NOTHING"
        " RETURNING seq",
        event_key,
        loan_id,
        at,
        actor,
        action,
        json.dumps(details, default=str),
    )
    return appended is not None


async def write_payment(conn: Executor, entry: PaymentEntry, *, action: str) -> bool:
    """Insert a payment keyed by its id, lower the loan's balance, and audit it, in ``conn``'s
    transaction.

    The unique key decides, not a look beforehand: two writers of one payment id cannot both
    insert it.

    Returns:
        True when this call wrote it, False when the same payment was recorded before.

    Raises:
        PaymentConflict: the id is recorded with another loan, amount or currency.
    """
    payment = entry.payment
    inserted = await conn.fetchval(
        "INSERT INTO payments (payment_id, loan_id, amount_minor, currency, paid_at, source,"
        " outstanding_before, outstanding_after, overpaid_minor, stage)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id",
        payment.payment_id,
        entry.loan_id,
        payment.amount_minor,
        payment.currency,
        payment.paid_at,
        payment.source,
        entry.outstanding_before,
        entry.outstanding_after,
        entry.overpaid_minor,
        entry.stage,
    )
    if inserted is None:
        await check_payment_id(conn, entry.loan_id, payment)  # raises on a conflict
        return False
    await conn.execute(
        "UPDATE loans SET outstanding_minor = $2 WHERE loan_id = $1",
        entry.loan_id,
        entry.outstanding_after,
    )
    await append_audit(
        conn,
        event_key=f"{entry.loan_id}:payment:{payment.payment_id}",
        loan_id=entry.loan_id,
        at=payment.paid_at,
        action=action,
        actor=f"payment:{payment.source}",
        details={
            "payment_id": payment.payment_id,
            "amount_minor": payment.amount_minor,
            "currency": payment.currency,
            "outstanding_after": entry.outstanding_after,
            "overpaid_minor": entry.overpaid_minor,
        },
    )
    return True


async def record_after_collection(
    pool: asyncpg.Pool, loan_id: str, payment: PaymentReceived
) -> PaymentResult:
    """Record a payment for a loan whose collection has ended, and answer as the update would.

    What exceeds the balance is kept as ``overpaid_minor``, a credit to refund. The loan's row is
    locked while the balance is read and lowered, so two late payments cannot both start from
    the same balance.

    Raises:
        UnknownLoan: the ledger does not hold the loan.
        PaymentInvalid: the amount is not positive, or the currency is not the loan's.
        PaymentConflict: the payment id is recorded with other details.
    """
    async with pool.acquire() as conn, conn.transaction():
        loan = await conn.fetchrow(
            "SELECT outstanding_minor, trim(currency) AS currency, stage FROM loans"
            " WHERE loan_id = $1 FOR UPDATE",
            loan_id,
        )
        if loan is None:
            raise UnknownLoan(loan_id)
        problem = payment_problem(payment, loan["currency"])
        if problem is not None:
            raise PaymentInvalid(problem)
        before = loan["outstanding_minor"]
        after = max(0, before - payment.amount_minor)
        entry = PaymentEntry(
            loan_id=loan_id,
            payment=payment,
            outstanding_before=before,
            outstanding_after=after,
            overpaid_minor=max(0, payment.amount_minor - before),
            stage=loan["stage"],
        )
        applied = await write_payment(conn, entry, action=RECORDED_AFTER_COLLECTION)
    return PaymentResult(
        payment_id=payment.payment_id,
        applied=applied,
        duplicate=not applied,
        rejection=None,
        outstanding_minor=after if applied else before,
        currency=loan["currency"],
        stage=loan["stage"],
    )


# --- reads ----------------------------------------------------------------------------------


async def ledger_record(pool: asyncpg.Pool, loan_id: str) -> dict[str, Any] | None:
    """Everything the ledger holds on a loan: attempts, payments, promises and notices.

    Returns:
        The record as JSON-ready values (times as ISO strings), or None for an unknown loan.
    """
    async with pool.acquire() as conn:
        loan = await conn.fetchrow(
            "SELECT stage, outstanding_minor, trim(currency) AS currency, jurisdiction,"
            " due_date, opened_at, closed_at FROM loans WHERE loan_id = $1",
            loan_id,
        )
        if loan is None:
            return None
        attempts = await conn.fetch(
            "SELECT attempt_no, at_utc, at_local, channel, target, target_id, slot, purpose,"
            " stage, outcome FROM contact_attempts WHERE loan_id = $1 ORDER BY attempt_no",
            loan_id,
        )
        payments = await conn.fetch(
            "SELECT payment_id, amount_minor, trim(currency) AS currency, paid_at, source,"
            " outstanding_after, overpaid_minor, stage FROM payments WHERE loan_id = $1"
            " ORDER BY paid_at, recorded_at",
            loan_id,
        )
        promises = await conn.fetch(
            "SELECT promise_id, amount_minor, trim(currency) AS currency, due_date, status"
            " FROM promises WHERE loan_id = $1 ORDER BY made_at",
            loan_id,
        )
        notices = await conn.fetch(
            "SELECT notice_key, kind, path, sha256, issued_at FROM notices WHERE loan_id = $1"
            " ORDER BY issued_at",
            loan_id,
        )
        complaints = await conn.fetch(
            "SELECT case_id, category, route, status, opened_at FROM complaint_cases"
            " WHERE loan_id = $1 ORDER BY opened_at",
            loan_id,
        )
        cases = await conn.fetch(
            "SELECT case_id, collection, kind, asked, team, opened_at, deadline, assignee,"
            " escalated_at, closed_at, outcome FROM cases WHERE loan_id = $1"
            " ORDER BY opened_at, case_id",
            loan_id,
        )
        outcomes = await conn.fetch(
            "SELECT outcome_id, source, at, right_party, details FROM contact_outcomes"
            " WHERE loan_id = $1 ORDER BY at",
            loan_id,
        )
    record: dict[str, Any] = _jsonable(
        {
            "loan": dict(loan),
            "attempts": [dict(r) for r in attempts],
            "payments": [dict(r) for r in payments],
            "promises": [dict(r) for r in promises],
            "notices": [dict(r) for r in notices],
            "complaint_cases": [dict(r) for r in complaints],
            "outcomes": [{**dict(r), "details": json.loads(r["details"])} for r in outcomes],
            "cases": [dict(r) for r in cases],
        }
    )
    return record


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()))
