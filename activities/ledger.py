"""Ledger activities: loans, payments and stage changes, with an audit entry for each.

Each write runs in one transaction with its audit entry, and each is keyed: a retried activity
finds its row already there and changes nothing. The SQL the payment services share (payments,
audit entries) is in ``overdue.ledger``; these activities call it, so the workflow's writes and
theirs are the same statements.
"""

from __future__ import annotations

from datetime import date

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from overdue.ledger import PaymentConflict, append_audit, write_payment
from workflows.commands import (
    PAYMENT_CONFLICT,
    LoanChangeEntry,
    OpenLoan,
    PaymentEntry,
    RejectedPayment,
    StageChange,
)
from workflows.types import collection_key


class LedgerActivities:
    """Activities that write the ledger. Holds the connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="open_loan")
    async def open_loan(self, request: OpenLoan) -> None:
        """Register the loan, its borrower and references, and the collection that opens it.

        Re-opening the same collection is a no-op. A later collection of the loan (it fell
        overdue again after a cure) opens the loan again: its stage, balance and due date are
        the new collection's.
        """
        loan, borrower = request.loan, request.loan.borrower
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO borrowers (borrower_id, name, phone, timezone, language)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (borrower_id) DO UPDATE"
                # The language the newest collection was started with, when it names one: a
                # retry writes the same value again, so the insert stays idempotent.
                " SET language = EXCLUDED.language WHERE EXCLUDED.language <> ''",
                borrower.borrower_id,
                borrower.name,
                borrower.phone,
                borrower.timezone,
                borrower.language,
            )
            inserted = await conn.fetchval(
                "INSERT INTO loans (loan_id, borrower_id, product, principal_minor, outstanding_minor,"
                " currency, due_date, jurisdiction, opened_at, strategy, strategy_version,"
                " strategy_segment, strategy_champion)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                " ON CONFLICT (loan_id) DO NOTHING RETURNING loan_id",
                loan.loan_id,
                borrower.borrower_id,
                loan.product,
                loan.principal_minor,
                loan.outstanding_minor,
                loan.currency,
                date.fromisoformat(loan.due_date),
                loan.jurisdiction,
                request.opened_at,
                request.strategy,
                request.strategy_version,
                request.strategy_segment,
                request.strategy_champion,
            )
            opened = await conn.fetchval(
                "INSERT INTO collections (loan_id, number, workflow_id, run_id, opened_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING number",
                loan.loan_id,
                request.number,
                request.workflow_id,
                request.run_id,
                request.opened_at,
            )
            if opened is not None and request.number > 1:
                await conn.execute(
                    "UPDATE loans SET stage = 'early', closed_at = NULL, outstanding_minor = $2,"
                    " due_date = $3, opened_at = $4, strategy = $5, strategy_version = $6,"
                    " strategy_segment = $7, strategy_champion = $8 WHERE loan_id = $1",
                    loan.loan_id,
                    loan.outstanding_minor,
                    date.fromisoformat(loan.due_date),
                    request.opened_at,
                    request.strategy,
                    request.strategy_version,
                    request.strategy_segment,
                    request.strategy_champion,
                )
            for contact in loan.contacts:
                await conn.execute(
                    "INSERT INTO contacts (loan_id, contact_id, name, phone, relation)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    loan.loan_id,
                    contact.contact_id,
                    contact.name,
                    contact.phone,
                    contact.relation,
                )
            await append_audit(
                conn,
                event_key=f"{collection_key(loan.loan_id, request.number)}:opened",
                loan_id=loan.loan_id,
                at=request.opened_at,
                action="loan_opened",
                details={
                    "outstanding_minor": loan.outstanding_minor,
                    "currency": loan.currency,
                    "jurisdiction": loan.jurisdiction,
                    "new": inserted is not None,
                    "collection": request.number,
                },
            )

    @activity.defn(name="record_payment")
    async def record_payment(self, entry: PaymentEntry) -> None:
        """Write a payment once, keyed by its payment id, and lower the loan's balance.

        A payment id already recorded with the same details is a retry and changes nothing; the
        same id with other details is a conflict that no retry can fix.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                written = await write_payment(conn, entry, action="payment_applied")
            except PaymentConflict as conflict:
                raise ApplicationError(
                    str(conflict), type=PAYMENT_CONFLICT, non_retryable=True
                ) from None
        # Counted only when this call wrote the payment: a retry finds it and counts nothing.
        if written:
            metrics.payment(
                entry.payment.currency, entry.outstanding_before - entry.outstanding_after
            )

    @activity.defn(name="record_loan_change")
    async def record_loan_change(self, change: LoanChangeEntry) -> None:
        """Keep a change of the loan book in the audit log, and the loan's balance and due date
        with it. Once per version: a retry finds the entry and changes nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            written = await append_audit(
                conn,
                event_key=f"{change.loan_id}:book:v{change.version}",
                loan_id=change.loan_id,
                at=change.at,
                action="loan_changed",
                actor="loan_book",
                details={
                    "version": change.version,
                    "overdue_minor": change.overdue_minor,
                    "outstanding_before": change.outstanding_before,
                    "outstanding_after": change.outstanding_after,
                    "due_date": change.due_date,
                    "payment_ids": change.payment_ids,
                },
            )
            if written:
                await conn.execute(
                    "UPDATE loans SET outstanding_minor = $2, due_date = $3 WHERE loan_id = $1",
                    change.loan_id,
                    change.outstanding_after,
                    date.fromisoformat(change.due_date),
                )

    @activity.defn(name="record_rejected_payment")
    async def record_rejected_payment(self, rejected: RejectedPayment) -> None:
        """A payment signal the workflow could not apply is kept in the audit log, never lost."""
        payment = rejected.payment
        async with self._pool.acquire() as conn:
            await append_audit(
                conn,
                event_key=f"{rejected.loan_id}:payment_rejected:{payment.payment_id}",
                loan_id=rejected.loan_id,
                at=payment.paid_at,
                action="payment_rejected",
                actor=f"payment:{payment.source}",
                details={
                    "payment_id": payment.payment_id,
                    "amount_minor": payment.amount_minor,
                    "currency": payment.currency,
                    "reason": rejected.reason,
                },
            )

    @activity.defn(name="record_stage_change")
    async def record_stage_change(self, change: StageChange) -> None:
        closing = change.to_stage in (
            "cured",
            "referred",
            "dispute_upheld",
            "estate_claim",
            "written_off",
        )
        async with self._pool.acquire() as conn, conn.transaction():
            opened_at = await conn.fetchval(
                "UPDATE loans SET stage = $2, closed_at = CASE WHEN $3 THEN $4 ELSE closed_at END"
                " WHERE loan_id = $1 RETURNING opened_at",
                change.loan_id,
                change.to_stage,
                closing,
                change.at,
            )
            changed = await append_audit(
                conn,
                event_key=f"{collection_key(change.loan_id, change.number)}:stage:{change.sequence}",
                loan_id=change.loan_id,
                at=change.at,
                action="stage_changed",
                details={
                    "from": change.from_stage,
                    "to": change.to_stage,
                    "days_past_due": change.days_past_due,
                    "outstanding_minor": change.outstanding_minor,
                },
            )
        # The audit entry, keyed by the change's sequence, is new only on the first run: a retried
        # activity must not count the change twice.
        if changed:
            metrics.stage_transition(change.from_stage, change.to_stage)
            if change.to_stage == "cured" and opened_at is not None:
                # The loan opened at the start of its collection clock, and the change is
                # stamped in collection time: the difference is collection time, even compressed.
                metrics.cure(change.days_past_due, change.at - opened_at)
