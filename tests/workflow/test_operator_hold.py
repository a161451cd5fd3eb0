"""Operations pause and resume one loan, on the time-skipping server with the real worker."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import (
    advance_to_dpd,
    audit,
    collecting,
    follow,
    pay,
    poll_status,
    settled_by,
    wait_for_audit,
)
from tests.workflow.test_situations import attempts_between
from workflows.collection import LoanCollection
from workflows.types import HoldRequest
from workflows.vocabulary import Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


async def test_a_hold_stops_outreach_and_escalation_until_resumed(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    paused_at = await time_env.get_current_time()

    status = await handle.execute_update(
        LoanCollection.pause_collection,
        HoldRequest(reason="customer called the branch", operator="ops:ann"),
    )
    assert status.hold is not None
    assert (status.hold.operator, status.hold.reason) == ("ops:ann", "customer called the branch")
    assert status.next_action.kind == "on_hold"
    assert status.next_action.at_utc is None

    # Ten days on hold: past the middle boundary by the calendar, yet nothing goes out and the
    # stage stays; a payment is still taken.
    await advance_to_dpd(time_env, loan, 11)
    await pay(time_env, handle, 1_000)
    status = await poll_status(
        handle, lambda s: s.outstanding_minor == 49_000 and s.days_past_due == 11
    )
    assert status.stage == Stage.EARLY
    resumed_at = await time_env.get_current_time()
    calls = await attempts_between(pool, loan.loan_id, paused_at, resumed_at, ("call", "sms"))
    assert calls == 0

    await handle.signal(LoanCollection.resume, HoldRequest(operator="ops:bo"))
    status = await poll_status(
        handle, lambda s: s.hold is None and s.next_action.at_utc is not None
    )
    assert status.stage == Stage.EARLY
    assert status.days_paused >= 9
    # The days on hold do not count: the middle boundary (DPD 6) comes ten days later.
    moment = await advance_to_dpd(time_env, loan, 14)
    status = await poll_status(follow(time_env, loan), settled_by(moment))
    assert status.stage == Stage.EARLY
    await advance_to_dpd(time_env, loan, 17)
    await poll_status(follow(time_env, loan), lambda s: s.stage == Stage.MIDDLE)

    paused = await audit(pool, loan.loan_id, "collection_paused")
    resumed = await audit(pool, loan.loan_id, "collection_resumed")
    assert [e["operator"] for e in paused + resumed] == ["ops:ann", "ops:bo"]


async def test_a_pause_must_say_why_and_a_second_one_says_it_changed_nothing(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(LoanCollection.pause_collection, HoldRequest(reason=" "))
    assert isinstance(refused.value.cause, ApplicationError)
    assert "reason" in refused.value.cause.message

    request = HoldRequest(reason="fraud check", request_id=f"H-{uuid.uuid4().hex}")
    first = await handle.execute_update(LoanCollection.pause_collection, request)
    again = await handle.execute_update(LoanCollection.pause_collection, request)
    assert first.hold == again.hold
    assert first.hold is not None
    # Another pause is told whose pause holds the loan, and why, instead of seeming to take.
    with pytest.raises(WorkflowUpdateFailedError) as unchanged_pause:
        await handle.execute_update(
            LoanCollection.pause_collection, HoldRequest(reason="second look", operator="ops:bo")
        )
    assert isinstance(unchanged_pause.value.cause, ApplicationError)
    message = unchanged_pause.value.cause.message
    assert message.startswith("loan: already paused by operations since ")
    assert "(fraud check); this pause changes nothing" in message
    assert (await handle.query(LoanCollection.status)).hold == first.hold
    assert len(await wait_for_audit(pool, loan.loan_id, "collection_paused", 1)) == 1

    running = await handle.execute_update(LoanCollection.resume_collection, HoldRequest())
    assert running.hold is None
    assert running.next_action.kind != "on_hold"
    unchanged = await handle.execute_update(LoanCollection.resume_collection, HoldRequest())
    assert unchanged.hold is None
    assert len(await audit(pool, loan.loan_id, "collection_resumed")) == 1
