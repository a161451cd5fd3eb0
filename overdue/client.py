"""Operations on collections, for the CLI and for services: start, pay, report outcomes, status.

These talk to Temporal (the workflow is the source of truth while a collection runs) and read the
ledger for the full record.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.ledger import PaymentConflict, write_payment
from overdue.outcomes import LoanView, OutcomeInvalid, check_outcome, check_resolution
from workflows import search_attributes as sa
from workflows.collection import LoanCollection
from workflows.collection.view import loan_summary
from workflows.commands import PaymentEntry
from workflows.money import AmountError, check_currency, format_minor, to_minor
from workflows.types import (
    TASK_QUEUE,
    CollectionInput,
    CollectionStatus,
    ContactOutcome,
    DisputeResolution,
    HoldRequest,
    Loan,
    PaymentReceived,
    PaymentResult,
    ReviewDecision,
    Stage,
    workflow_id_for,
)


class UnknownLoan(LookupError):
    def __init__(self, loan_id: str) -> None:
        super().__init__(f"loan_id: no collection for loan {loan_id!r}")


class PaymentInvalid(ValueError):
    """A payment that cannot be sent; the message names the field."""


class HoldRefused(ValueError):
    """A pause or resume the collection cannot take; the message names the field."""


class StartOutcome:
    STARTED = "started"
    ALREADY_RUNNING = "already_running"
    ALREADY_ENDED = "already_ended"  # completed (cured or referred): not collected again


async def start_collection(
    client: Client,
    loan: Loan,
    *,
    day_seconds: float | None = None,
    clock_origin: datetime | None = None,
) -> str:
    """Start a loan's collection; returns a ``StartOutcome``.

    On a compressed clock (``day_seconds``), loans started with one ``clock_origin`` share one
    collection time, which the borrower-level budget needs to compare their contacts.

    The workflow id is the loan's, and a running collection is never duplicated; a loan whose
    earlier collection failed or was terminated may be started again, one that completed may not.
    """
    try:
        await client.start_workflow(
            LoanCollection.run,
            CollectionInput(loan=loan, day_seconds=day_seconds, clock_origin=clock_origin),
            id=workflow_id_for(loan.loan_id),
            task_queue=TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=loan_summary(loan),
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.LOAN_ID, loan.loan_id),
                    SearchAttributePair(sa.COLLECTION_STAGE, Stage.EARLY),
                    SearchAttributePair(sa.OUTSTANDING_MINOR, loan.outstanding_minor),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        status = await _describe(client.get_workflow_handle(workflow_id_for(loan.loan_id)))
        if status == WorkflowExecutionStatus.RUNNING:
            return StartOutcome.ALREADY_RUNNING
        return StartOutcome.ALREADY_ENDED
    return StartOutcome.STARTED


async def _describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def send_payment(
    client: Client,
    loan_id: str,
    amount: str,
    *,
    payment_id: str,
    currency: str | None = None,
    source: str = "cli",
    paid_at: datetime | None = None,
) -> PaymentReceived:
    """Validate a payment against the running collection and signal ``payment_received``."""
    if not payment_id.strip():
        raise PaymentInvalid("payment_id: is required")
    handle = await _running_collection(
        client, loan_id, PaymentInvalid, "record the payment in the ledger instead"
    )
    loan_currency = (await handle.query(LoanCollection.status)).currency
    if currency is not None:
        try:
            currency = check_currency(currency)
        except AmountError as problem:
            raise PaymentInvalid(f"currency: {problem}") from None
        if currency != loan_currency:
            raise PaymentInvalid(f"currency: {currency} does not match the loan's {loan_currency}")
    try:
        amount_minor = to_minor(amount, loan_currency)
    except AmountError as problem:
        raise PaymentInvalid(f"amount: {problem}") from None
    payment = PaymentReceived(
        payment_id=payment_id.strip(),
        amount_minor=amount_minor,
        currency=loan_currency,
        paid_at=paid_at or datetime.now(UTC),
        source=source,
    )
    await handle.signal(LoanCollection.payment_received, payment)
    return payment


async def _running_collection(
    client: Client,
    loan_id: str,
    refusal: type[ValueError] = OutcomeInvalid,
    instead: str = "outcomes are taken only while it runs",
) -> WorkflowHandle[Any, Any]:
    """The handle of the loan's running collection; signals go to no other.

    Raises:
        UnknownLoan: no collection for the loan.
        ``refusal``: the collection has ended (the message says what to do ``instead``).
    """
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    status = await _describe(handle)
    if status is None:
        raise UnknownLoan(loan_id)
    if status != WorkflowExecutionStatus.RUNNING:
        raise refusal(
            f"loan_id: the collection of {loan_id} has ended ({status.name.lower()}); {instead}"
        )
    return handle


async def _view(handle: WorkflowHandle[Any, Any]) -> LoanView:
    # By name, like the signals below: the query is the workflow's contract, not its class.
    status: CollectionStatus = await handle.query("status", result_type=CollectionStatus)
    return LoanView.from_status(status)


async def loan_view(client: Client, loan_id: str) -> LoanView:
    """The running loan as outcomes are checked against it: currency, balance, collection time.

    Raises:
        UnknownLoan: no collection for the loan.
        OutcomeInvalid: the collection has ended.
    """
    return await _view(await _running_collection(client, loan_id))


async def send_outcome(
    client: Client,
    loan_id: str,
    outcome: ContactOutcome,
    *,
    pool: asyncpg.Pool | None = None,
) -> ContactOutcome:
    """Check a contact outcome against the running collection and signal ``contact_outcome``.

    The signal is idempotent by ``outcome_id``. With ``pool``, an outcome id the ledger already
    holds for another loan is refused too (the ledger would refuse it without retry).

    Raises:
        UnknownLoan: no collection for the loan.
        OutcomeInvalid: the collection has ended, or the outcome is malformed; the message names
            the field.
    """
    handle = await _running_collection(client, loan_id)
    check_outcome(outcome, await _view(handle))
    if pool is not None:
        owner = await pool.fetchval(
            "SELECT loan_id FROM contact_outcomes WHERE outcome_id = $1", outcome.outcome_id
        )
        if owner is not None and owner != loan_id:
            raise OutcomeInvalid(
                f"outcome_id: {outcome.outcome_id} is already recorded for another loan"
            )
    # By name: the handler is the workflow's, and any source may send it (a dialer, a desk).
    await handle.signal("contact_outcome", outcome)
    return outcome


async def resolve_dispute(
    client: Client, loan_id: str, resolution: DisputeResolution
) -> DisputeResolution:
    """Signal ``dispute_resolved`` to the running collection: upheld closes the loan, rejected
    resumes it.

    Raises:
        UnknownLoan: no collection for the loan.
        OutcomeInvalid: the collection has ended, or the resolution is malformed.
    """
    handle = await _running_collection(client, loan_id)
    check_resolution(resolution)
    await handle.signal("dispute_resolved", resolution)
    return resolution


async def send_decision(client: Client, loan_id: str, decision: ReviewDecision) -> ReviewDecision:
    """Signal ``review_decided``: a person's decision on a death, a hardship or an estate."""
    handle = await _running_collection(client, loan_id)
    await handle.signal("review_decided", decision)
    return decision


async def pause_collection(client: Client, loan_id: str, request: HoldRequest) -> CollectionStatus:
    """For operations: pause one loan's collection and answer with its state once paused.

    No call, message or letter goes out and the stage does not escalate until it is resumed;
    payments, outcomes and decisions are still taken. Pausing a paused loan changes nothing.

    Raises:
        UnknownLoan: no collection for the loan.
        HoldRefused: the collection has ended, or ``reason`` is empty.
    """
    return await _change_hold(client, loan_id, LoanCollection.pause_collection, request)


async def resume_collection(client: Client, loan_id: str, request: HoldRequest) -> CollectionStatus:
    """For operations: resume a paused collection where it was, and answer with its state.

    Raises:
        UnknownLoan: no collection for the loan.
        HoldRefused: the collection has ended.
    """
    return await _change_hold(client, loan_id, LoanCollection.resume_collection, request)


async def _change_hold(
    client: Client,
    loan_id: str,
    update: Callable[[LoanCollection, HoldRequest], Awaitable[CollectionStatus]],
    request: HoldRequest,
) -> CollectionStatus:
    handle = await _running_collection(client, loan_id, HoldRefused, "there is nothing to hold")
    try:
        return await handle.execute_update(update, request, result_type=CollectionStatus)
    except WorkflowUpdateFailedError as failure:
        raise HoldRefused(_refusal(failure)) from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HoldRefused(f"loan_id: the collection of {loan_id} has ended") from None


def _refusal(failure: WorkflowUpdateFailedError) -> str:
    """What the workflow said when it refused an update: its validators name the field."""
    cause = failure.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


async def record_payment(
    client: Client, pool: asyncpg.Pool | None, loan_id: str, payment: PaymentReceived
) -> PaymentResult:
    """For payment services: apply a payment and answer with the balance after it.

    While the collection runs, the ``apply_payment`` update applies it; its validator refuses a
    malformed payment before anything is written. A payment id applied before answers
    ``duplicate=True`` and changes nothing. Once the collection has ended, the payment is
    recorded in the ledger directly, and what exceeds the balance is kept as ``overpaid_minor``,
    a credit to refund.

    Raises:
        UnknownLoan: no collection and no ledger record for the loan.
        PaymentInvalid: the payment cannot be applied; the message names the field.
    """
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    if await _describe(handle) == WorkflowExecutionStatus.RUNNING:
        try:
            return await handle.execute_update(LoanCollection.apply_payment, payment)
        except WorkflowUpdateFailedError as failure:
            raise PaymentInvalid(_refusal(failure)) from None
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # The collection ended between the two calls: the ledger takes the payment.
    if pool is None:
        raise PaymentInvalid(f"loan_id: the collection of {loan_id} is not running")
    return await _record_after_collection(pool, loan_id, payment)


async def _record_after_collection(
    pool: asyncpg.Pool, loan_id: str, payment: PaymentReceived
) -> PaymentResult:
    async with pool.acquire() as conn, conn.transaction():
        loan = await conn.fetchrow(
            "SELECT outstanding_minor, trim(currency) AS currency, stage FROM loans"
            " WHERE loan_id = $1 FOR UPDATE",
            loan_id,
        )
        if loan is None:
            raise UnknownLoan(loan_id)
        if payment.amount_minor <= 0:
            raise PaymentInvalid(f"amount_minor: must be positive, got {payment.amount_minor}")
        if payment.currency != loan["currency"]:
            raise PaymentInvalid(
                f"currency: {payment.currency} does not match the loan's {loan['currency']}"
            )
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
        try:
            applied = await write_payment(conn, entry, action="payment_recorded_after_collection")
        except PaymentConflict as conflict:
            raise PaymentInvalid(f"payment_id: {conflict}") from None
    return PaymentResult(
        payment_id=payment.payment_id,
        applied=applied,
        duplicate=not applied,
        rejection=None,
        outstanding_minor=after if applied else before,
        currency=loan["currency"],
        stage=loan["stage"],
    )


async def loan_status(client: Client, pool: asyncpg.Pool | None, loan_id: str) -> dict[str, Any]:
    """The loan's state (live from the workflow when it runs) and its full record from the ledger."""
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    status = await _describe(handle)
    record = await ledger_record(pool, loan_id) if pool is not None else None
    if status is None and record is None:
        raise UnknownLoan(loan_id)
    view: dict[str, Any] = {"loan_id": loan_id, "workflow_id": workflow_id_for(loan_id)}
    if status is not None:
        view["workflow_status"] = status.name.lower()
        if status == WorkflowExecutionStatus.RUNNING:
            view.update(status_view(await handle.query(LoanCollection.status)))
        elif status == WorkflowExecutionStatus.COMPLETED:
            summary = await handle.result()
            view.update(
                stage=summary.final_stage,
                resolved_in=summary.resolved_in,
                days_past_due=summary.days_past_due,
                outstanding_minor=summary.outstanding_minor,
                recovered_minor=summary.recovered_minor,
                currency=summary.currency,
                next_action={"kind": "none", "at_utc": None, "at_local": None, "detail": ""},
            )
    if record is not None:
        loan = record.pop("loan")
        view.setdefault("stage", loan["stage"])
        view.setdefault("outstanding_minor", loan["outstanding_minor"])
        view.setdefault("currency", loan["currency"])
        view.update(record)
    if "currency" in view and "outstanding_minor" in view:
        view["outstanding"] = format_minor(view["outstanding_minor"], view["currency"])
    return view


def status_view(status: CollectionStatus) -> dict[str, Any]:
    data = json.loads(json.dumps(asdict(status), default=_iso))
    # The ledger has every attempt and notice, with more detail.
    data.pop("recent_attempts", None)
    data.pop("notices", None)
    data["outstanding"] = format_minor(status.outstanding_minor, status.currency)
    return data


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


async def ledger_record(pool: asyncpg.Pool, loan_id: str) -> dict[str, Any] | None:
    """Everything the ledger holds on a loan: attempts, payments, promises and notices."""
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
        outcomes = await conn.fetch(
            "SELECT outcome_id, source, at, right_party, details FROM contact_outcomes"
            " WHERE loan_id = $1 ORDER BY at",
            loan_id,
        )
    return _jsonable(
        {
            "loan": dict(loan),
            "attempts": [dict(r) for r in attempts],
            "payments": [dict(r) for r in payments],
            "promises": [dict(r) for r in promises],
            "notices": [dict(r) for r in notices],
            "complaint_cases": [dict(r) for r in complaints],
            "outcomes": [{**dict(r), "details": json.loads(r["details"])} for r in outcomes],
        }
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()))
