"""`overdue pay` through the payment outbox, as the HTTP API pays: a payment Temporal or the
worker cannot take now is kept, and applied once they are back; a payment id reused with other
details is refused in the API's words, and audited.

The dev server and PostgreSQL are real; this module runs its own production worker, stopped
and started again, so that no worker polls the task queue while it is down.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from overdue.cli.payments import QUEUED_EXIT
from overdue.config import Config
from overdue.ledger import PaymentConflict
from overdue.outbox import Outbox
from overdue.stack import EmbeddedStack, free_port
from overdue.worker import build_worker
from tests.integration.support import (
    Cli,
    Loans,
    eventually,
    past_due_loan,
    start_until_opened,
    terminate_collections,
)
from workflows.collection import LoanCollection
from workflows.types import workflow_id_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pay_cli(stack: EmbeddedStack, overdue_home: Path) -> Cli:
    """The CLI against the stack; no worker comes with it."""
    env = {k: v for k, v in os.environ.items() if k not in ("OVERDUE_DEBUG", "TEMPORAL_NAMESPACE")}
    env.update(
        TEMPORAL_ADDRESS=stack.temporal_address,
        DATABASE_URL=stack.database_url,
        OVERDUE_HOME=str(overdue_home),
    )
    return Cli(env)


async def _outbox_row(pool: asyncpg.Pool, payment_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM payment_outbox WHERE payment_id = $1", payment_id)


async def test_with_the_worker_down_pay_keeps_the_payment_until_it_is_applied(
    client: Client, pool: asyncpg.Pool, config: Config, loans: Loans, pay_cli: Cli
) -> None:
    loan_id = loans.new_id(f"paydown-{uuid.uuid4().hex[:6]}")
    async with build_worker(client, pool, config):
        await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))
    payment_id = f"PAY-{uuid.uuid4().hex[:10]}"
    try:
        # No worker polls the task queue: the update waits, the command does not.
        queued = await pay_cli("pay", loan_id, "80.00", "--payment-id", payment_id, "--json")
        assert queued.code == QUEUED_EXIT, queued
        answer = queued.json()
        assert (answer["status"], answer["payment_id"], answer["attempts"]) == (
            "queued",
            payment_id,
            1,
        )
        assert "Timeout" in answer["last_error"]
        row = await _outbox_row(pool, payment_id)
        assert row is not None
        assert (row["status"], row["loan_id"], row["amount_minor"]) == ("pending", loan_id, 8_000)
        assert not await pool.fetchval(
            "SELECT count(*) FROM payments WHERE payment_id = $1", payment_id
        )

        # Said in words too, with the id; a repeat is the same stored payment.
        again = await pay_cli("pay", loan_id, "80.00", "--payment-id", payment_id)
        assert again.code == QUEUED_EXIT, again
        assert f"payment {payment_id} kept in the outbox for delivery to {loan_id}" in again.stdout
        assert "relay of `overdue up` or `overdue api`" in again.stderr

        # Another amount under the queued id: refused in the API's 409 words, and audited.
        for _ in range(2):
            conflict = await pay_cli("pay", loan_id, "81.00", "--payment-id", payment_id)
            assert (
                conflict.assert_user_error("payment_id") == f"error: {PaymentConflict(payment_id)}"
            )
        refused = await pool.fetch(
            "SELECT actor, details FROM audit_log WHERE loan_id = $1"
            " AND action = 'payment_conflict'",
            loan_id,
        )
        assert len(refused) == 1, "one entry, however often the refusal is repeated"
        assert refused[0]["actor"] == "payment:cli"
        assert json.loads(refused[0]["details"])["amount_minor"] == 8_100

        # The worker is back, and so is a relay (as `overdue up` and `overdue api` run one).
        async with build_worker(client, pool, config):
            stop = asyncio.Event()

            async def provide() -> Client:
                return client

            relay = asyncio.create_task(Outbox(pool, provide).relay(stop, idle=0.1))

            async def delivered() -> bool:
                row = await _outbox_row(pool, payment_id)
                return row is not None and row["status"] == "delivered"

            try:
                await eventually(delivered, what="the relay applying the kept payment")
            finally:
                stop.set()
                await relay
            handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
            status = await handle.query(LoanCollection.status)
            assert (status.outstanding_minor, status.applied_payment_ids) == (42_000, [payment_id])

            shown = await pay_cli("pay", loan_id, "80.00", "--payment-id", payment_id, "--json")
            assert shown.code == 0, shown
            assert (shown.json()["status"], shown.json()["duplicate"]) == ("applied", True)
            assert shown.json()["outstanding_minor"] == 42_000
        assert (
            await pool.fetchval("SELECT count(*) FROM payments WHERE payment_id = $1", payment_id)
            == 1
        )
    finally:
        await terminate_collections(client, [loan_id])


async def test_with_temporal_down_pay_keeps_the_payment(
    client: Client, pool: asyncpg.Pool, config: Config, loans: Loans, pay_cli: Cli
) -> None:
    loan_id = loans.new_id(f"paynotemporal-{uuid.uuid4().hex[:6]}")
    async with build_worker(client, pool, config):
        await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))
    try:
        down = Cli({**pay_cli.env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
        payment_id = f"PAY-{uuid.uuid4().hex[:10]}"
        for extra in ((), ("--signal",)):
            kept = await down("pay", loan_id, "5.00", "--payment-id", payment_id, *extra, "--json")
            assert kept.code == QUEUED_EXIT, kept
            assert kept.json()["status"] == "queued"
        row = await _outbox_row(pool, payment_id)
        assert row is not None and row["status"] == "pending"
        # A loan the ledger does not hold cannot be confirmed while Temporal is down: nothing
        # is stored, and the command says why.
        unknown = await down("pay", "NOT-YET-OPENED", "5.00", "--payment-id", f"{payment_id}-x")
        assert "Temporal, which could confirm it, is unreachable" in unknown.assert_user_error(
            "loan_id"
        )
        assert await _outbox_row(pool, f"{payment_id}-x") is None
    finally:
        await terminate_collections(client, [loan_id])
