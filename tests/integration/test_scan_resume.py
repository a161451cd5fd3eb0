"""The delinquency scan killed mid-page and resumed: its worker dies while a page's activity is in
flight, after that page's collections were started and before the page reported done; a fresh
worker finishes the same scan. Every past-due loan ends with one collection: none skipped, none
started twice, and the scan's totals add up."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

import overdue.worker
from activities.scan import ScanActivities
from overdue.config import Config
from overdue.loanbook import read_rows, sync
from overdue.worker import build_worker
from tests.integration.support import (
    DEADLINE,
    book_line,
    eventually,
    terminate_collections,
    workflow_exists,
)
from workflows.commands import ScanPage, ScanPageResult
from workflows.scan import DelinquencyScan, ScanInput
from workflows.types import TASK_QUEUE, workflow_id_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# Past every other test's loan ids ("it-", "BOOK-", "PUT-"...): a scan that starts after FLOOR
# pages through this module's loans only, so its totals can be checked exactly.
FLOOR = f"zz-resume-{uuid.uuid4().hex[:8]}"
PAGE_SIZE = 2
DYING, FRESH = "worker-that-dies", "fresh-worker"


# The book, in loan-id order, two loans a page: (label, schedule as (day, due, paid)).
BOOK = [
    ("a-late", [(-10, "300.00", "0")]),
    ("b-ahead", [(3, "300.00", "0")]),  # not due yet
    ("c-late", [(-40, "300.00", "300.00"), (-5, "300.00", "50.00")]),  # page 2: the crash
    ("d-late", [(-2, "300.00", "0"), (28, "300.00", "0")]),
    ("e-paid", [(-30, "300.00", "300.00")]),
    ("f-late", [(-1, "300.00", "0")]),
    ("g-late", [(-90, "300.00", "0")]),
]
LATE = [label for label, _ in BOOK if label.endswith("-late")]
CRASH_AFTER = f"{FLOOR}-b-ahead"  # the page after this loan dies mid-flight


def _line(label: str, schedule: list[tuple[int, str, str]]) -> str:
    return json.dumps(book_line(f"{FLOOR}-{label}", schedule))


@pytest.fixture
async def book(pool: asyncpg.Pool, client: Client, tmp_path: Path) -> AsyncIterator[list[str]]:
    """The book above, synced as `overdue loans sync` syncs a file; its loan ids."""
    path = tmp_path / "book.jsonl"
    path.write_text("\n".join(_line(label, schedule) for label, schedule in BOOK) + "\n")
    report = await sync(pool, read_rows(path))
    assert (report.counts["added"], report.errors) == (len(BOOK), []), report
    ids = [f"{FLOOR}-{label}" for label, _ in BOOK]
    yield ids
    await terminate_collections(client, ids)
    await pool.execute("DELETE FROM book.loans WHERE loan_id = ANY($1)", ids)


class DyingPage:
    """The scan's page activity on a worker about to die: the page after ``crash_after`` makes
    its starts, then hangs until its worker is shut down, so it never reports done."""

    def __init__(self, real: ScanActivities, crash_after: str) -> None:
        self._real = real
        self._crash_after = crash_after
        self.in_flight = asyncio.Event()
        self.lost: ScanPageResult | None = None  # what the page did before its worker died

    @activity.defn(name="scan_page")
    async def scan_page(self, page: ScanPage) -> ScanPageResult:
        done = await self._real.scan_page(page)
        if page.after_loan_id != self._crash_after:
            return done
        self.lost = done
        self.in_flight.set()
        await asyncio.Event().wait()  # the worker is shut down here: cancelled, never done
        raise AssertionError("unreachable: the worker was shut down")

    @activity.defn(name="escalate_ended_cases")
    async def escalate_ended_cases(self, as_of: datetime) -> int:
        return await self._real.escalate_ended_cases(as_of)


def _dying_worker(client: Client, pool: asyncpg.Pool, config: Config, page: DyingPage) -> Worker:
    """The production worker, but for its page activity."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(overdue.worker, "ScanActivities", lambda *_: page)
        return build_worker(client, pool, config, identity=DYING)


async def _chain(client: Client, workflow_id: str) -> list[str]:
    """The runs of the workflow id's latest chain, newest first: each run's history says which
    run it continued (read from histories, not from the eventually consistent visibility)."""
    runs: list[str] = []
    run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    while run_id:
        runs.append(run_id)
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events():
            run_id = event.workflow_execution_started_event_attributes.continued_execution_run_id
            break
    return runs


async def _page_attempts(client: Client, scan_id: str) -> list[tuple[str, int, str, str]]:
    """Each page activity over every run of the scan: (after_loan_id, attempt, worker identity,
    the failure of the attempt before). The history keeps the last attempt's start only."""
    attempts = []
    for run_id in await _chain(client, scan_id):
        handle = client.get_workflow_handle(scan_id, run_id=run_id)
        scheduled: dict[int, str] = {}
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name != "scan_page":
                    continue  # the sweep of ended collections' cases, at the scan's end
                [payload] = attributes.input.payloads
                scheduled[event.event_id] = json.loads(payload.data)["after_loan_id"]
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                if started.scheduled_event_id not in scheduled:
                    continue
                attempts.append(
                    (
                        scheduled[started.scheduled_event_id],
                        started.attempt,
                        started.identity,
                        started.last_failure.message,
                    )
                )
    return attempts


async def _fresh_starts(client: Client, workflow_id: str) -> int:
    """How many runs of the workflow id were started by a client rather than continued from
    another run (a collection continues-as-new as its stage changes)."""
    chain = await _chain(client, workflow_id)

    async def listed() -> list[str] | None:
        # Every run the server lists, once it lists at least the latest chain's.
        runs = [r.run_id async for r in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        return runs if set(chain) <= set(runs) else None

    fresh = 0
    for run_id in await eventually(listed, what=f"every run of {workflow_id} listed"):
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events():
            started = event.workflow_execution_started_event_attributes
            fresh += not started.continued_execution_run_id
            break
    return fresh


async def test_a_scan_killed_mid_page_resumes_and_starts_each_late_loan_once(
    client: Client, pool: asyncpg.Pool, config: Config, book: list[str]
) -> None:
    dying = DyingPage(ScanActivities(pool, client), CRASH_AFTER)
    first = _dying_worker(client, pool, config, dying)
    running = asyncio.create_task(first.run())
    scan_id = f"scan-resume-{FLOOR}"
    handle = await client.start_workflow(
        DelinquencyScan.run,
        ScanInput(after_loan_id=FLOOR, page_size=PAGE_SIZE),
        id=scan_id,
        task_queue=TASK_QUEUE,
    )
    await asyncio.wait_for(dying.in_flight.wait(), DEADLINE)
    # The page's collections are started, its result not yet reported: the worker dies.
    await first.shutdown()
    await running
    assert dying.lost is not None and dying.lost.started == 2, dying.lost

    async with build_worker(client, pool, config, identity=FRESH):
        totals = await asyncio.wait_for(handle.result(), DEADLINE)

        attempts = await _page_attempts(client, scan_id)
        # The interrupted page ran again, on the fresh worker, after its first attempt failed
        # with its worker; each page of the book ran to the end once.
        by_page = {
            after: (attempt, identity, failure) for after, attempt, identity, failure in attempts
        }
        assert len(by_page) == len(attempts), attempts
        assert sorted(by_page) == sorted([FLOOR, *book[PAGE_SIZE - 1 :: PAGE_SIZE]]), attempts
        attempt, identity, failure = by_page[CRASH_AFTER]
        assert (attempt, identity) == (2, FRESH), attempts
        assert "shutting down" in failure, attempts

        # Totals over the runs that finished: the lost attempt's starts are counted once, as
        # already running when the page was done again.
        assert (totals.pages, totals.examined) == (4, len(BOOK)), totals
        assert totals.delinquent == len(LATE), totals
        assert totals.started + totals.already_running == len(LATE), totals
        assert totals.already_running == dying.lost.started, totals
        assert totals.already_ended == 0, totals

        for loan_id in book:
            late = loan_id.removeprefix(f"{FLOOR}-") in LATE
            assert await workflow_exists(client, loan_id) == late, loan_id
            if not late:
                continue
            assert await _fresh_starts(client, workflow_id_for(loan_id)) == 1, loan_id

            async def opened(loan_id: str = loan_id) -> int:
                return int(
                    await pool.fetchval("SELECT count(*) FROM loans WHERE loan_id = $1", loan_id)
                )

            assert await eventually(opened, what=f"{loan_id} in the ledger") == 1, loan_id
