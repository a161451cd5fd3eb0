"""The payment path: ``record_payment``, and one payment reported through every door (HTTP, the
Python client, ``overdue pay``, its ``--signal``, a bank file), against the dev server and
PostgreSQL.

Updates cannot run on the time-skipping server (sdk-java#1903), so these run on the dev server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateHandle,
)
from temporalio.worker import Worker

from overdue.api import create_app
from overdue.client import PaymentConflict, PaymentInvalid, UnknownLoan, record_payment
from overdue.stack import EmbeddedStack
from tests.integration.support import Cli, Loans, eventually, past_due_loan, start_until_opened
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

    with pytest.raises(PaymentInvalid, match=r"^currency: EUR does not match the loan's USD$"):
        await record_payment(client, pool, loan_id, _payment(1_000, currency="EUR"))
    with pytest.raises(PaymentInvalid, match=r"^amount_minor: must be positive"):
        await record_payment(client, pool, loan_id, _payment(-5))
    # The same id with another amount: the collection knows the id, the ledger the amount.
    with pytest.raises(PaymentConflict, match=r"^payment_id: "):
        await record_payment(client, pool, loan_id, _payment(1_000, payment_id=part.payment_id))
    # The validator refused both before anything reached the history.
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    accepted = [
        event
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.ALL_EVENT
        )
        if event.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 3

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
    with pytest.raises(UnknownLoan, match=r"^loan_id: no collection for loan 'NO-SUCH-LOAN'$"):
        await record_payment(client, pool, "NO-SUCH-LOAN", _payment(100))
    # Without the ledger, Temporal's answer alone tells an unknown loan from an ended one.
    with pytest.raises(UnknownLoan):
        await record_payment(client, None, "NO-SUCH-LOAN", _payment(100))


async def test_without_the_ledger_an_ended_collection_is_named(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    loan_id = await _start_loan(client, pool, loans)
    await record_payment(client, pool, loan_id, _payment(50_000))
    await client.get_workflow_handle(workflow_id_for(loan_id)).result()
    with pytest.raises(PaymentInvalid, match=r"^loan_id: the collection of .* has ended"):
        await record_payment(client, None, loan_id, _payment(100))


# --- no describe call -----------------------------------------------------------------------


class _Calls(Interceptor):
    """Records the Temporal calls a client makes; the server answers them as usual."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self.names)


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, names: list[str]) -> None:
        super().__init__(next)
        self._names = names

    async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
        self._names.append("describe")
        return await super().describe_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        self._names.append(f"query:{input.query}")
        return await super().query_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        self._names.append(f"signal:{input.signal}")
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        self._names.append(f"update:{input.update}")
        return await super().start_workflow_update(input)


@pytest_asyncio.fixture(loop_scope="session")
async def recorded(stack: EmbeddedStack) -> tuple[Client, list[str]]:
    calls = _Calls()
    return await Client.connect(stack.temporal_address, interceptors=[calls]), calls.names


async def test_a_payment_makes_no_describe_call(
    client: Client,
    pool: asyncpg.Pool,
    worker: Worker,
    loans: Loans,
    recorded: tuple[Client, list[str]],
) -> None:
    watched, calls = recorded
    loan_id = await _start_loan(client, pool, loans)

    await record_payment(watched, pool, loan_id, _payment(10_000))
    assert calls == ["update:apply_payment"]
    calls.clear()
    async with _http(watched, pool) as api:
        paid = await api.post("/v1/payments", json=_body(loan_id, "100.00"), headers=AUTH)
    assert paid.status_code == 200, paid.text
    assert calls == ["update:apply_payment"], "the outbox asked the ledger, not Temporal"

    # Once the collection has ended, the update's own error sends the payment to the ledger.
    await record_payment(client, pool, loan_id, _payment(30_000))
    await client.get_workflow_handle(workflow_id_for(loan_id)).result()
    calls.clear()
    late = await record_payment(watched, pool, loan_id, _payment(500))
    assert (late.applied, late.stage) == (True, "cured")
    assert calls == ["update:apply_payment"]
    calls.clear()
    with pytest.raises(UnknownLoan):
        await record_payment(watched, pool, "NO-SUCH-LOAN", _payment(100))
    assert calls == ["update:apply_payment"]


# --- one payment, every door ----------------------------------------------------------------

TOKEN = "test-token-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _http(client: Client, pool: asyncpg.Pool) -> httpx.AsyncClient:
    async def provide() -> Client:
        return client

    app = create_app(provide, pool, TOKEN)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def _body(loan_id: str, amount: str, payment_id: str | None = None) -> dict[str, Any]:
    return {
        "payment_id": payment_id or f"PAY-{uuid.uuid4().hex[:10]}",
        "loan_id": loan_id,
        "amount": amount,
        "currency": "USD",
    }


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    client: Client, pool: asyncpg.Pool, worker: Worker
) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(client, pool) as http:
        yield http


async def test_one_payment_through_every_door_is_applied_once(
    client: Client,
    pool: asyncpg.Pool,
    loans: Loans,
    cli: Cli,
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    loan_id = await _start_loan(client, pool, loans)
    payment_id = f"PAY-{uuid.uuid4().hex[:10]}"
    same = PaymentReceived(payment_id, 12_500, "USD", datetime.now(UTC), "bank")

    first = await api.post("/v1/payments", json=_body(loan_id, "125.00", payment_id), headers=AUTH)
    assert (first.status_code, first.json()["outstanding_minor"]) == (200, 37_500), first.text
    by_client = await record_payment(client, pool, loan_id, same)
    assert (by_client.applied, by_client.duplicate, by_client.outstanding_minor) == (
        False,
        True,
        37_500,
    )
    by_cli = await cli("pay", loan_id, "125.00", "--payment-id", payment_id, "--json")
    assert by_cli.code == 0, by_cli
    assert (by_cli.json()["duplicate"], by_cli.json()["outstanding_minor"]) == (True, 37_500)
    by_signal = await cli(
        "pay", loan_id, "125.00", "--payment-id", payment_id, "--signal", "--json"
    )
    assert by_signal.code == 0, by_signal
    assert (by_signal.json()["status"], by_signal.json()["signalled"]) == ("applied", False)
    bank_file = tmp_path / "statement.csv"
    bank_file.write_text(
        "payment_id,loan_id,amount,currency,paid_at\n"
        f"{payment_id},{loan_id},125.00,USD,{datetime.now(UTC).date().isoformat()}\n"
    )
    imported = await cli("payments", "import", str(bank_file), "--json")
    assert imported.code == 0, imported
    assert imported.json()["duplicates"] == [payment_id]

    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    signals = [
        e
        for e in (await handle.fetch_history()).events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert not signals, "a payment the outbox holds as applied is not signalled again"
    status = await handle.query(LoanCollection.status)
    assert (status.outstanding_minor, status.applied_payment_ids) == (37_500, [payment_id])
    assert (
        await pool.fetchval("SELECT count(*) FROM payments WHERE payment_id = $1", payment_id) == 1
    )
    applied = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE loan_id = $1 AND action = 'payment_applied'", loan_id
    )
    assert applied == 1


async def test_a_bad_payment_is_named_the_same_through_every_door(
    client: Client, pool: asyncpg.Pool, loans: Loans, cli: Cli, api: httpx.AsyncClient
) -> None:
    loan_id = await _start_loan(client, pool, loans)
    wrong = "EUR does not match the loan's USD"

    by_http = await api.post(
        "/v1/payments", json={**_body(loan_id, "5.00"), "currency": "EUR"}, headers=AUTH
    )
    assert (by_http.status_code, by_http.json()["error"]) == (422, f"currency: {wrong}")
    with pytest.raises(PaymentInvalid, match=f"^currency: {wrong}$"):
        await record_payment(client, pool, loan_id, _payment(500, currency="EUR"))
    for extra in ((), ("--signal",)):
        by_cli = await cli(
            "pay", loan_id, "5", "--payment-id", "P-EUR", "--currency", "EUR", *extra
        )
        assert by_cli.assert_user_error("currency") == f"error: currency: {wrong}"

    unknown = "loan_id: no collection for loan 'NO-SUCH-LOAN'"
    by_http = await api.post("/v1/payments", json=_body("NO-SUCH-LOAN", "5.00"), headers=AUTH)
    assert (by_http.status_code, by_http.json()["error"]) == (404, unknown)
    for extra in ((), ("--currency", "USD"), ("--signal",)):
        by_cli = await cli("pay", "NO-SUCH-LOAN", "5", "--payment-id", "P-NONE", *extra)
        assert by_cli.assert_user_error("loan_id") == f"error: {unknown}"

    async def untouched() -> bool:
        status = await client.get_workflow_handle_for(
            LoanCollection.run, workflow_id_for(loan_id)
        ).query(LoanCollection.status)
        return status.outstanding_minor == 50_000 and not status.applied_payment_ids

    await eventually(untouched, what="nothing applied")
