"""The loan book reaching running collections, on the dev server and PostgreSQL: an instalment
falling due raises what is owed, a payment made in the core system is applied once (whether or
not the API reported it too), and a book that says the arrears are paid cures the loan."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes
from temporalio.worker import Worker

from activities.scan import ScanActivities
from overdue.loanbook import BookLoanIn, store
from overdue.schemas import validate
from tests.integration.support import API_AUTH, Cli, Loans, book_line, eventually, workflow_exists
from workflows import search_attributes as sa
from workflows.commands import ScanPage, ScanPageResult
from workflows.types import CollectionStatus, CollectionSummary, workflow_id_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(autouse=True, scope="module")
async def _leave_the_book_as_found(pool: asyncpg.Pool, loans: Loans) -> AsyncIterator[None]:
    # A delinquency scan in a later module would tell or start these loans' collections.
    yield
    await pool.execute("DELETE FROM book.loans WHERE loan_id = ANY($1)", loans.ids)


def _moment(days_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days_from_now)).isoformat()


async def _sync(
    pool: asyncpg.Pool,
    loan_id: str,
    version: int,
    schedule: list[tuple[int, str, str]],
    payments: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
) -> str:
    """Store a version of the loan in the book (``_line``)."""
    line = book_line(loan_id, schedule, version=version, payments=payments)
    return await store(pool, validate(BookLoanIn, line).to_book_loan())


async def _scan(pool: asyncpg.Pool, client: Client, loan_id: str) -> ScanPageResult:
    """Scan the one page of the book that holds ``loan_id`` alone."""
    page = await ScanActivities(pool, client).scan_page(
        ScanPage(datetime.now(UTC), loan_id[:-1], 1)
    )
    assert page.last_loan_id == loan_id, "the page must hold this test's loan"
    return page


async def _status(client: Client, loan_id: str) -> CollectionStatus:
    return await client.get_workflow_handle(workflow_id_for(loan_id)).query(
        "status", result_type=CollectionStatus
    )


async def _owing(client: Client, loan_id: str, minor: int) -> CollectionStatus:
    async def owing() -> CollectionStatus | None:
        status = await _status(client, loan_id)
        return status if status.outstanding_minor == minor else None

    return await eventually(owing, what=f"{loan_id} owing {minor}")


async def test_an_instalment_falling_due_reaches_the_running_collection(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    loan_id = loans.new_id(f"grows-{uuid.uuid4().hex[:6]}")
    await _sync(pool, loan_id, 1, [(-10, "300.00", "0"), (20, "300.00", "0")])
    assert (await _scan(pool, client, loan_id)).started == 1
    status = await _owing(client, loan_id, 30_000)
    assert status.total_outstanding_minor == 60_000

    # The assignment rules chose its strategy (the packaged ones: everyone, the default).
    async def assigned() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT strategy, strategy_segment, strategy_champion FROM loans"
            " WHERE loan_id = $1 AND strategy_version <> ''",
            loan_id,
        )

    strategy = await eventually(assigned, what="the strategy in the ledger")
    assert tuple(strategy) == ("default", "everyone", True)

    async def shown() -> TypedSearchAttributes | None:
        described = await client.get_workflow_handle(workflow_id_for(loan_id)).describe()
        attributes = described.typed_search_attributes
        return attributes if attributes.get(sa.STRATEGY) else None

    attributes = await eventually(shown, what="the Strategy search attribute")
    assert attributes.get(sa.STRATEGY, "").startswith("default@")
    assert attributes.get(sa.TOTAL_OUTSTANDING_AMOUNT) == 600.0

    # The core system's next version: another instalment fell due, and the last one moved.
    await _sync(pool, loan_id, 2, [(-10, "300.00", "0"), (-1, "300.00", "0"), (29, "300.00", "0")])
    told = await _scan(pool, client, loan_id)
    assert (told.started, told.already_running, told.signalled) == (0, 1, 1)
    status = await _owing(client, loan_id, 60_000)
    assert status.total_outstanding_minor == 90_000
    assert status.days_past_due >= 10  # still from the oldest unpaid instalment

    async def audited() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT details FROM audit_log WHERE event_key = $1", f"{loan_id}:book:v2"
        )

    await eventually(audited, what="the change in the audit log")
    row = await pool.fetchrow("SELECT outstanding_minor FROM loans WHERE loan_id = $1", loan_id)
    assert row["outstanding_minor"] == 60_000

    # Told once: the next scan finds the collection up to date.
    again = await _scan(pool, client, loan_id)
    assert (again.started, again.signalled) == (0, 0)


async def test_a_core_payment_cures_the_loan_once_even_when_the_api_reported_it_too(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans, api: httpx.AsyncClient
) -> None:
    loan_id = loans.new_id(f"cures-{uuid.uuid4().hex[:6]}")
    await _sync(pool, loan_id, 1, [(-20, "300.00", "0"), (-5, "300.00", "0")])
    assert (await _scan(pool, client, loan_id)).started == 1
    await _owing(client, loan_id, 60_000)

    # The payment service reports a payment through the API first...
    api_payment = f"P-{uuid.uuid4().hex[:10]}"
    paid = await api.post(
        "/v1/payments",
        json={"payment_id": api_payment, "loan_id": loan_id, "amount": "300.00", "currency": "USD"},
        headers=API_AUTH,
    )
    assert paid.status_code in (200, 201), paid.text
    await _owing(client, loan_id, 30_000)

    # ...then the core system lists it, and nets it in its figures: not taken off again.
    paid_at = _moment(0)
    await _sync(
        pool,
        loan_id,
        2,
        [(-20, "300.00", "300.00"), (-5, "300.00", "0")],
        [(api_payment, "300.00", paid_at)],
    )
    assert (await _scan(pool, client, loan_id)).signalled == 1
    await _owing(client, loan_id, 30_000)

    # A payment at a branch, known to the core system first: it clears the arrears.
    branch_payment = f"P-{uuid.uuid4().hex[:10]}"
    await _sync(
        pool,
        loan_id,
        3,
        [(-20, "300.00", "300.00"), (-5, "300.00", "300.00")],
        [(api_payment, "300.00", paid_at), (branch_payment, "300.00", paid_at)],
    )
    assert (await _scan(pool, client, loan_id)).signalled == 1
    handle = client.get_workflow_handle(workflow_id_for(loan_id), result_type=CollectionSummary)
    summary = await handle.result()
    assert (summary.final_stage, summary.outstanding_minor) == ("cured", 0)
    assert summary.recovered_minor == 60_000

    # The same branch payment through the API afterwards changes nothing.
    late = await api.post(
        "/v1/payments",
        json={
            "payment_id": branch_payment,
            "loan_id": loan_id,
            "amount": "300.00",
            "currency": "USD",
        },
        headers=API_AUTH,
    )
    assert late.status_code < 500, late.text
    payments = await pool.fetch(
        "SELECT payment_id, amount_minor FROM payments WHERE loan_id = $1 ORDER BY payment_id",
        loan_id,
    )
    assert sorted((p["payment_id"], p["amount_minor"]) for p in payments) == sorted(
        [(api_payment, 30_000), (branch_payment, 30_000)]
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_a_loan_the_book_says_is_paid_is_cured_and_collected_again_once_overdue_again(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    # Paid before the collection heard of it (a payment the book does not list by id).
    loan_id = loans.new_id(f"netted-{uuid.uuid4().hex[:6]}")
    await _sync(pool, loan_id, 1, [(-3, "300.00", "0"), (27, "300.00", "0")])
    assert (await _scan(pool, client, loan_id)).started == 1
    await _owing(client, loan_id, 30_000)
    await _sync(pool, loan_id, 2, [(-3, "300.00", "300.00"), (27, "300.00", "0")])
    told = await _scan(pool, client, loan_id)
    assert (told.delinquent, told.signalled) == (0, 1)
    summary = await client.get_workflow_handle(
        workflow_id_for(loan_id), result_type=CollectionSummary
    ).result()
    assert (summary.final_stage, summary.outstanding_minor) == ("cured", 0)

    # Overdue again: only an instalment that fell due after the cure starts a new collection.
    await _sync(pool, loan_id, 3, [(-3, "300.00", "300.00"), (-2, "300.00", "0")])
    behind = await _scan(pool, client, loan_id)
    assert (behind.delinquent, behind.already_ended, behind.started_again) == (1, 1, 0)
    # As if the collection had cured the loan a month ago.
    await pool.execute(
        "UPDATE loans SET closed_at = closed_at - interval '30 days' WHERE loan_id = $1", loan_id
    )
    again = await _scan(pool, client, loan_id)
    assert (again.already_ended, again.started_again) == (1, 1)
    await _owing(client, loan_id, 30_000)

    async def both() -> list[asyncpg.Record] | None:
        rows = await pool.fetch(
            "SELECT number, workflow_id FROM collections WHERE loan_id = $1 ORDER BY number",
            loan_id,
        )
        return rows if len(rows) == 2 else None

    collections = await eventually(both, what="the second collection opened in the ledger")
    assert [(c["number"], c["workflow_id"]) for c in collections] == [
        (1, workflow_id_for(loan_id)),
        (2, workflow_id_for(loan_id)),
    ]
    reopened = await pool.fetchrow(
        "SELECT stage, closed_at, outstanding_minor FROM loans WHERE loan_id = $1", loan_id
    )
    assert tuple(reopened) == ("early", None, 30_000)
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE event_key = $1", f"{loan_id}~2:opened"
    )
    # Once started, it is the running collection: the next scan starts nothing.
    settled = await _scan(pool, client, loan_id)
    assert (settled.started, settled.started_again, settled.already_running) == (0, 0, 1)


async def test_a_sync_from_the_shell_can_run_the_scan_at_once(
    cli: Cli, client: Client, loans: Loans, tmp_path: Path
) -> None:
    loan_id = loans.new_id(f"shell-{uuid.uuid4().hex[:6]}")
    path = tmp_path / "book.jsonl"
    path.write_text(json.dumps(book_line(loan_id, [(-4, "250.00", "0")])) + "\n")
    done = await cli("loans", "sync", str(path), "--scan", "--json", timeout=180)
    assert done.code == 0, done
    report = done.json()
    assert report["added"] == 1
    assert report["scan"]["started"] >= 1 and report["scan"]["examined"] >= 1
    assert await workflow_exists(client, loan_id)
