"""The daily delinquency scan on the dev server: it starts exactly the past-due loans of the book,
once, page after page, and a second scan changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.scan import ScanActivities
from overdue.scan import ScanTime, ensure_schedule, scan_now
from tests.integration.support import Cli, Loans, book_line, day, eventually, workflow_exists
from workflows.commands import ScanPage
from workflows.scan import SCHEDULE_ID, DelinquencyScan, ScanInput
from workflows.types import TASK_QUEUE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _loan(loan_id: str, schedule: list[tuple[int, str, str]]) -> str:
    return json.dumps(book_line(loan_id, schedule)) + "\n"


@pytest.fixture
async def book(cli: Cli, pool: asyncpg.Pool, loans: Loans, tmp_path: Path) -> dict[str, str]:
    """A synced book of four loans: two past due, one not yet due, one paid up."""
    ids = {label: loans.new_id(f"scan-{label}") for label in ("late", "later", "ahead", "paid")}
    lines = [
        _loan(
            ids["late"], [(-40, "300.00", "300.00"), (-10, "300.00", "100.00"), (20, "300.00", "0")]
        ),
        _loan(ids["later"], [(-3, "300.00", "0"), (27, "300.00", "0")]),
        _loan(ids["ahead"], [(0, "300.00", "0"), (30, "300.00", "0")]),  # due today: DPD 0
        _loan(ids["paid"], [(-30, "300.00", "300.00")]),
    ]
    path = tmp_path / "book.jsonl"
    path.write_text("".join(lines))
    assert (await cli("loans", "sync", str(path), "--json")).code == 0
    yield ids
    await pool.execute("DELETE FROM book.loans WHERE loan_id = ANY($1)", list(ids.values()))


async def test_the_scan_starts_exactly_the_past_due_loans_once(
    client: Client, pool: asyncpg.Pool, worker: Worker, book: dict[str, str]
) -> None:
    # One loan a page: the scan continues-as-new after each, and its totals carry over.
    first = await client.execute_workflow(
        DelinquencyScan.run,
        ScanInput(page_size=1),
        id=f"scan-test-{book['late']}",
        task_queue=TASK_QUEUE,
    )
    assert first.examined >= 4 and first.pages >= 4
    for label in ("late", "later"):
        assert await workflow_exists(client, book[label]), label
    for label in ("ahead", "paid"):
        assert not await workflow_exists(client, book[label]), label

    # The collection owes what is overdue: the unpaid part of the past-due instalments.
    async def opened() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT outstanding_minor, due_date FROM loans WHERE loan_id = $1", book["late"]
        )

    late = await eventually(opened, what="the past-due loan opened in the ledger")
    assert (late["outstanding_minor"], late["due_date"].isoformat()) == (20_000, day(-10))

    again = await (await scan_now(client)).result()
    assert again.started == 0
    assert again.already_running >= 2


async def test_a_page_done_twice_starts_nothing_twice(
    client: Client, pool: asyncpg.Pool, worker: Worker, book: dict[str, str]
) -> None:
    # A crash after the page's starts and before the scan moved on: the page is done again.
    scanning = ScanActivities(pool, client)
    page = ScanPage(datetime.now(UTC), book["ahead"], 1)  # the page holding "late"
    done = await scanning.scan_page(page)
    redone = await scanning.scan_page(page)
    assert done.last_loan_id == redone.last_loan_id == book["late"]
    assert redone.started == 0
    assert redone.already_running == done.started + done.already_running == 1


async def test_up_makes_the_daily_schedule(client: Client, worker: Worker) -> None:
    assert await ensure_schedule(client, ScanTime(2, 0, "UTC")) in ("created", "updated")
    assert await ensure_schedule(client, ScanTime(3, 30, "America/New_York")) == "updated"
    described = await client.get_schedule_handle(SCHEDULE_ID).describe()
    [calendar] = described.schedule.spec.calendars
    assert (calendar.hour[0].start, calendar.minute[0].start) == (3, 30)
    assert described.schedule.spec.time_zone_name == "America/New_York"
    await client.get_schedule_handle(SCHEDULE_ID).delete()


async def test_scan_from_the_shell(cli: Cli, client: Client, book: dict[str, str]) -> None:
    done = await cli("scan", "--now", "--wait", "--json", timeout=120)
    assert done.code == 0, done
    report = done.json()
    assert report["workflow_id"].startswith("delinquency-scan-now-")
    assert report["examined"] >= 4
    assert await workflow_exists(client, book["later"])
    (await cli("scan", "--wait")).assert_user_error("wait")
    scheduled = await cli("scan", "--schedule", "--json")
    assert scheduled.code == 0, scheduled
    assert scheduled.json()["schedule_id"] == "overdue-delinquency-scan"
    assert len(scheduled.json()["next_runs"]) == 3
    await client.get_schedule_handle("overdue-delinquency-scan").delete()
