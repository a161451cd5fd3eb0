"""`overdue payments import`: bank files through the outbox, against the dev server and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from overdue.outbox import Outbox
from overdue.stack import free_port
from tests.integration.support import Cli, Loans, past_due_loan, start_until_opened
from workflows.collection import LoanCollection
from workflows.types import workflow_id_for

pytestmark = pytest.mark.integration
HEADER = "payment_id,loan_id,amount,currency,paid_at,reference\n"


async def _start_loan(client: Client, pool: asyncpg.Pool, loans: Loans, label: str) -> str:
    loan_id = loans.new_id(f"bank-{label}-{uuid.uuid4().hex[:6]}")
    return await start_until_opened(client, pool, past_due_loan(loan_id, outstanding_minor=50_000))


async def _outstanding(client: Client, loan_id: str) -> int:
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    return (await handle.query(LoanCollection.status)).outstanding_minor


def _ids(count: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"BANK-{run}-{n}" for n in range(count)]


async def test_a_bank_file_is_applied_once_and_bad_lines_are_named(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans, tmp_path: Path
) -> None:
    first, second = [await _start_loan(client, pool, loans, n) for n in ("a", "b")]
    p = _ids(8)
    today = datetime.now(UTC).date().isoformat()
    # A moment with its time of day, always in the past whatever the hour the suite runs at.
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bank_file = tmp_path / "statement.csv"
    bank_file.write_text(
        HEADER
        + f"{p[0]},{first},100.00,USD,{today},stmt line 1\n"
        + f"{p[1]},{second},25.50,USD,{an_hour_ago},\n"
        + f"{p[2]},{first},-5,USD,{today},\n"  # line 4: amount
        + f"{p[3]},{first},5.00,EUR,{today},\n"  # line 5: not the loan's currency
        + f"{p[4]},NO-SUCH-LOAN,5.00,USD,{today},\n"  # line 6: unknown loan
        + f"{p[5]},{first},5.00,USD,not-a-date,\n"  # line 7: paid_at
        + f"{p[0]},{first},100.00,USD,{today},\n"  # line 8: twice in the file
        + f"{p[6]},{second},0.50,USD,{today},\n"
    )

    result = await cli("payments", "import", str(bank_file), "--json")
    assert result.code == 1, result
    report = result.json()
    assert report["applied"] == [p[0], p[1], p[6]]
    assert (report["duplicates"], report["queued"]) == ([], [])
    assert [(r["line"], r["field"]) for r in report["rejected"]] == [
        (4, "amount"),
        (5, "currency"),
        (6, "loan_id"),
        (7, "paid_at"),
        (8, "payment_id"),
    ]
    assert report["rejected"][0]["error"] == "must be positive, got -5"
    assert "does not match the loan's USD" in report["rejected"][1]["error"]
    assert "Traceback" not in result.stderr
    assert await _outstanding(client, first) == 40_000
    assert await _outstanding(client, second) == 50_000 - 2_550 - 50
    rows = await pool.fetch("SELECT payment_id FROM payments WHERE payment_id = ANY($1::text[])", p)
    assert sorted(r["payment_id"] for r in rows) == sorted([p[0], p[1], p[6]])
    # One loan's lines are applied in file order, whatever runs beside them.
    balances = await pool.fetch(
        "SELECT payment_id, outstanding_after FROM payments WHERE loan_id = $1"
        " ORDER BY outstanding_after DESC",
        second,
    )
    assert [(r["payment_id"], r["outstanding_after"]) for r in balances] == [
        (p[1], 47_450),
        (p[6], 47_400),
    ]
    reference = await pool.fetchval(
        "SELECT reference FROM payment_outbox WHERE payment_id = $1", p[0]
    )
    assert reference == "stmt line 1"
    stored_bad = await pool.fetchval(
        "SELECT count(*) FROM payment_outbox WHERE payment_id = ANY($1::text[])", p[2:6]
    )
    assert stored_bad == 0

    # The same file again: nothing is applied twice, the duplicates are reported.
    again = await cli("payments", "import", str(bank_file))
    assert again.code == 1, again
    assert again.stdout.strip() == "applied 0, duplicates 3, queued 0, rejected lines 5"
    assert f"{bank_file}:line 4: amount: must be positive, got -5" in again.stderr
    assert await _outstanding(client, first) == 40_000
    count = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE payment_id = ANY($1::text[])", p
    )
    assert count == 3


async def test_a_clean_file_exits_zero(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans, tmp_path: Path
) -> None:
    loan_id = await _start_loan(client, pool, loans, "clean")
    (payment_id,) = _ids(1)
    bank_file = tmp_path / "clean.csv"
    bank_file.write_text(
        "payment_id,loan_id,amount,currency,paid_at\n"
        + f"{payment_id},{loan_id},1.00,usd,{datetime.now(UTC).date()}\n"
    )
    result = await cli("payments", "import", str(bank_file), "--json")
    assert (result.code, result.json()["applied"]) == (0, [payment_id]), result


async def test_a_file_that_is_no_bank_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    (await cli("payments", "import", str(binary))).assert_user_error("path")
    loan_book = tmp_path / "loans.csv"
    loan_book.write_text("loan_id,borrower_id\nL-1,B-1\n")
    line = (await cli("payments", "import", str(loan_book))).assert_user_error("path")
    assert "its header lacks payment_id, amount, currency, paid_at" in line
    (await cli("payments", "import", str(tmp_path / "missing.csv"))).assert_user_error("path")


async def test_with_temporal_down_the_lines_are_queued_and_relayed_once(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans, tmp_path: Path
) -> None:
    loan_id = await _start_loan(client, pool, loans, "down")
    p = _ids(3)
    today = datetime.now(UTC).date().isoformat()
    bank_file = tmp_path / "down.csv"
    bank_file.write_text(HEADER + "".join(f"{pid},{loan_id},10.00,USD,{today},\n" for pid in p))
    down = Cli({**cli.env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
    result = await down("payments", "import", str(bank_file), "--json")
    assert result.code == 0, result
    assert result.json()["queued"] == p
    statuses = await pool.fetch(
        "SELECT status FROM payment_outbox WHERE payment_id = ANY($1::text[])", p
    )
    assert [r["status"] for r in statuses] == ["pending"] * 3
    assert await _outstanding(client, loan_id) == 50_000

    # Temporal is back: a relay delivers them, each once.
    await pool.execute(
        "UPDATE payment_outbox SET next_attempt_at = now() WHERE payment_id = ANY($1::text[])", p
    )

    async def provide() -> Client:
        return client

    relay = Outbox(pool, provide)
    while await relay.deliver_due():
        pass
    assert await _outstanding(client, loan_id) == 47_000
    again = await cli("payments", "import", str(bank_file), "--json")
    assert (again.code, again.json()["duplicates"], again.json()["applied"]) == (0, p, [])
    assert await _outstanding(client, loan_id) == 47_000
