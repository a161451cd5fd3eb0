"""What the status shows of a plan, on the time-skipping server with the real activities.

Each test runs its own worker on a task queue of its own, which holds the situation's audit write
back, to query the loan while the workflow waits on it. (What a late timer does to a planned call
is the rotation's rule, ``rotation.slot_still_fits``: tests/unit/test_plan_checks.py and a
property in tests/unit/test_planner_properties.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

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
from workflows.vocabulary import Channel, SituationState

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(90)]

BORROWER_CONTACTS = (Channel.SMS, Channel.CALL)
TASK_TIMEOUT = timedelta(seconds=2)
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
        # The held audit write is a local activity: its workflow task stays open until the SDK
        # heartbeats it at 80% of this timeout, and a query waits for that. Two seconds, not the
        # default ten, answers the test's queries in about two.
        task_timeout=TASK_TIMEOUT,
    )


def shows_borrower_contact(status: CollectionStatus) -> bool:
    return status.next_action.kind in BORROWER_CONTACTS or status.next_action.at_utc is not None


@pytest.mark.parametrize(
    ("facts", "situation", "event"),
    [
        ({"death_reported_by": "relative"}, SituationState.DECEASED_REPORTED, "death_reported"),
        ({"cease": True}, SituationState.CEASED, "cease_requested"),
        ({"dispute": True}, SituationState.DISPUTED, "dispute_opened"),
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
