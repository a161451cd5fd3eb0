"""The payment services' API, ``record_payment``, against the dev server and PostgreSQL.

Updates cannot run on the time-skipping server (sdk-java#1903), so these run on the dev server.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistoryEventFilterType
from temporalio.worker import Worker

from overdue.client import PaymentInvalid, UnknownLoan, record_payment
from tests.integration.support import Loans, past_due_loan, start_until_opened
from workflows.collection import LoanCollection
from workflows.types import PaymentReceived, workflow_id_for

pytestmark = pytest.mark.integration


async def _start_loan(client: Client, pool: asyncpg.Pool, loans: Loans) -> str:
    loan_id = loans.new_id(f"api-{uuid.uuid4().hex[:10]}")
    return await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))


def _payment(
    amount_minor: int, payment_id: str | None = None, currency: str = "USD"
) -> PaymentReceived:
    return PaymentReceived(
        payment_id=payment_id or f"PAY-{uuid.uuid4().hex[:10]}",
        amount_minor=amount_minor,
        currency=currency,
        paid_at=datetime.now(UTC),
        source="bank",
    )


async def test_running_collection_answers_with_the_new_balance(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans)
    part = _payment(20_000)

    applied = await record_payment(client, pool, loan_id, part)
    assert (applied.applied, applied.duplicate, applied.outstanding_minor) == (True, False, 30_000)
    again = await record_payment(client, pool, loan_id, part)
    assert (again.applied, again.duplicate, again.outstanding_minor) == (False, True, 30_000)

    with pytest.raises(PaymentInvalid, match="currency"):
        await record_payment(client, pool, loan_id, _payment(1_000, currency="EUR"))
    with pytest.raises(PaymentInvalid, match="amount_minor"):
        await record_payment(client, pool, loan_id, _payment(-5))
    # The validator refused both before anything reached the history.
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    accepted = [
        event
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.ALL_EVENT
        )
        if event.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 2

    cured = await record_payment(client, pool, loan_id, _payment(30_000))
    assert (cured.applied, cured.outstanding_minor, cured.stage) == (True, 0, "cured")
    summary = await client.get_workflow_handle_for(
        LoanCollection.run, workflow_id_for(loan_id)
    ).result()
    assert summary.final_stage == "cured"
    rows = await pool.fetch("SELECT amount_minor FROM payments WHERE loan_id = $1", loan_id)
    assert sorted(r["amount_minor"] for r in rows) == [20_000, 30_000]


async def test_after_the_collection_the_ledger_keeps_an_overpayment_as_credit(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans)
    await record_payment(client, pool, loan_id, _payment(50_000))
    await client.get_workflow_handle(workflow_id_for(loan_id)).result()

    late = _payment(7_500)
    result = await record_payment(client, pool, loan_id, late)
    assert (result.applied, result.outstanding_minor, result.stage) == (True, 0, "cured")
    row = await pool.fetchrow("SELECT * FROM payments WHERE payment_id = $1", late.payment_id)
    assert (row["overpaid_minor"], row["outstanding_after"]) == (7_500, 0)
    audit = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE loan_id = $1 AND action = $2",
        loan_id,
        "payment_recorded_after_collection",
    )
    assert audit == 1

    again = await record_payment(client, pool, loan_id, late)
    assert (again.applied, again.duplicate) == (False, True)
    with pytest.raises(PaymentInvalid, match="payment_id"):
        await record_payment(client, pool, loan_id, _payment(1, payment_id=late.payment_id))
    with pytest.raises(PaymentInvalid, match="currency"):
        await record_payment(client, pool, loan_id, _payment(100, currency="CNY"))


async def test_unknown_loan(client: Client, pool: asyncpg.Pool, worker: Worker) -> None:
    with pytest.raises(UnknownLoan):
        await record_payment(client, pool, "NO-SUCH-LOAN", _payment(100))
