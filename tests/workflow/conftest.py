"""Fixtures for workflow tests: the real worker on the time-skipping server, and a loan factory.

All workflows in one time-skipping environment share one clock, and time moves only while a test
awaits a result or sleeps. Each test therefore builds its own loan with a due date relative to the
environment's current time, and anything it leaves running is terminated when it ends, so that no
test depends on another one's timing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from overdue.config import Config
from overdue.worker import build_worker
from tests.phones import unique_phone
from tests.workflow.support import advance_to, current_time, terminate_when_idle
from workflows.collection import LoanCollection
from workflows.types import (
    TASK_QUEUE,
    Borrower,
    CollectionInput,
    CollectionSummary,
    Contact,
    Loan,
    workflow_id_for,
)

# Longer than any collection can last (legal ends in referral at about DPD 39), so a workflow that
# never ends fails its test at once (time skips to the timeout) instead of hanging it.
EXECUTION_TIMEOUT = timedelta(days=60)


@pytest_asyncio.fixture(loop_scope="session")
async def worker(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, config: Config
) -> AsyncIterator[Worker]:
    """The production worker (real activities, simulated borrowers) for the test, on the test's
    environment (a new one if the last server died or its clock stopped)."""
    async with build_worker(time_env.client, pool, config) as running:
        yield running


@dataclass
class Loans:
    """Builds unique loans and starts their collections; ends what is left when the test ends."""

    env: WorkflowEnvironment
    started: list[str] = field(default_factory=list)

    async def build(
        self,
        *,
        persona: str = "never_answers",
        timezone: str = "America/New_York",
        jurisdiction: str = "us",
        currency: str = "USD",
        outstanding_minor: int = 50_000,
    ) -> Loan:
        """A fresh loan, due on the borrower's yesterday by the environment's clock (DPD 1 at any
        hour), with 2 references."""
        loan_id = f"L-{uuid.uuid4().hex}"
        now = await self.env.get_current_time()
        yesterday = now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)
        return Loan(
            loan_id=loan_id,
            borrower=Borrower(f"{persona}-{loan_id}", "Ann Lee", unique_phone(), timezone),
            product="personal",
            principal_minor=outstanding_minor * 2,
            outstanding_minor=outstanding_minor,
            currency=currency,
            due_date=yesterday.isoformat(),
            jurisdiction=jurisdiction,
            contacts=[
                Contact(f"{loan_id}-c1", "Bo Chen", unique_phone(), "sibling"),
                Contact(f"{loan_id}-c2", "Cy Diaz", unique_phone(), "workplace"),
            ],
        )

    async def start(self, loan: Loan) -> WorkflowHandle[LoanCollection, CollectionSummary]:
        handle = await self.env.client.start_workflow(
            LoanCollection.run,
            CollectionInput(loan=loan),
            id=workflow_id_for(loan.loan_id),
            task_queue=TASK_QUEUE,
            execution_timeout=EXECUTION_TIMEOUT,
        )
        self.started.append(handle.id)
        return handle

    async def start_new(
        self, **options: Any
    ) -> tuple[Loan, WorkflowHandle[LoanCollection, CollectionSummary]]:
        loan = await self.build(**options)
        return loan, await self.start(loan)

    async def cleanup(self) -> None:
        for workflow_id in self.started:
            await terminate_when_idle(self.env, workflow_id, "test finished")


async def skip_to_time_of_day(env: WorkflowEnvironment, setting: str) -> None:
    """Move the shared clock forward to the next ``HH:MM`` UTC (``OVERDUE_TEST_CLOCK``)."""
    hour, minute = (int(part) for part in setting.split(":"))
    now = await current_time(env)
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    await advance_to(env, target)


@pytest_asyncio.fixture(loop_scope="session")
async def loans(time_env: WorkflowEnvironment, worker: Worker) -> AsyncIterator[Loans]:
    """The test's loan factory. With ``OVERDUE_TEST_CLOCK=HH:MM`` every test starts at that UTC
    time of day on the shared clock (e.g. ``00:20``, ``23:59``), to run the tests at awkward hours."""
    if setting := os.environ.get("OVERDUE_TEST_CLOCK"):
        await skip_to_time_of_day(time_env, setting)
    factory = Loans(time_env)
    yield factory
    await factory.cleanup()
