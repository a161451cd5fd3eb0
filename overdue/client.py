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
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from overdue import ledger

# The payment errors are the ledger's; the callers of this module name them from here too.
from overdue.ledger import PaymentConflict as PaymentConflict
from overdue.ledger import PaymentInvalid as PaymentInvalid
from overdue.ledger import UnknownLoan as UnknownLoan
from overdue.ledger import ledger_record
from overdue.outcomes import LoanView, OutcomeInvalid, check_outcome, check_resolution

# Starting collections is its own module (the delinquency scan's activity starts them too).
from overdue.starts import StartOutcome as StartOutcome
from overdue.starts import start_collection as start_collection
from workflows import limits
from workflows.collection import LoanCollection
from workflows.money import AmountError, check_currency, format_minor, to_minor
from workflows.types import (
    CollectionStatus,
    ContactOutcome,
    DisputeResolution,
    HoldRequest,
    PaymentReceived,
    PaymentResult,
    ReviewDecision,
    workflow_id_for,
)


class HoldRefused(ValueError):
    """A pause or resume the collection cannot take; the message names the field."""


async def _describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def payment_from_input(
    amount: str,
    currency: str,
    *,
    payment_id: str,
    source: str = "cli",
    paid_at: datetime | None = None,
) -> PaymentReceived:
    """A payment as a person types it: an amount in major units of ``currency``.

    Only the form is checked here (``workflows.limits``: an id, a known currency, an amount
    with that currency's decimal places within 64 bits, a plausible ``paid_at``); whether it
    fits the loan is the collection's or the ledger's to say.

    Raises:
        PaymentInvalid: the message names the field.
    """
    check_payment_arguments(amount, payment_id=payment_id, currency=currency, source=source)
    currency = check_currency(currency)
    try:
        amount_minor = to_minor(amount, currency)
    except AmountError as problem:
        raise PaymentInvalid(f"amount: {problem}") from None
    payment = PaymentReceived(
        payment_id=payment_id.strip(),
        amount_minor=amount_minor,
        currency=currency,
        paid_at=paid_at or datetime.now(UTC),
        source=source,
    )
    check_payment(payment)
    return payment


def check_payment_arguments(
    amount: str, *, payment_id: str, currency: str | None = None, source: str = "cli"
) -> None:
    """The checks of a payment as a person types it that need no loan: the CLI makes them
    before it connects to anything. Without ``currency`` (the loan's is looked up later) the
    amount's shape and size are checked, and its decimal places once the currency is known.

    Raises:
        PaymentInvalid: the first problem found; the message names the field.
    """
    for name, value in (("payment_id", payment_id.strip()), ("source", source)):
        try:
            limits.check_id(value)
        except limits.LimitError as problem:
            raise PaymentInvalid(f"{name}: {problem}") from None
    if currency is not None:
        try:
            currency = check_currency(currency)
        except AmountError as problem:
            raise PaymentInvalid(f"currency: {problem}") from None
    try:
        if currency is not None:
            to_minor(amount, currency)
        else:
            sign, whole, fraction = limits.check_amount_text(amount)
            if sign == "-" or not (whole + fraction).strip("0"):
                raise AmountError(f"must be positive, got {amount.strip()}")
    except AmountError as problem:
        raise PaymentInvalid(f"amount: {problem}") from None
    except limits.LimitError as problem:
        raise PaymentInvalid(f"amount: {problem}") from None


def check_payment(payment: PaymentReceived) -> None:
    """A payment a service built, held to the limits every edge applies (ids, a 64-bit amount,
    a ``paid_at`` from 1990 to now); the same the collection's update validator applies.

    Raises:
        PaymentInvalid: the message names the field.
    """
    problem = limits.payment_problem(payment, datetime.now(UTC))
    if problem is not None:
        raise PaymentInvalid(problem)


async def loan_currency(client: Client, pool: asyncpg.Pool | None, loan_id: str) -> str:
    """The loan's currency: from the ledger, or from its collection when the ledger does not hold
    it yet (a collection started moments ago).

    Raises:
        UnknownLoan: neither knows the loan.
    """
    if pool is not None:
        currency = await ledger.loan_currency(pool, loan_id)
        if currency is not None:
            return currency
    return await collection_currency(client, loan_id)


async def collection_currency(client: Client, loan_id: str) -> str:
    """The loan's currency as its collection holds it: one ``status`` query, which also answers
    for a collection that has ended.

    Raises:
        UnknownLoan: there is no collection for the loan.
    """
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    try:
        status: CollectionStatus = await handle.query("status", result_type=CollectionStatus)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UnknownLoan(loan_id) from None
        raise
    return status.currency


async def send_payment(
    client: Client,
    loan_id: str,
    amount: str,
    *,
    payment_id: str,
    currency: str | None = None,
    source: str = "cli",
    paid_at: datetime | None = None,
    pool: asyncpg.Pool | None = None,
) -> PaymentReceived:
    """Signal ``payment_received``, for a source that cannot wait for the update's answer.

    A signal cannot answer, and the collection records a payment it cannot apply as rejected
    without telling the sender: so this checks the payment against the loan before it signals
    (with the ledger's ``payment_problem``, the rule the collection applies). It does not wait
    for the payment to be applied; ``record_payment`` does.

    Args:
        client: The Temporal client.
        loan_id: The loan paid.
        amount: The amount in major units (``"125.00"``).
        payment_id: The payment's unique id: the signal is idempotent by it.
        currency: The payment's currency; default: the loan's.
        source: Who reports the payment.
        paid_at: When the money was received; default: now.
        pool: The ledger, where the loan's currency is read first; without it, or for a loan it
            does not hold yet, the collection is asked.

    Returns:
        The payment signalled.

    Raises:
        UnknownLoan: no collection for the loan.
        PaymentInvalid: the payment does not fit the loan, or the collection has ended; the
            message names the field.
    """
    loan_currency_ = await loan_currency(client, pool, loan_id)
    payment = payment_from_input(
        amount, currency or loan_currency_, payment_id=payment_id, source=source, paid_at=paid_at
    )
    problem = ledger.payment_problem(payment, loan_currency_)
    if problem is not None:
        raise PaymentInvalid(problem)
    if not await signal_payment(client, loan_id, payment):
        raise PaymentInvalid(
            f"loan_id: the collection of {loan_id} has ended; pay without --signal to record"
            " the payment in the ledger"
        )
    return payment


async def signal_payment(client: Client, loan_id: str, payment: PaymentReceived) -> bool:
    """Signal ``payment_received`` to the loan's running collection, with no check beforehand.

    Returns:
        False when no collection runs for the loan (it has ended, or never started): a signal
        reaches a running workflow only.
    """
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    try:
        await handle.signal(LoanCollection.payment_received, payment)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return True


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
    problem = limits.hold_problem(request, pause=update is LoanCollection.pause_collection)
    if problem is not None:
        raise HoldRefused(problem)
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

    The ``apply_payment`` update is tried first, with no look beforehand: its validator refuses
    a payment that does not fit the loan before anything is written, and a payment id applied
    before answers ``duplicate=True`` and changes nothing. When Temporal answers that there is
    no running collection (none, or it has ended), the payment is recorded in the ledger
    directly, and what exceeds the balance is kept as ``overpaid_minor``, a credit to refund.

    Args:
        client: The Temporal client.
        pool: The ledger. Without it a payment can reach only a running collection, and a
            duplicate cannot be told from a conflict.
        loan_id: The loan paid.
        payment: The payment, in minor units.

    Returns:
        What became of the payment, and the balance after it.

    Raises:
        UnknownLoan: no collection and no ledger record for the loan.
        PaymentInvalid: the payment does not fit the loan; the message names the field.
        PaymentConflict: the payment id is recorded with another loan, amount or currency.
    """
    try:
        limits.check_id(loan_id)
    except limits.LimitError as problem:
        raise PaymentInvalid(f"loan_id: {problem}") from None
    check_payment(payment)
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    try:
        result = await handle.execute_update(LoanCollection.apply_payment, payment)
    except WorkflowUpdateFailedError as failure:
        raise PaymentInvalid(ledger.field_named(_refusal(failure))) from None
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        # No running collection: it never started, or it has ended. The ledger knows which.
        if pool is None:
            if _has_ended(error):
                raise PaymentInvalid(
                    f"loan_id: the collection of {loan_id} has ended, and the ledger is not"
                    " configured to record the payment in"
                ) from None
            raise UnknownLoan(loan_id) from None
        return await ledger.record_after_collection(pool, loan_id, payment)
    if result.duplicate and pool is not None:
        # The collection remembers the ids of applied payments, not their amounts: the ledger
        # tells a repeat from the same id reused with another amount or currency.
        await ledger.check_payment_id(pool, loan_id, payment)
    return result


def _has_ended(error: RPCError) -> bool:
    # Temporal answers NOT_FOUND both for a workflow that never ran and for one that has
    # completed; only its message tells them apart.
    return "completed" in error.message.lower()


# Every key of ``overdue status --json``, in order, for running and closed loans alike: a key
# that does not apply is null (docs/status.schema.json holds the shape, and a test holds the
# output to it).
STATUS_KEYS = (
    "loan_id",
    "workflow_id",
    "workflow_status",
    "stage",
    "resolved_in",
    "days_past_due",
    "outstanding_minor",
    "outstanding",
    "recovered_minor",
    "currency",
    "fees_minor",
    "fees",
    "total_outstanding_minor",
    "total_outstanding",
    "situation",
    "broken_promises",
    "jurisdiction",
    "timezone",
    "attempt_count",
    "last_outcome",
    "next_action",
    "collection_time",
    "ended_at",
    "applied_payment_ids",
    "promise",
    "arrangement",
    "days_paused",
    "hold",
    "refusals",
    # The ledger's record (null without one).
    "attempts",
    "payments",
    "promises",
    "notices",
    "complaint_cases",
    "outcomes",
    # Every case that waited on a person (the work queue), open or closed, oldest first, from
    # all the loan's collections.
    "cases",
    "outreach",
)
NO_NEXT_ACTION = {"kind": "none", "at_utc": None, "at_local": None, "detail": ""}


async def loan_status(client: Client, pool: asyncpg.Pool | None, loan_id: str) -> dict[str, Any]:
    """The loan's state (live from the workflow when it runs) and its full record from the ledger.

    One shape whatever the loan's state: every key of ``STATUS_KEYS``, null where it does not
    apply (a closed loan has no next contact or hold; a loan without a ledger record, no
    attempts).
    """
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    status = await _describe(handle)
    record = await ledger_record(pool, loan_id) if pool is not None else None
    if status is None and record is None:
        raise UnknownLoan(loan_id)
    view: dict[str, Any] = dict.fromkeys(STATUS_KEYS)
    view.update(loan_id=loan_id, workflow_id=workflow_id_for(loan_id))
    if status is not None:
        view["workflow_status"] = status.name.lower()
        if status == WorkflowExecutionStatus.RUNNING:
            live = status_view(await handle.query(LoanCollection.status))
            # The cases' ids: the ledger's record below has each case whole.
            live.pop("complaint_cases", None)
            view.update(live)
        elif status == WorkflowExecutionStatus.COMPLETED:
            summary = await handle.result()
            view.update(
                stage=summary.final_stage,
                resolved_in=summary.resolved_in,
                days_past_due=summary.days_past_due,
                outstanding_minor=summary.outstanding_minor,
                recovered_minor=summary.recovered_minor,
                currency=summary.currency,
                situation=summary.situation,
                outreach=summary.outreach,
                broken_promises=summary.broken_promises,
                attempt_count=summary.attempt_count,
                ended_at=_iso(summary.ended_at),
                next_action=dict(NO_NEXT_ACTION),
            )
    if record is not None:
        loan = record.pop("loan")
        for key in ("stage", "outstanding_minor", "currency", "jurisdiction"):
            if view[key] is None:
                view[key] = loan[key]
        view.update(record)
    if view["currency"] is not None and view["outstanding_minor"] is not None:
        view["outstanding"] = format_minor(view["outstanding_minor"], view["currency"])
    # The ledger's record replaces what the query carries of it (ids only); nothing else.
    return {key: view[key] for key in STATUS_KEYS}


def status_view(status: CollectionStatus) -> dict[str, Any]:
    """A running loan's status query as JSON: the keys of ``STATUS_KEYS`` it answers."""
    data = json.loads(json.dumps(asdict(status), default=_iso))
    # The ledger has every attempt and notice, with more detail.
    data.pop("recent_attempts", None)
    data.pop("notices", None)
    data["outstanding"] = format_minor(status.outstanding_minor, status.currency)
    data["fees"] = format_minor(status.fees_minor, status.currency)
    data["total_outstanding"] = (
        format_minor(status.total_outstanding_minor, status.currency)
        if status.total_outstanding_minor is not None
        else None
    )
    return data


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")
