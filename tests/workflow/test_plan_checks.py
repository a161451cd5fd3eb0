"""What the status shows of a plan, and what a late timer does to a planned call, on the
time-skipping server with the real activities.

Each test runs its own worker on a task queue of its own: one holds an activity back, to query
the loan while the workflow waits on it; the other stops, to let a timer fire while no worker
is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.situations import SituationActivities
from overdue.config import Config
from overdue.institutions import SimulatedDeathRegistry
from overdue.simulator import SimulatedCreditBureau
from overdue.worker import activities_for, simulated_provider, workflow_runner
from tests.unit.support import default_strategy
from tests.workflow.conftest import EXECUTION_TIMEOUT, Loans
from tests.workflow.support import Handle, poll_status, status_of, wait_for_audit
from workflows.collection import LoanCollection
from workflows.commands import SituationEvent
from workflows.types import CollectionInput, CollectionStatus, ContactOutcome, Loan, workflow_id_for
from workflows.vocabulary import Channel, Outcome, Situation, Target

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(90)]

BORROWER_CONTACTS = (Channel.SMS, Channel.CALL)
STRATEGY = default_strategy()


@contextlib.asynccontextmanager
async def own_worker(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    config: Config,
    queue: str,
    replace: dict[str, Callable[..., Any]] | None = None,
) -> AsyncIterator[Worker]:
    """The production worker's workflow and activities on ``queue``, some ``replace``d by name.

    No workflow is cached: a stopped worker leaves no sticky queue behind for its tasks."""
    provider = simulated_provider(env.client, config.simulation_seed, pool)
    activities = [
        (replace or {}).get(getattr(a, "__name__", ""), a)
        for a in activities_for(
            pool, provider, config.notices_dir, SimulatedCreditBureau(), SimulatedDeathRegistry()
        )
    ]
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[LoanCollection],
        activities=activities,
        workflow_runner=workflow_runner(),
        max_cached_workflows=0,
    ) as worker:
        yield worker


async def start_on(env: WorkflowEnvironment, loan: Loan, queue: str) -> Handle:
    return await env.client.start_workflow(
        LoanCollection.run,
        CollectionInput(loan=loan),
        id=workflow_id_for(loan.loan_id),
        task_queue=queue,
        execution_timeout=EXECUTION_TIMEOUT,
    )


def shows_borrower_contact(status: CollectionStatus) -> bool:
    return status.next_action.kind in BORROWER_CONTACTS or status.next_action.at_utc is not None


@pytest.mark.parametrize(
    ("facts", "situation", "event"),
    [
        ({"death_reported_by": "relative"}, Situation.DECEASED, "death_reported"),
        ({"cease": True}, Situation.CEASED, "cease_requested"),
        ({"dispute": True}, Situation.DISPUTE, "dispute_opened"),
    ],
    ids=["death", "cease", "dispute"],
)
async def test_status_never_shows_a_contact_the_new_situation_forbids(
    time_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    config: Config,
    facts: dict[str, object],
    situation: str,
    event: str,
) -> None:
    # The situation event's audit entry is held back: the workflow has applied the report and
    # waits on the ledger, and the status is queried meanwhile, as an operator might.
    queue = f"plan-checks-{uuid.uuid4().hex}"
    gate = asyncio.Event()
    factory = Loans(time_env)
    original = SituationActivities(pool, SimulatedCreditBureau()).record_situation_event

    @activity.defn(name="record_situation_event")
    async def held_back(entry: SituationEvent) -> None:
        if entry.action == event:
            await gate.wait()
        await original(entry)

    try:
        async with own_worker(time_env, pool, config, queue, {"record_situation_event": held_back}):
            loan = await factory.build()
            handle = await start_on(time_env, loan, queue)
            factory.started.append(handle.id)
            before = await poll_status(handle, lambda s: s.next_action.at_utc is not None)
            assert before.next_action.kind in BORROWER_CONTACTS

            sent = ContactOutcome(
                outcome_id=f"O-{uuid.uuid4().hex}",
                source="collector:test",
                at=await time_env.get_current_time(),
                # A relative answered the borrower's phone: no conversation with the borrower,
                # which would have dropped the plan on its own.
                right_party=False,
                **facts,  # type: ignore[arg-type]
            )
            await handle.signal(LoanCollection.contact_outcome, sent)
            during = await poll_status(handle, lambda s: s.situation == situation)
            assert not shows_borrower_contact(during), during.next_action

            gate.set()
            await wait_for_audit(pool, loan.loan_id, event, 1)
            after = await status_of(handle)
            assert not shows_borrower_contact(after), after.next_action
    finally:
        gate.set()
        await factory.cleanup()


def planned_after(moment: datetime) -> Callable[[CollectionStatus], bool]:
    def later(status: CollectionStatus) -> bool:
        at = status.next_action.at_utc
        return at is not None and at > moment

    return later


def planned_slot(status: CollectionStatus) -> str:
    """The slot a planned call names in its details (``purpose · slot slot``)."""
    return status.next_action.detail.split(" · ")[1].removesuffix(" slot")


DAY_SECONDS = 30.0  # a collection day in 30 real seconds: one real second is 48 minutes
RATE = 86_400 / DAY_SECONDS


def in_a_tried_slot(at: datetime, tried: set[str], zone: ZoneInfo) -> datetime:
    """Half an hour into the first tried slot of the next local day: in the contact window,
    out of the planned slot, and in a slot the rotation has tried already."""
    first = min((s for s in STRATEGY.slots if s.name in tried), key=lambda s: s.start_minute)
    minute = max(first.start_minute, 8 * 60) + 30
    day = at.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)


async def test_a_call_whose_timer_fires_out_of_its_slot_is_planned_again_into_an_untried_slot(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, config: Config
) -> None:
    # A compressed clock, as in the demo: the worker is down for some real seconds across the
    # planned call's moment, many collection hours; it comes back the next morning.
    queue = f"plan-checks-{uuid.uuid4().hex}"
    factory = Loans(time_env)
    loan = await factory.build()  # never answers, us, New York
    zone = ZoneInfo(loan.borrower.timezone)
    origin = await time_env.get_current_time()

    def real(collection: datetime) -> datetime:
        return origin + (collection - origin) / RATE

    try:
        async with own_worker(time_env, pool, config, queue):
            handle = await time_env.client.start_workflow(
                LoanCollection.run,
                CollectionInput(loan=loan, day_seconds=DAY_SECONDS, clock_origin=origin),
                id=workflow_id_for(loan.loan_id),
                task_queue=queue,
                execution_timeout=EXECUTION_TIMEOUT,
            )
            factory.started.append(handle.id)
            status = await poll_status(handle, lambda s: s.next_action.at_utc is not None)
            # Let the loan reach out until it has tried a slot and plans its next call.
            while not (
                status.next_action.kind == Channel.CALL
                and any(a.channel == Channel.CALL for a in status.recent_attempts)
            ):
                planned_at = status.next_action.at_utc
                assert planned_at is not None, status.next_action
                now = await time_env.get_current_time()
                await time_env.sleep(max(real(planned_at) - now, timedelta(0)))
                status = await poll_status(handle, planned_after(planned_at))
            slot, planned_at = planned_slot(status), status.next_action.at_utc
            assert planned_at is not None
            # Up to two real seconds before the call, then the worker stops.
            ahead = real(planned_at) - await time_env.get_current_time()
            if ahead > timedelta(seconds=2):
                await time_env.sleep(ahead - timedelta(seconds=2))
        tried = {
            a.slot
            for a in status.recent_attempts
            if a.channel == Channel.CALL and a.target == Target.BORROWER
        }
        late = in_a_tried_slot(planned_at, tried, zone)
        # Time flows in real time while nothing skips it: the call's timer fires meanwhile.
        wait = real(late) - await time_env.get_current_time()
        await asyncio.sleep(wait.total_seconds())
        async with own_worker(time_env, pool, config, queue):
            again = await poll_status(handle, planned_after(late))
        calls = [
            a
            for a in again.recent_attempts
            if a.channel == Channel.CALL and a.target == Target.BORROWER and a.at >= planned_at
        ]
        assert calls == [] or calls[0].slot not in tried, (
            f"planned {slot} at {planned_at}, called in {calls[0].slot} at {calls[0].at};"
            f" tried {sorted(tried)}"
        )
        assert not calls or calls[0].at > late
        assert all(a.outcome != Outcome.ANSWERED for a in again.recent_attempts)
    finally:
        await factory.cleanup()
