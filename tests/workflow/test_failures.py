"""An activity that gives up never sticks a loan, and never fails it; a signal outside the
limits is refused whole.

On the time-skipping server with the real activities and PostgreSQL. A report whose ledger write
is refused holds the loan for a person with the reason, and is set aside; a contact the provider
cannot make within its limit counts as a failed attempt, and collection goes on; a loan the
ledger refuses to open (a NUL, which PostgreSQL text cannot hold) ends its start with the reason;
a report with a NUL, sent straight to the signal as a careless source might, is refused and
audited, and collection goes on.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.errors import LEDGER_REFUSED
from overdue.config import Config
from tests.workflow.conftest import Loans
from tests.workflow.support import (
    Handle,
    advance_to,
    collecting,
    poll_status,
    status_of,
    stored_search_attributes,
    wait_for_audit,
)
from tests.workflow.test_plan_checks import own_worker, start_on
from workflows import search_attributes as sa
from workflows.collection import LoanCollection
from workflows.commands import ContactRequest, ContactResult, OutcomeRecord
from workflows.types import ContactOutcome, HoldRequest, Loan
from workflows.vocabulary import Outcome

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_a_report_the_ledger_refuses_holds_the_loan_for_a_person(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, config: Config
) -> None:
    queue = f"failures-{uuid.uuid4().hex}"
    loans = Loans(time_env)
    loan = await loans.build()

    @activity.defn(name="record_contact_outcome")
    async def ledger_refuses(record: OutcomeRecord) -> None:
        # What ``activities.errors.PermanentErrors`` makes of a constraint the data breaks.
        raise ApplicationError(
            "record_contact_outcome: the ledger refused the data: CheckViolationError",
            type=LEDGER_REFUSED,
            non_retryable=True,
        )

    async with own_worker(
        time_env, pool, config, queue, replace={"record_contact_outcome": ledger_refuses}
    ):
        handle = await start_on(time_env, loan, queue)
        loans.started.append(handle.id)
        try:
            await _held_then_resumed(time_env, pool, loan, handle)
        finally:
            await loans.cleanup()


async def _held_then_resumed(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loan: Loan, handle: Handle
) -> None:
    await collecting(handle)
    refused = ContactOutcome(
        outcome_id=f"O-{uuid.uuid4().hex}",
        source="dialer:east-1",
        at=await time_env.get_current_time(),
        note="called back",
    )
    await handle.signal(LoanCollection.contact_outcome, refused)

    status = await poll_status(handle, lambda s: s.hold is not None)
    assert status.hold is not None
    assert status.hold.operator == "overdue"
    assert f"outcome {refused.outcome_id} not applied" in status.hold.reason
    assert "record_contact_outcome" in status.hold.reason
    assert LEDGER_REFUSED in status.hold.reason
    assert status.next_action.at_utc is None  # held: nothing is planned
    [entry] = await wait_for_audit(pool, loan.loan_id, "collection_paused", 1)
    assert entry["operator"] == "overdue"
    attributes = await stored_search_attributes(time_env, loan)
    assert attributes.get(sa.WAITING_FOR) == "operations"

    # The same report again is recognised and ignored; a person resumes the loan.
    await handle.signal(LoanCollection.contact_outcome, refused)
    await handle.signal(LoanCollection.resume, HoldRequest(operator="ops:ann"))
    status = await poll_status(
        handle, lambda s: s.hold is None and s.next_action.at_utc is not None
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM contact_outcomes WHERE outcome_id = $1", refused.outcome_id
        )
        == 0
    )
    await wait_for_audit(pool, loan.loan_id, "collection_resumed", 1)
    assert (await handle.describe()).status is not None  # still running, not failed
    attributes = await stored_search_attributes(time_env, loan)
    assert attributes.get(sa.WAITING_FOR) is None


async def test_a_signal_outside_the_limits_is_refused_and_audited(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    garbage = ContactOutcome(
        outcome_id=f"O-{uuid.uuid4().hex}",
        source="dialer:east-1",
        at=await time_env.get_current_time(),
        note="called back\x00",
    )
    await handle.signal(LoanCollection.contact_outcome, garbage)
    [entry] = await wait_for_audit(pool, loan.loan_id, "message_refused", 1)
    assert entry["problem"].startswith("contact_outcome: note: holds the control character U+0000")
    status = await status_of(handle)
    assert status.hold is None
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM contact_outcomes WHERE outcome_id = $1", garbage.outcome_id
        )
        == 0
    )
    attributes = await stored_search_attributes(time_env, loan)
    assert attributes.get(sa.WAITING_FOR) is None


async def test_a_contact_the_provider_cannot_make_counts_as_failed(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, config: Config
) -> None:
    queue = f"failures-{uuid.uuid4().hex}"
    factory = Loans(time_env)
    loan = await factory.build()

    @activity.defn(name="send_sms")
    async def provider_down(request: ContactRequest) -> ContactResult:
        raise ApplicationError("the SMS gateway refused the request", non_retryable=True)

    @activity.defn(name="place_call")
    async def provider_down_too(request: ContactRequest) -> ContactResult:
        raise ApplicationError("the dialer refused the request", non_retryable=True)

    async with own_worker(
        time_env,
        pool,
        config,
        queue,
        replace={"send_sms": provider_down, "place_call": provider_down_too},
    ):
        handle = await start_on(time_env, loan, queue)
        factory.started.append(handle.id)
        try:
            planned = await poll_status(handle, lambda s: s.next_action.at_utc is not None)
            assert planned.next_action.at_utc is not None
            await advance_to(time_env, planned.next_action.at_utc + timedelta(minutes=1))
            status = await poll_status(
                handle,
                lambda s: any(a.outcome == Outcome.FAILED for a in s.recent_attempts),
            )
            assert status.hold is None  # collection goes on
            [entry] = (await wait_for_audit(pool, loan.loan_id, "contact_failed", 1))[:1]
            assert "refused the request" in entry["reason"]
            assert (
                await pool.fetchval(
                    "SELECT count(*) FROM contact_attempts WHERE loan_id = $1", loan.loan_id
                )
                == 0
            )
        finally:
            await factory.cleanup()


async def test_a_loan_the_ledger_cannot_open_ends_the_start_with_the_reason(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan = await loans.build()
    loan = replace(loan, borrower=replace(loan.borrower, name="Ann\x00Lee"))
    handle = await loans.start(loan)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "open_loan: the ledger refused the data" in str(failed.value.cause)
    # Nothing half-written: no loan, no borrower, no audit entry.
    assert await pool.fetchval("SELECT count(*) FROM loans WHERE loan_id = $1", loan.loan_id) == 0
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM borrowers WHERE borrower_id = $1", loan.borrower.borrower_id
        )
        == 0
    )
