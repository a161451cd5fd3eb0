"""`overdue loans sync`: the lender's loan book into PostgreSQL, by version, line by line."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.support import Cli

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
async def _leave_the_book_as_found(pool: asyncpg.Pool) -> AsyncIterator[None]:
    # A delinquency scan in a later module would start these loans' collections.
    yield
    await pool.execute("DELETE FROM book.loans WHERE loan_id LIKE 'BOOK-%'")


HEADER = (
    "loan_id,borrower_id,borrower_name,phone,timezone,product,principal,outstanding,currency,"
    "due_date,jurisdiction,contacts,version,schedule\n"
)


def _day(days_from_today: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days_from_today)).isoformat()


def _ids(label: str) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"BOOK-{label}-{run}", f"BB-{label}-{run}"


def _loan(loan_id: str, borrower_id: str, **fields: Any) -> str:
    """A JSON Lines loan, as a core system exports it."""
    loan = {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": "Ann Lee",
        "phone": "+12025550123",
        "timezone": "America/New_York",
        "product": "personal",
        "principal": "1200.00",
        "currency": "USD",
        "jurisdiction": "us",
        **fields,
    }
    return json.dumps(loan) + "\n"


async def _book(pool: asyncpg.Pool, loan_id: str) -> tuple[int | None, list[tuple[Any, ...]]]:
    version = await pool.fetchval("SELECT version FROM book.loans WHERE loan_id = $1", loan_id)
    rows = await pool.fetch(
        "SELECT due_date, amount_due_minor, amount_paid_minor FROM book.instalments"
        " WHERE loan_id = $1 ORDER BY seq",
        loan_id,
    )
    return version, [tuple(r) for r in rows]


async def test_a_csv_book_is_synced_and_a_second_sync_changes_nothing(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    overdue, overdue_borrower = _ids("overdue")
    not_yet, not_yet_borrower = _ids("not-yet")
    paid, paid_borrower = _ids("paid")
    book = tmp_path / "book.csv"
    book.write_text(
        HEADER
        # The loan-book format of `overdue import`: one instalment of `outstanding`.
        + f"{overdue},{overdue_borrower},Ann Lee,+12025550123,America/New_York,personal,"
        f"1000.00,500.00,USD,{_day(-10)},us,,,\n"
        + f"{not_yet},{not_yet_borrower},Bo Chen,+12025550124,America/New_York,personal,"
        f"600.00,,USD,,us,,3,{_day(-30)}|200.00|200.00;{_day(5)}|200.00|0;{_day(35)}|200.00\n"
        + f"{paid},{paid_borrower},Cy Diaz,+12025550125,America/New_York,personal,"
        f"400.00,,USD,,us,,1,{_day(-40)}|200.00|200.00;{_day(-10)}|200.00|200.00\n"
        + f"BAD-1,{paid_borrower},Cy Diaz,+12025550125,America/New_York,personal,"
        f"400.00,,USD,,us,,0,{_day(-40)}|200.00|300.00\n"  # line 5: version and amount_paid
         + "BAD-2,B,,,,,,,,,,,,\n"  # line 6: a row of blanks
    )

    first = await cli("loans", "sync", str(book), "--json")
    assert first.code == 1, first  # some lines were rejected
    report = first.json()
    assert (report["added"], report["updated"], report["unchanged"]) == (3, 0, 0), report
    assert {r["line"] for r in report["rejected"]} == {5, 6}
    assert {"version", "schedule[0].amount_paid"} <= {
        r["field"] for r in report["rejected"] if r["line"] == 5
    }
    assert await _book(pool, overdue) == (1, [(date.fromisoformat(_day(-10)), 50_000, 0)])
    version, schedule = await _book(pool, not_yet)
    assert (version, len(schedule)) == (3, 3)
    assert [r[2] for r in schedule] == [20_000, 0, 0]
    # Nothing of a rejected line is written.
    assert await pool.fetchval("SELECT count(*) FROM book.loans WHERE loan_id LIKE 'BAD-%'") == 0

    again = await cli("loans", "sync", str(book), "--json")
    assert (again.json()["unchanged"], again.json()["added"]) == (3, 0), again


async def test_versions_decide_and_the_same_version_cannot_change(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    loan_id, borrower_id = _ids("versions")
    v1 = _loan(loan_id, borrower_id, version=1, outstanding="100.00", due_date=_day(-3))
    v2 = _loan(
        loan_id,
        borrower_id,
        version=2,
        schedule=[
            {"due_date": _day(-3), "amount_due": "100.00", "amount_paid": "40.00"},
            {"due_date": _day(27), "amount_due": "100.00"},
        ],
    )
    first = tmp_path / "v1.jsonl"
    first.write_text(v1)
    assert (await cli("loans", "sync", str(first), "--json")).json()["added"] == 1

    newer = tmp_path / "v2.jsonl"
    newer.write_text(v2 + "not json\n" + v1)
    result = await cli("loans", "sync", str(newer), "--json")
    report = result.json()
    assert (report["updated"], report["stale"]) == (1, 1), report
    assert report["rejected"] == [
        {"line": 2, "field": "line", "error": "is not JSON (Expecting value)"}
    ]
    version, schedule = await _book(pool, loan_id)
    assert (version, [r[2] for r in schedule]) == (2, [4_000, 0])

    changed = tmp_path / "changed.jsonl"
    changed.write_text(
        _loan(loan_id, borrower_id, version=2, outstanding="1.00", due_date=_day(-3))
    )
    result = await cli("loans", "sync", str(changed), "--json")
    [problem] = result.json()["rejected"]
    assert problem["field"] == "version"
    assert "was synced with other content" in problem["error"]
    assert (await _book(pool, loan_id))[0] == 2


async def test_a_file_that_is_no_loan_book_is_one_line(cli: Cli, tmp_path: Path) -> None:
    (await cli("loans", "sync", str(tmp_path / "missing.csv"))).assert_user_error("path")
    binary = tmp_path / "photo.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (await cli("loans", "sync", str(binary))).assert_user_error("path")


async def test_the_core_systems_payments_are_kept_once_and_never_rewritten(
    cli: Cli, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    loan_id, borrower_id = _ids("payments")
    schedule = [
        {"due_date": _day(-40), "amount_due": "300.00", "amount_paid": "300.00"},
        {"due_date": _day(-10), "amount_due": "300.00", "amount_paid": "120.00"},
    ]
    paid = ["BR-1-" + loan_id[-8:], "BR-2-" + loan_id[-8:]]
    v1 = _loan(
        loan_id,
        borrower_id,
        version=1,
        schedule=schedule,
        payments=[{"payment_id": paid[0], "amount": "300.00", "paid_at": _day(-41)}],
    )
    # The CSV form: payment_id|amount|paid_at items in one cell.
    csv_v2 = tmp_path / "v2.csv"
    csv_v2.write_text(
        HEADER.rstrip("\n")
        + ",payments\n"
        + f"{loan_id},{borrower_id},Ann Lee,+12025550123,America/New_York,personal,1200.00,,USD,,us,"
        + f",2,{_day(-40)}|300.00|300.00;{_day(-10)}|300.00|120.00,"
        + f"{paid[0]}|300.00|{_day(-41)};{paid[1]}|120.00|{_day(-5)}T10:15:00Z\n"
    )
    first = tmp_path / "v1.jsonl"
    first.write_text(v1)
    assert (await cli("loans", "sync", str(first), "--json")).json()["added"] == 1
    assert (await cli("loans", "sync", str(csv_v2), "--json")).json()["updated"] == 1

    rows = await pool.fetch(
        "SELECT payment_id, amount_minor, first_version FROM book.payments"
        " WHERE loan_id = $1 ORDER BY payment_id",
        loan_id,
    )
    assert [tuple(r) for r in rows] == [(paid[0], 30_000, 1), (paid[1], 12_000, 2)]

    # A payment listed again with another amount: the whole line is refused, nothing written.
    rewritten = tmp_path / "v3.jsonl"
    rewritten.write_text(
        _loan(
            loan_id,
            borrower_id,
            version=3,
            schedule=schedule,
            payments=[
                {"payment_id": paid[1], "amount": "100.00", "paid_at": f"{_day(-5)}T10:15:00Z"}
            ],
        )
        + _loan(
            loan_id,
            borrower_id,
            version=4,
            schedule=schedule,
            payments=[{"payment_id": "BR-3", "amount": "-5.00", "paid_at": _day(-1)}],
        )
    )
    result = await cli("loans", "sync", str(rewritten), "--json")
    assert result.code == 1
    problems = {(p["line"], p["field"]) for p in result.json()["rejected"]}
    assert problems == {(1, "payments[0]"), (2, "payments[0].amount")}, result.json()
    assert (await _book(pool, loan_id))[0] == 2
    assert (
        await pool.fetchval("SELECT count(*) FROM book.payments WHERE loan_id = $1", loan_id) == 2
    )
