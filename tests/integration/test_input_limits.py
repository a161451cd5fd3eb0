"""Regressions of the malformed inputs that once broke the stack, on the dev server and PostgreSQL.

Each was accepted at the edge and then failed downstream, for good: a NUL in a note (PostgreSQL
refused the outcome's record forever), a 20-digit amount (``value out of int64 range``), a
3,000-character payment id (an index entry too large), a NUL in a borrower's name (the loan
never opened), a ``1e999997`` amount (a million-digit integer built on the API's event loop,
which froze it for a minute), and absurd dates (a loan due in year 1 went straight to legal).
Each is now refused at the edge, naming its field, and the good inputs beside it go through.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from overdue.loans import CSV_COLUMNS
from tests.integration.support import API_AUTH as AUTH
from tests.integration.support import (
    Cli,
    Loans,
    eventually,
    past_due_loan,
    start_until_opened,
)

pytestmark = pytest.mark.integration
BANK_HEADER = "payment_id,loan_id,amount,currency,paid_at,reference\n"


async def _loan(client: Client, pool: asyncpg.Pool, loans: Loans, label: str) -> str:
    loan_id = loans.new_id(f"limits-{label}-{uuid.uuid4().hex[:6]}")
    return await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _rows(pool: asyncpg.Pool, table: str, key: str, value: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {key} = $1", value)
    return count


def _refusal(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["field"] == field and body["error"].startswith(f"{field}: "), body
    return str(body["error"])


def _loan_row(loan_id: str, **change: str) -> str:
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    row = {
        "loan_id": loan_id,
        "borrower_id": f"B-{loan_id}",
        "borrower_name": "Ann Lee",
        "phone": "+15550100",
        "timezone": "America/New_York",
        "product": "personal",
        "principal": "100.00",
        "outstanding": "100.00",
        "currency": "USD",
        "due_date": yesterday,
        "jurisdiction": "us",
        "contacts": "",
        **change,
    }
    return ",".join(row[c] for c in CSV_COLUMNS) + "\n"


# --- a NUL in a note ------------------------------------------------------------------------


async def test_a_control_character_in_a_note_is_refused_and_a_good_note_recorded(
    api: httpx.AsyncClient, cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _loan(client, pool, loans, "note")
    bad = _unique("OUT")
    response = await api.post(
        f"/v1/loans/{loan_id}/outcomes", headers=AUTH, json={"outcome_id": bad, "note": "a\x00b"}
    )
    assert "U+0000" in _refusal(response, "note")
    # A NUL cannot be an argument of a process; the CLI refuses the other control characters.
    result = await cli("outcome", loan_id, "--outcome-id", _unique("OUT"), "--note", "a\x07b")
    assert "U+0007" in result.assert_user_error("note")

    # What needs no loan is refused before the loan is looked up, even for an unknown loan.
    response = await api.post(
        "/v1/loans/NO-SUCH-LOAN/outcomes",
        headers=AUTH,
        json={"outcome_id": _unique("OUT"), "source": "dialer:\x1b[2J", "note": "x"},
    )
    _refusal(response, "source")

    good = _unique("OUT")
    response = await api.post(
        f"/v1/loans/{loan_id}/outcomes",
        headers=AUTH,
        json={"outcome_id": good, "note": "called twice\n\tno answer"},
    )
    assert response.status_code == 202, response.text

    async def recorded() -> bool:
        return await _rows(pool, "contact_outcomes", "outcome_id", good) == 1

    await eventually(recorded, what="the good outcome recorded in the ledger")
    assert await _rows(pool, "contact_outcomes", "outcome_id", bad) == 0


# --- amounts and ids ------------------------------------------------------------------------


async def test_an_overflowing_amount_and_a_long_id_are_refused_at_every_edge(
    api: httpx.AsyncClient,
    cli: Cli,
    client: Client,
    pool: asyncpg.Pool,
    loans: Loans,
    tmp_path: Path,
) -> None:
    loan_id = await _loan(client, pool, loans, "amount")
    result = await cli("pay", loan_id, "99999999999999999999", "--payment-id", _unique("PAY"))
    assert "too large" in result.assert_user_error("amount")
    result = await cli("pay", loan_id, "1.00", "--payment-id", "P" * 3000)
    assert len(result.assert_user_error("payment_id")) < 200

    for body, field in (
        ({"amount": "99999999999999999999"}, "amount"),
        ({"amount": "92233720368547758.08"}, "amount"),
        ({"payment_id": "P" * 3000}, "payment_id"),
        ({"reference": "statement\x00"}, "reference"),
    ):
        payment = {
            "payment_id": _unique("PAY"),
            "loan_id": loan_id,
            "amount": "1.00",
            "currency": "USD",
            **body,
        }
        _refusal(await api.post("/v1/payments", headers=AUTH, json=payment), field)
        assert await _rows(pool, "payment_outbox", "payment_id", payment["payment_id"]) == 0

    # A bank file: the overflowing line is named, the good one applied, in one pass.
    bad, good = _unique("BANK"), _unique("BANK")
    today = datetime.now(UTC).date().isoformat()
    bank_file = tmp_path / "statement.csv"
    bank_file.write_text(
        BANK_HEADER
        + f"{bad},{loan_id},99999999999999999999,USD,{today},\n"
        + f"{good},{loan_id},25.00,USD,{today},\n"
    )
    result = await cli("payments", "import", str(bank_file), "--json")
    assert result.code == 1, result
    report = result.json()
    assert report["applied"] == [good]
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [(2, "amount")]
    assert await _rows(pool, "payments", "payment_id", good) == 1
    assert await _rows(pool, "payment_outbox", "payment_id", bad) == 0
    outstanding = await pool.fetchval(
        "SELECT outstanding_minor FROM loans WHERE loan_id = $1", loan_id
    )
    assert outstanding == 50_000 - 2_500


# --- a NUL in a borrower's name -------------------------------------------------------------


async def test_a_nul_in_a_borrowers_name_costs_only_its_row(
    cli: Cli, pool: asyncpg.Pool, loans: Loans, tmp_path: Path
) -> None:
    bad, good = loans.new_id(_unique("nul")), loans.new_id(_unique("good"))
    book = tmp_path / "loans.csv"
    book.write_text(
        ",".join(CSV_COLUMNS)
        + "\n"
        + _loan_row(bad, borrower_name="Ann\x00Lee")
        + _loan_row(good, phone="+15550101")
    )
    result = await cli("import", str(book), "--json")
    assert result.code == 1, result
    report = result.json()
    assert report["started"] == [good]
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [(2, "borrower_name")]

    async def opened() -> bool:
        return await _rows(pool, "loans", "loan_id", good) == 1

    await eventually(opened, what="the good loan opened in the ledger")
    assert await _rows(pool, "loans", "loan_id", bad) == 0


# --- an exponent amount, with /healthz meanwhile --------------------------------------------


async def test_an_exponent_amount_is_refused_while_the_api_answers_healthz(
    api: httpx.AsyncClient, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await _loan(client, pool, loans, "exponent")

    async def timed(request: Any) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await request
        return response, time.perf_counter() - started

    for amount in ("1e999997", "1e1000000", "9" * 100_000):
        body = {"payment_id": _unique("PAY"), "loan_id": loan_id, "amount": amount}
        bad = asyncio.create_task(
            timed(api.post("/v1/payments", headers=AUTH, json={**body, "currency": "USD"}))
        )
        await asyncio.sleep(0)  # the bad request is under way when /healthz is asked
        health, health_took = await timed(api.get("/healthz"))
        refused, refused_took = await bad
        assert health.json()["status"] == "ok"
        # It froze the API for a minute; a few seconds leave room for a loaded machine.
        assert health_took < 5 and refused_took < 5, (amount, health_took, refused_took)
        _refusal(refused, "amount")


# --- absurd dates ---------------------------------------------------------------------------


async def test_absurd_dates_are_refused_and_good_lines_kept(
    api: httpx.AsyncClient,
    cli: Cli,
    client: Client,
    pool: asyncpg.Pool,
    loans: Loans,
    tmp_path: Path,
) -> None:
    absurd = ("2030-01-01", "9999-12-31", "0001-01-01")
    ids = [loans.new_id(_unique("date")) for _ in range(len(absurd) + 1)]
    book = tmp_path / "loans.csv"
    book.write_text(
        ",".join(CSV_COLUMNS)
        + "\n"
        + "".join(
            _loan_row(loan_id, due_date=due, phone=f"+1555011{n}")
            for n, (loan_id, due) in enumerate(zip(ids, absurd, strict=False))
        )
        + _loan_row(ids[-1], phone="+15550119")
    )
    result = await cli("import", str(book), "--json")
    assert result.code == 1, result
    report = result.json()
    assert report["started"] == [ids[-1]]
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [
        (2, "due_date"),
        (3, "due_date"),
        (4, "due_date"),
    ]
    result = await cli(*_start_args(ids[0], "0001-01-01"))
    assert "is before 1990-01-01" in result.assert_user_error("due_date")

    loan_id = await _loan(client, pool, loans, "paid-at")
    bad_early, bad_late, good = _unique("BANK"), _unique("BANK"), _unique("BANK")
    bank_file = tmp_path / "statement.csv"
    bank_file.write_text(
        BANK_HEADER
        + f"{bad_early},{loan_id},1.00,USD,0001-01-01,\n"
        + f"{bad_late},{loan_id},1.00,USD,9999-12-31T23:59:59-14:00,\n"
        + f"{good},{loan_id},1.00,USD,{datetime.now(UTC).date().isoformat()},\n"
    )
    result = await cli("payments", "import", str(bank_file), "--json")
    report = result.json()
    assert report["applied"] == [good]
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [(2, "paid_at"), (3, "paid_at")]
    for paid_at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00"):
        payment = {
            "payment_id": _unique("PAY"),
            "loan_id": loan_id,
            "amount": "1.00",
            "currency": "USD",
            "paid_at": paid_at,
        }
        _refusal(await api.post("/v1/payments", headers=AUTH, json=payment), "paid_at")


def _start_args(loan_id: str, due_date: str) -> list[str]:
    return [
        *("start", "--loan-id", loan_id, "--borrower-id", "B-1", "--name", "Ann Lee"),
        *("--phone", "+15550100", "--timezone", "America/New_York", "--outstanding", "10.00"),
        *("--currency", "USD", "--due-date", due_date, "--jurisdiction", "us"),
    ]


# --- refused before connecting --------------------------------------------------------------


async def test_a_bad_argument_is_refused_before_anything_is_connected_to(tmp_path: Path) -> None:
    # Nothing answers at this address: a command that tried to connect would wait there.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "OVERDUE_DEBUG")}
    env.update(TEMPORAL_ADDRESS="10.255.255.1:7233", OVERDUE_HOME=str(tmp_path))
    cli = Cli(env)
    for args, field in (
        (["pay", "L-1", "1e999997", "--payment-id", "P-1"], "amount"),
        (["pay", "L-1", "1.00", "--payment-id", "P" * 3000], "payment_id"),
        (["pay", "L 1", "1.00", "--payment-id", "P-1"], "loan_id"),
        (["outcome", "L-1", "--outcome-id", "O-1", "--note", "\x1b[2J"], "note"),
        (
            [
                "outcome",
                "L-1",
                "--outcome-id",
                "O-1",
                "--promise-amount",
                "1e3",
                "--promise-date",
                "2026-12-24",
            ],
            "promise_amount",
        ),
        (["pause", "L-1", "--reason", "x" * 201], "reason"),
        (["status", "L-1\n"], "loan_id"),
        (_start_args("L-1", "9999-12-31"), "due_date"),
    ):
        started = time.perf_counter()
        result = await cli(*args, timeout=30)
        took = time.perf_counter() - started
        result.assert_user_error(field)
        assert took < 15, (args, took)  # the interpreter's start; a connection would hang
