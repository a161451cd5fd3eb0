"""Situation activities: contact outcomes, complaint cases, promises and their consequences.

Each write runs in one transaction with its audit entry, and each is keyed by the id its argument
carries: a retried activity finds its row already there and changes nothing. The credit bureau is
reached through an adapter (``activities.credit_bureau.CreditBureau``), at most once per promise.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.credit_bureau import CreditBureau
from overdue.ledger import append_audit
from workflows.commands import (
    OUTCOME_CONFLICT,
    BrokenPromise,
    ComplaintCase,
    CreditReport,
    OutcomeRecord,
    PromiseRecord,
    PromiseSettlement,
    SituationEvent,
)
from workflows.types import ContactOutcome
from workflows.vocabulary import ComplaintCategory

# Error types of failures no retry can fix.
UNKNOWN_PROMISE = "UnknownPromise"  # a settlement for a promise the ledger does not hold
INVALID_SITUATION_RECORD = "InvalidSituationRecord"  # a value the ledger's checks refuse

PROMISE_ENDINGS = ("kept", "broken", "partially_kept")
BROKEN_PROMISE_RECORD = "broken_promise"  # credit_records.kind
FAILED_DEBIT_FEE = "failed_debit"  # fees.kind


def outcome_facts(outcome: ContactOutcome) -> dict[str, Any]:
    """The facts an outcome carried, and only those: what was reported, nothing looked up."""
    facts: dict[str, Any] = {}
    if outcome.situation is not None:
        facts["situation"] = outcome.situation
    if outcome.promise is not None:
        facts["promise"] = {
            "amount_minor": outcome.promise.amount_minor,
            "due_date": outcome.promise.due_date,
        }
    if outcome.complaint is not None:
        facts["complaint"] = outcome.complaint
    if outcome.dispute:
        facts["dispute"] = True
    if outcome.hardship is not None:
        facts["hardship"] = {"term": outcome.hardship.term, "reason": outcome.hardship.reason}
    if outcome.death_reported_by is not None:
        facts["death_reported_by"] = outcome.death_reported_by
    if outcome.cease:
        facts["cease"] = True
    if outcome.refusal:
        facts["refusal"] = True
    if outcome.note is not None:
        facts["note"] = outcome.note
    return facts


class SituationActivities:
    """Activities that keep what conversations reveal. Holds the pool and the credit bureau."""

    def __init__(self, pool: asyncpg.Pool, bureau: CreditBureau) -> None:
        self._pool = pool
        self._bureau = bureau

    @activity.defn(name="record_contact_outcome")
    async def record_contact_outcome(self, record: OutcomeRecord) -> None:
        """Keep a reported outcome as reported, once, keyed by its outcome id.

        The same outcome id for another loan is a conflict that no retry can fix: the first
        record stands, and the error says so.
        """
        outcome = record.outcome
        facts = outcome_facts(outcome)
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO contact_outcomes (outcome_id, loan_id, source, at, right_party, stage,"
                " details, channel, conversation) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)"
                " ON CONFLICT (outcome_id) DO NOTHING RETURNING outcome_id",
                outcome.outcome_id,
                record.loan_id,
                outcome.source,
                outcome.at,
                outcome.right_party,
                record.stage,
                json.dumps(facts),
                outcome.channel,
                record.conversation,
            )
            if inserted is None:
                owner = await conn.fetchval(
                    "SELECT loan_id FROM contact_outcomes WHERE outcome_id = $1",
                    outcome.outcome_id,
                )
                if owner != record.loan_id:
                    raise ApplicationError(
                        f"outcome_id {outcome.outcome_id} is already recorded for another loan",
                        type=OUTCOME_CONFLICT,
                        non_retryable=True,
                    )
                return
            await append_audit(
                conn,
                event_key=f"{record.loan_id}:outcome:{outcome.outcome_id}",
                loan_id=record.loan_id,
                at=outcome.at,
                action="contact_outcome",
                actor=outcome.source,
                details={
                    "outcome_id": outcome.outcome_id,
                    "right_party": outcome.right_party,
                    "stage": record.stage,
                    **facts,
                },
            )

    @activity.defn(name="open_complaint_case")
    async def open_complaint_case(self, case: ComplaintCase) -> None:
        """Open a complaint case once, keyed by its case id, routed as the workflow decided."""
        if case.category not in ComplaintCategory.ALL:
            # The table's check would refuse it on every retry.
            raise ApplicationError(
                f"category: {case.category!r} is not a complaint category",
                type=INVALID_SITUATION_RECORD,
                non_retryable=True,
            )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO complaint_cases (case_id, loan_id, category, route, note, opened_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO NOTHING",
                case.case_id,
                case.loan_id,
                case.category,
                case.route,
                case.note,
                case.opened_at,
            )
            await append_audit(
                conn,
                event_key=f"{case.loan_id}:complaint:{case.case_id}",
                loan_id=case.loan_id,
                at=case.opened_at,
                action="complaint_opened",
                details={"case_id": case.case_id, "category": case.category, "route": case.route},
            )

    @activity.defn(name="record_promise")
    async def record_promise(self, promise: PromiseRecord) -> None:
        """Record a promise to pay as open, once, keyed by its promise id."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO promises (promise_id, loan_id, amount_minor, currency, due_date,"
                " status, made_at, source) VALUES ($1, $2, $3, $4, $5, 'open', $6, $7)"
                " ON CONFLICT (promise_id) DO NOTHING",
                promise.promise_id,
                promise.loan_id,
                promise.amount_minor,
                promise.currency,
                date.fromisoformat(promise.due_date),
                promise.made_at,
                promise.source,
            )
            await append_audit(
                conn,
                event_key=f"{promise.loan_id}:promise:{promise.promise_id}",
                loan_id=promise.loan_id,
                at=promise.made_at,
                action="promise_made",
                actor=promise.source,
                details={
                    "promise_id": promise.promise_id,
                    "amount_minor": promise.amount_minor,
                    "currency": promise.currency,
                    "due_date": promise.due_date,
                },
            )

    @activity.defn(name="settle_promise")
    async def settle_promise(self, settlement: PromiseSettlement) -> None:
        """Record how a promise ended. A promise ends once: only an open promise is updated.

        A retry finds the promise already settled and changes nothing; so does a second,
        different settlement, which is logged and otherwise ignored (the first one stands).
        """
        if settlement.status not in PROMISE_ENDINGS:
            raise ApplicationError(
                f"status: {settlement.status!r} is not one of {', '.join(PROMISE_ENDINGS)}",
                type=INVALID_SITUATION_RECORD,
                non_retryable=True,
            )
        if settlement.paid_minor < 0:
            raise ApplicationError(
                f"paid_minor: must not be negative, got {settlement.paid_minor}",
                type=INVALID_SITUATION_RECORD,
                non_retryable=True,
            )
        async with self._pool.acquire() as conn, conn.transaction():
            updated = await conn.fetchval(
                "UPDATE promises SET status = $3, paid_minor = $4, settled_at = $5"
                " WHERE promise_id = $1 AND loan_id = $2 AND status = 'open' RETURNING promise_id",
                settlement.promise_id,
                settlement.loan_id,
                settlement.status,
                settlement.paid_minor,
                settlement.at,
            )
            if updated is None:
                stored = await conn.fetchval(
                    "SELECT status FROM promises WHERE promise_id = $1 AND loan_id = $2",
                    settlement.promise_id,
                    settlement.loan_id,
                )
                if stored is None:
                    raise ApplicationError(
                        f"promise_id: no promise {settlement.promise_id} on loan"
                        f" {settlement.loan_id}",
                        type=UNKNOWN_PROMISE,
                        non_retryable=True,
                    )
                if stored != settlement.status:
                    activity.logger.warning(
                        "promise %s already ended %s; %s ignored",
                        settlement.promise_id,
                        stored,
                        settlement.status,
                    )
                return
            await append_audit(
                conn,
                event_key=f"{settlement.loan_id}:promise:{settlement.promise_id}:{settlement.status}",
                loan_id=settlement.loan_id,
                at=settlement.at,
                action=f"promise_{settlement.status}",
                details={"promise_id": settlement.promise_id, "paid_minor": settlement.paid_minor},
            )

    @activity.defn(name="report_broken_promise")
    async def report_broken_promise(self, report: BrokenPromise) -> CreditReport:
        """Report a broken promise to the credit bureau and charge the failed-debit fee, once.

        The bureau is called only when the ledger holds no record for the promise, so a retry
        returns the stored report without reporting the borrower twice. A zero fee (a currency
        the strategy charges nothing in) writes no fee row.
        """
        record_key = f"{report.promise_id}:negative"
        stored = await self._pool.fetchval(
            "SELECT bureau_reference FROM credit_records WHERE record_key = $1", record_key
        )
        if stored is not None:
            return CreditReport(record_key=record_key, bureau_reference=stored)
        reference = await self._bureau.report_negative(report)
        async with self._pool.acquire() as conn, conn.transaction():
            # Two attempts racing past the check above both reached the bureau; the first
            # reference written is the one kept and returned.
            kept = await conn.fetchval(
                "INSERT INTO credit_records (record_key, loan_id, kind, details, reported_at,"
                " bureau_reference) VALUES ($1, $2, $3, $4::jsonb, $5, $6)"
                " ON CONFLICT (record_key) DO UPDATE SET record_key = EXCLUDED.record_key"
                " RETURNING bureau_reference",
                record_key,
                report.loan_id,
                BROKEN_PROMISE_RECORD,
                json.dumps(
                    {
                        "promise_id": report.promise_id,
                        "borrower_id": report.borrower_id,
                        "amount_minor": report.amount_minor,
                        "paid_minor": report.paid_minor,
                        "currency": report.currency,
                        "broken_count": report.broken_count,
                    }
                ),
                report.at,
                reference,
            )
            if report.fee_minor > 0:
                await conn.execute(
                    "INSERT INTO fees (fee_key, loan_id, kind, amount_minor, currency, charged_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fee_key) DO NOTHING",
                    f"{report.promise_id}:failed_debit",
                    report.loan_id,
                    FAILED_DEBIT_FEE,
                    report.fee_minor,
                    report.currency,
                    report.at,
                )
                if report.outstanding_after is not None:
                    await conn.execute(
                        "UPDATE loans SET outstanding_minor = $2 WHERE loan_id = $1",
                        report.loan_id,
                        report.outstanding_after,
                    )
            reported = await append_audit(
                conn,
                event_key=f"{report.loan_id}:promise:{report.promise_id}:reported",
                loan_id=report.loan_id,
                at=report.at,
                action="promise_broken_reported",
                details={
                    "promise_id": report.promise_id,
                    "record_key": record_key,
                    "bureau_reference": kept,
                    "amount_minor": report.amount_minor,
                    "paid_minor": report.paid_minor,
                    "currency": report.currency,
                    "fee_minor": report.fee_minor,
                    "broken_count": report.broken_count,
                },
            )
        # Written with the credit record, the audit entry is new only on the first report: a
        # retry, or a second run that raced this one to the bureau, counts nothing.
        if reported:
            metrics.broken_promise(report.currency)
        return CreditReport(record_key=record_key, bureau_reference=kept)

    @activity.defn(name="record_situation_event")
    async def record_situation_event(self, event: SituationEvent) -> None:
        """Keep a change of situation (dispute opened, cease requested, …) in the audit log."""
        async with self._pool.acquire() as conn:
            await append_audit(
                conn,
                event_key=event.event_key,
                loan_id=event.loan_id,
                at=event.at,
                action=event.action,
                details=dict(event.details),
            )
