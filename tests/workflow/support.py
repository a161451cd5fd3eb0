"""Helpers shared by the workflow tests: following a loan, waiting on it, reading the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from temporalio.api.common.v1 import SearchAttributes, WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState, WorkflowExecutionStatus
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import TypedSearchAttributes
from temporalio.converter import decode_typed_search_attributes
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from workflows import clock
from workflows.collection import LoanCollection
from workflows.types import (
    CollectionStatus,
    CollectionSummary,
    Loan,
    PaymentReceived,
    workflow_id_for,
)
from workflows.vocabulary import Stage

Handle = WorkflowHandle[LoanCollection, CollectionSummary]
T = TypeVar("T")
BANDS = {Stage.MIDDLE: 6, Stage.LATE: 19, Stage.LEGAL: 29}
# How long a test waits, in real time, for a state it expects: generous, for loaded machines. A
# wait returns as soon as the state is there; only a test that fails waits this long.
DEADLINE = 45.0
POLL = 0.05
SKIP_TIMEOUT = timedelta(minutes=2)  # one skip of the shared clock, in real time
SKIP_ATTEMPTS = 3


def follow(env: WorkflowEnvironment, loan: Loan) -> Handle:
    """A handle without a run id: it follows the continue-as-new chain to the current run."""
    return env.client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan.loan_id))


async def status_of(handle: Handle) -> CollectionStatus:
    """The status query, retried while a fresh run has not finished its first task (and through
    a transport error of a loaded server)."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        try:
            return await handle.query(LoanCollection.status)
        except (WorkflowQueryFailedError, RPCError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(POLL)


async def poll_status(
    handle: Handle, predicate: Callable[[CollectionStatus], bool], *, seconds: float = DEADLINE
) -> CollectionStatus:
    """Wait in real time (the workflow clock stands still) until the status satisfies ``predicate``.

    A status is read between the workflow's steps: wait for every part of the state a test
    asserts on, not for the first sign of a change.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    status = await status_of(handle)
    while not predicate(status):
        assert loop.time() < deadline, f"status never matched in {seconds} s: {status}"
        await asyncio.sleep(POLL)
        status = await status_of(handle)
    return status


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, seconds: float = DEADLINE, what: str = "state"
) -> T:
    """Poll ``probe`` until it returns something truthy, for at most ``seconds`` of real time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        found = await probe()
        if found:
            return found
        assert loop.time() < deadline, f"{what} not reached in {seconds} s (last: {found!r})"
        await asyncio.sleep(POLL)


async def current_time(env: WorkflowEnvironment) -> datetime:
    """The shared clock, read again after a transport error of a loaded test server."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        try:
            return await env.get_current_time()
        except RPCError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(POLL)


async def collecting(handle: Handle) -> CollectionStatus:
    """Wait until the loan is opened in the ledger and its (first) outreach is planned.

    Before that the status query answers from the workflow input (stage early, nothing planned).
    """
    return await poll_status(handle, lambda s: s.next_action.at_utc is not None)


async def advance_to_dpd(env: WorkflowEnvironment, loan: Loan, dpd: int) -> datetime:
    """Skip time to one hour after the borrower-local midnight at which the loan is ``dpd`` DPD,
    and return that moment."""
    target = clock.day_starts(loan.due_date, dpd, ZoneInfo(loan.borrower.timezone)) + timedelta(
        hours=1
    )
    await advance_to(env, target)
    return target


def settled_by(moment: datetime) -> Callable[[CollectionStatus], bool]:
    """A ``poll_status`` predicate: the loan did everything it planned before ``moment``.

    A loan wakes only to act (a contact, a deadline, a stage boundary, a message), so its days
    past due are those of its last wake; what shows it is up to date is that nothing it
    planned is due before ``moment``.
    """

    def settled(status: CollectionStatus) -> bool:
        upcoming = status.next_action.at_utc
        return status.collection_time >= moment or upcoming is None or upcoming > moment

    return settled


async def advance_to(env: WorkflowEnvironment, target: datetime) -> None:
    """Skip the shared clock to ``target``.

    The server skips time only while no activity runs, so a skip of days takes real seconds,
    many on a loaded machine: longer than the client's default deadline for a call (30 s),
    after which the SDK's ``env.sleep`` fails with "Timeout expired". The skip is asked for with
    a deadline of minutes instead; and one that failed anyway may or may not have moved the
    clock, so the clock is read again and only the rest is skipped, never more.
    """
    now = await current_time(env)
    for _ in range(SKIP_ATTEMPTS):
        if now >= target:
            return
        request = SleepRequest()
        request.duration.FromTimedelta(target - now)
        with contextlib.suppress(RPCError):
            await env.client.test_service.unlock_time_skipping_with_sleep(
                request, timeout=SKIP_TIMEOUT
            )
        now = await current_time(env)
    assert now >= target, (
        f"the shared clock stands at {now}, short of {target}: stuck (was a workflow terminated"
        " while one of its activities ran?)"
    )


async def clock_moves(env: WorkflowEnvironment) -> bool:
    """Whether the shared clock can still be skipped (by a millisecond, within seconds)."""
    request = SleepRequest()
    request.duration.FromTimedelta(timedelta(milliseconds=1))
    try:
        await env.client.test_service.unlock_time_skipping_with_sleep(
            request, timeout=timedelta(seconds=15)
        )
    except RPCError:
        return False
    return True


async def terminate_when_idle(env: WorkflowEnvironment, workflow_id: str, reason: str) -> None:
    """Terminate a collection once none of its activities is running.

    The Java time-skipping server holds its clock while an activity runs, and never lets go
    when the workflow is terminated meanwhile: the shared clock stops for good, and every later
    skip in the session hangs. So wait (briefly) for the running activities to end first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    request = DescribeWorkflowExecutionRequest(
        namespace=env.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    while loop.time() < deadline:
        try:
            described = await env.client.workflow_service.describe_workflow_execution(request)
        except RPCError:
            return  # never started
        info = described.workflow_execution_info
        if info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING:
            return
        started = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        if all(a.state != started for a in described.pending_activities):
            break
        await asyncio.sleep(POLL)
    with contextlib.suppress(RPCError):  # closed meanwhile
        await env.client.get_workflow_handle(workflow_id).terminate(reason=reason)


async def advance_to_local(env: WorkflowEnvironment, zone: str, hour: int) -> datetime:
    """Skip the shared clock to the next ``hour``:00 in ``zone``: a fixed time of day for a test
    whose story depends on it, whatever the hour the suite runs at."""
    local = (await current_time(env)).astimezone(ZoneInfo(zone))
    target = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if target <= local:
        target = (target + timedelta(days=1)).replace(hour=hour)
    await advance_to(env, target)
    return target


async def reach_stage(env: WorkflowEnvironment, loan: Loan, stage: str) -> CollectionStatus:
    """Run the loan's collection until it stands in ``stage`` and return its status there."""
    handle = follow(env, loan)
    status = await collecting(handle)
    if stage in BANDS:
        await advance_to_dpd(env, loan, BANDS[stage])
        status = await poll_status(handle, lambda s: s.stage == stage)
    return status


def payment(
    amount_minor: int, at: datetime, *, currency: str = "USD", payment_id: str | None = None
) -> PaymentReceived:
    return PaymentReceived(
        payment_id=payment_id or f"P-{uuid.uuid4().hex}",
        amount_minor=amount_minor,
        currency=currency,
        paid_at=at,
        source="test",
    )


async def pay(
    env: WorkflowEnvironment, handle: Handle, amount_minor: int, **options: Any
) -> PaymentReceived:
    received = payment(amount_minor, await current_time(env), **options)
    await handle.signal(LoanCollection.payment_received, received)
    return received


async def wait_for_audit(
    pool: asyncpg.Pool, loan_id: str, action: str, count: int
) -> list[dict[str, Any]]:
    """The loan's audit details for ``action``, once at least ``count`` entries are there."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        rows = await audit(pool, loan_id, action)
        if len(rows) >= count:
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {count} {action} entries for {loan_id}, got {rows}")
        await asyncio.sleep(POLL)


async def audit(pool: asyncpg.Pool, loan_id: str, action: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT details FROM audit_log WHERE loan_id = $1 AND action = $2 ORDER BY seq",
        loan_id,
        action,
    )
    return [json.loads(r["details"]) for r in rows]


async def loan_row(pool: asyncpg.Pool, loan_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM loans WHERE loan_id = $1", loan_id)
    assert row is not None
    return row


async def payment_rows(pool: asyncpg.Pool, loan_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM payments WHERE loan_id = $1 ORDER BY recorded_at", loan_id
    )


async def run_ids(env: WorkflowEnvironment, loan: Loan, first_run_id: str) -> list[str]:
    """Every run of the chain, first to current, read from each run's last history event."""
    ids = [first_run_id]
    while True:
        history = await env.client.get_workflow_handle(
            workflow_id_for(loan.loan_id), run_id=ids[-1]
        ).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return ids
        ids.append(last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id)


async def stored_search_attributes(env: WorkflowEnvironment, loan: Loan) -> TypedSearchAttributes:
    """The current run's search attributes, read without ``describe()``'s decoding.

    The Java time-skipping server keeps an unset attribute as a null payload (``binary/null``)
    instead of removing it. The SDK's ``describe()`` then fails on an unset Datetime
    (``NextContactAt`` once nothing is planned). A real server removes the key; drop it here too.
    """
    raw = await env.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=env.client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(loan.loan_id)),
        )
    )
    kept = SearchAttributes()
    for name, value in raw.workflow_execution_info.search_attributes.indexed_fields.items():
        if value.metadata.get("encoding") != b"binary/null":
            kept.indexed_fields[name].CopyFrom(value)
    return decode_typed_search_attributes(kept)
