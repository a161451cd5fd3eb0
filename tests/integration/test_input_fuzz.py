"""Fuzzing the edges that reach the ledger: API bodies, bank-file lines and loan-book rows, with
the dev server, the production worker and the real PostgreSQL.

Every answer is one of the documented ones (never a 500, always JSON naming the field on a
refusal), and nothing is half-written: a refused payment or outcome leaves no row; an accepted
one is in the ledger once; a loan the loan book accepts opens in the ledger. The default run is
small enough for CI; ``OVERDUE_FUZZ_EXAMPLES`` runs a longer one.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.ledger import LedgerActivities
from overdue.api_bodies import OutcomeIn, PaymentIn
from overdue.bankfile import import_bank_file, read_bank_file
from overdue.loans import CSV_COLUMNS, read_loan_book
from overdue.outbox import Outbox
from tests.fuzzing import (
    BANK_COLUMNS,
    FUZZ,
    GOOD_BANK_LINE,
    GOOD_LOAN,
    OUTCOME_BODY,
    PAYMENT_BODY,
    as_csv,
    body_of,
    mutated,
)
from tests.integration.support import API_AUTH as AUTH
from tests.integration.support import (
    Loans,
    clients_of,
    eventually,
    past_due_loan,
    start_until_opened,
)
from workflows.commands import OpenLoan

pytestmark = pytest.mark.integration
# Large enough that no fuzzed payment cures the loan: every example meets a running collection.
OUTSTANDING_MINOR = 10**15
ANSWERS = {200, 202, 404, 409, 422}
# Ids accepted once may come back in another example (fuzz can draw a short valid id twice):
# "nothing written" is checked only for ids no example stored.
stored: set[str] = set()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loan_id(client: Client, pool: asyncpg.Pool, loans: Loans, worker: Worker) -> str:
    loan = past_due_loan(
        loans.new_id(f"fuzz-{uuid.uuid4().hex[:6]}"), outstanding_minor=OUTSTANDING_MINOR
    )
    loan.principal_minor = OUTSTANDING_MINOR
    return await start_until_opened(client, pool, loan)


def _storable(value: object) -> bool:
    """Whether PostgreSQL text can hold ``value`` at all (what it cannot hold was not written)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _count(pool: asyncpg.Pool, table: str, payment_id: str) -> int:
    if not _storable(payment_id):
        return 0
    count: int = await pool.fetchval(
        f"SELECT count(*) FROM {table} WHERE payment_id = $1", payment_id
    )
    return count


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    # Encoded as JSON escapes, as a client in another language may send them: a lone surrogate
    # reaches the server as one.
    headers = {**AUTH, "Content-Type": "application/json"}
    return await api.post(path, headers=headers, content=json.dumps(body))


def _answered(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in ANSWERS, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        assert body["error"] and "\n" not in body["error"], body
        if response.status_code == 422:
            assert body["field"] and body["error"].startswith(f"{body['field']}:"), body
    return body


@FUZZ
@given(body_of(PAYMENT_BODY, (*PaymentIn.model_fields, "unknown_field")))
async def test_a_fuzzed_payment_is_answered_and_never_half_written(
    api: httpx.AsyncClient, pool: asyncpg.Pool, loan_id: str, body: dict[str, Any]
) -> None:
    body = {
        **body,
        "loan_id": loan_id if body["loan_id"] == "L-1" else body["loan_id"],
        "payment_id": f"FZ-{uuid.uuid4().hex}"
        if body["payment_id"] == "P-1"
        else body["payment_id"],
        "paid_at": datetime.now(UTC).isoformat()
        if body["paid_at"] == PAYMENT_BODY["paid_at"]
        else body["paid_at"],
    }
    response = await _post(api, "/v1/payments", body)
    answer = _answered(response)
    payment_id = body["payment_id"]
    if not isinstance(payment_id, str) or payment_id in stored:
        return
    if response.status_code == 200:
        stored.add(payment_id)
        assert answer["status"] == "applied"
        assert await _count(pool, "payments", payment_id) == 1
    elif response.status_code == 422:
        assert await _count(pool, "payment_outbox", payment_id) == 0
        assert await _count(pool, "payments", payment_id) == 0
    else:
        stored.add(payment_id)


@FUZZ
@given(body_of(OUTCOME_BODY, (*OutcomeIn.model_fields, "unknown_field")))
async def test_a_fuzzed_outcome_is_answered_and_recorded_once_or_not_at_all(
    api: httpx.AsyncClient, pool: asyncpg.Pool, loan_id: str, body: dict[str, Any]
) -> None:
    if body["outcome_id"] == "OUT-1":
        body = {**body, "outcome_id": f"FZ-{uuid.uuid4().hex}"}
    response = await _post(api, f"/v1/loans/{loan_id}/outcomes", body)
    _answered(response)
    outcome_id = body["outcome_id"]
    if not _storable(outcome_id) or outcome_id in stored:
        return

    async def recorded() -> int:
        count: int = await pool.fetchval(
            "SELECT count(*) FROM contact_outcomes WHERE outcome_id = $1", outcome_id
        )
        return count

    if response.status_code == 202:
        stored.add(outcome_id)
        # The collection records what it was sent: the write must not fail in PostgreSQL.
        assert await eventually(recorded, what=f"outcome {outcome_id!r} recorded") == 1
    elif response.status_code == 422:
        assert await recorded() == 0


@FUZZ
@given(st.lists(mutated(GOOD_BANK_LINE, BANK_COLUMNS), min_size=1, max_size=4))
async def test_a_fuzzed_bank_file_stores_its_good_lines_and_no_bad_one(
    client: Client, pool: asyncpg.Pool, loan_id: str, rows: list[dict[str, str]]
) -> None:
    rows = [
        {
            **row,
            "loan_id": loan_id if row["loan_id"] == "L-1" else row["loan_id"],
            "payment_id": f"FZ-{uuid.uuid4().hex}"
            if row["payment_id"] == "P-1"
            else row["payment_id"],
        }
        for row in rows
    ]
    bank_file = read_bank_file(as_csv(BANK_COLUMNS, rows))
    report = await import_bank_file(Outbox(pool, clients_of(client)), bank_file)
    kept = [*report.applied, *report.duplicates, *report.queued]
    for payment_id in kept:
        assert await _count(pool, "payment_outbox", payment_id) == 1
    stored.update(kept)
    by_line = {n: row for n, row in enumerate(rows, start=2)}
    for error in report.rejected:
        assert error.line is not None and error.field, error
        row = by_line.get(error.line)
        if row is not None and row["payment_id"] not in stored:
            assert await _count(pool, "payment_outbox", row["payment_id"]) == 0, error


@FUZZ
@given(st.lists(mutated(GOOD_LOAN, CSV_COLUMNS), min_size=1, max_size=3))
async def test_a_loan_the_loan_book_accepts_opens_in_the_ledger(
    pool: asyncpg.Pool, loans: Loans, rows: list[dict[str, str]]
) -> None:
    rows = [
        {**row, "loan_id": loans.new_id(f"fz-{uuid.uuid4().hex[:8]}")}
        if row["loan_id"] == "L-1"
        else row
        for row in rows
    ]
    book = read_loan_book(as_csv(CSV_COLUMNS, rows))
    ledger = LedgerActivities(pool)
    for loan in book.loans:
        if loan.loan_id in stored:
            continue
        # The ledger write the collection's first activity makes: it must not fail.
        await ActivityEnvironment().run(
            ledger.open_loan, OpenLoan(loan=loan, opened_at=datetime.now(UTC))
        )
        stored.add(loan.loan_id)
        row = await pool.fetchrow(
            "SELECT outstanding_minor, due_date FROM loans WHERE loan_id = $1", loan.loan_id
        )
        assert row is not None
