"""A place held in the borrower's budget when the worker is killed is used or released once a
worker is back, and while none is, it lapses by itself instead of blocking the borrower's other
loans. A real worker process (``python worker.py``) on the dev server, killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from activities.budget import budget_history
from overdue.client import start_collection
from overdue.stack import EmbeddedStack
from tests.integration.support import daytime_zone, eventually, past_due_loan
from workflows import budget
from workflows.commands import BudgetTerms, ContactReservation
from workflows.types import workflow_id_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROOT = Path(__file__).resolve().parents[2]
# A collection day lasts five real minutes: the strategy's 90-minute gap is about 19 s, so the
# first call is planned well after the reminder, and is made within the test.
DAY_SECONDS = 300.0


@asynccontextmanager
async def worker_process(
    stack: EmbeddedStack, home: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERDUE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS=stack.temporal_address,
        DATABASE_URL=stack.database_url,
        OVERDUE_HOME=str(home),
        OVERDUE_METRICS_ADDRESS="off",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def held_call(pool: asyncpg.Pool, loan_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM contact_reservations"
        " WHERE loan_id = $1 AND status = 'held' AND channel = 'call'",
        loan_id,
    )


async def test_a_place_held_when_the_worker_is_killed_is_used_once_one_is_back(
    stack: EmbeddedStack, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    client = await Client.connect(stack.temporal_address)
    loan = past_due_loan(f"it-kill-{os.getpid()}-{id(tmp_path) % 10**6}", zone=daytime_zone())
    try:
        async with worker_process(stack, tmp_path) as first:
            assert await start_collection(client, loan, day_seconds=DAY_SECONDS) == "started"
            # A worker process of its own starts first (imports, connections): on a machine
            # whose cores other suites keep busy that alone can take half a minute.
            place = await eventually(
                lambda: held_call(pool, loan.loan_id), timeout=120, what="a call's place held"
            )
            first.send_signal(signal.SIGKILL)
            await first.wait()

        # No worker. Past its moment and grace, the place no longer counts: another loan of the
        # borrower asking then may take that very moment.
        request = ContactReservation(
            reservation_key=f"{loan.loan_id}-2:reservation:1",
            loan_id=f"{loan.loan_id}-2",
            borrower_id=loan.borrower.borrower_id,
            channel="call",
            target="borrower",
            target_id=loan.borrower.borrower_id,
            number=budget.number_key(loan.borrower.phone),
            at=place["at"],
            expires_at=place["expires_at"],
            now=place["expires_at"],
            terms=BudgetTerms("us", loan.borrower.timezone, 3, 90),
        )
        async with pool.acquire() as conn:
            until_lapsed = await budget_history(conn, replace(request, now=place["at"]))
            lapsed = await budget_history(conn, request)
        held = [a for a in until_lapsed.shared.attempts if a.outcome == budget.RESERVED]
        assert [a.at for a in held] == [place["at"]], "the place counts until it lapses"
        assert not [a for a in lapsed.shared.attempts if a.outcome == budget.RESERVED]

        # A worker is back: the loan wakes, checks its place again, and uses it.
        async with worker_process(stack, tmp_path):

            async def settled() -> str | None:
                status = await pool.fetchval(
                    "SELECT status FROM contact_reservations WHERE reservation_key = $1",
                    place["reservation_key"],
                )
                return status if status in ("used", "released") else None

            assert await eventually(settled, timeout=90, what="the place used or released")
            recorded = await pool.fetchval(
                "SELECT count(*) FROM contact_attempts WHERE reservation_key = $1",
                place["reservation_key"],
            )
            assert recorded <= 1
    finally:
        await client.get_workflow_handle(workflow_id_for(loan.loan_id)).terminate(
            reason="test finished"
        )
