"""A portfolio arriving: the start rate beside raw Temporal, and a full delinquency scan.

    .venv/bin/python bench/portfolio.py [--loans 10000] [--overdue 3000] [--starts 2000]
        [--collections-first] [--starts-without-worker] [--blocks 1] [--no-scan]

On a throwaway embedded stack (dev server and PostgreSQL in a temporary data dir) with the
production worker in this process:

- **Start rate.** ``--starts`` collections started by ``overdue.starts.start_all`` (32 in
  flight, the bulk start of ``overdue import`` and the scan), beside as many raw
  ``start_workflow`` calls of a workflow no worker runs, with the same concurrency, on the same
  server, in the same run: what the collection's start adds to Temporal's own. The raw starts
  go first, on a fresh server; ``--collections-first`` swaps the order, to see what the order
  itself is worth. The worker runs in this process, so the collections' first workflow tasks
  compete with their own starts for the interpreter and the cores; ``--starts-without-worker``
  times both kinds of start before the worker is up (each collection then waits for it), which
  leaves the start call itself. On a shared machine the load changes within the half-minute
  each kind takes: ``--blocks N`` splits the starts into N blocks and alternates the two kinds
  block by block (the order flipping every block), so that both see the same load.
- **A full scan.** A loan book of ``--loans`` loans, of which ``--overdue`` are past due, synced
  in, then one ``DelinquencyScan`` over it: its wall time, pages, and collections started.
  ``--no-scan`` measures the start rate alone.

Everything shares the machine's cores: read the figures as this machine's, not a cluster's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client
from throwaway import throwaway_stack

from overdue.connection import connect
from overdue.loanbook import read_rows, sync
from overdue.starts import STARTS_IN_FLIGHT, start_all
from overdue.worker import build_worker
from workflows.scan import DelinquencyScan, ScanInput
from workflows.types import TASK_QUEUE, Borrower, Loan, workflow_id_for

QUIET_DAY_SECONDS = 86_400.0  # real time: nothing falls due during the bench


def _loan(loan_id: str) -> Loan:
    return Loan(
        loan_id=loan_id,
        borrower=Borrower(f"never_answers-{loan_id}", "Bench Borrower", "+12025550100", "UTC"),
        product="personal",
        principal_minor=100_000,
        outstanding_minor=50_000,
        currency="USD",
        due_date=(datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
        jurisdiction="us",
    )


async def _raw_starts(client: Client, count: int) -> float:
    limit = asyncio.Semaphore(STARTS_IN_FLIGHT)
    run = uuid.uuid4().hex[:6]

    async def start(n: int) -> None:
        async with limit:
            await client.start_workflow(
                "RawNoop", id=f"raw-{run}-{n}", task_queue=f"raw-{run}", args=[]
            )

    started = time.perf_counter()
    await asyncio.gather(*(start(n) for n in range(count)))
    seconds = time.perf_counter() - started
    for n in range(count):
        await client.get_workflow_handle(f"raw-{run}-{n}").terminate("bench done")
    return seconds


async def _start_rate(client: Client, count: int, collections_first: bool, blocks: int) -> None:
    loans = [_loan(f"START-{uuid.uuid4().hex[:6]}-{n}") for n in range(count)]
    size = -(-count // blocks)
    raw = ours = 0.0
    outcomes: list[str] = []
    for block in range(blocks):
        chunk = loans[block * size : (block + 1) * size]
        if not chunk:
            break
        # The order flips every block (ABBA...): a load that drifts during the run weighs on
        # both kinds of start alike.
        ours_first = collections_first == (block % 2 == 0)
        if not ours_first:
            raw += await _raw_starts(client, len(chunk))
        started = time.perf_counter()
        outcomes += await start_all(client, chunk, day_seconds=QUIET_DAY_SECONDS)
        ours += time.perf_counter() - started
        if ours_first:
            raw += await _raw_starts(client, len(chunk))
    print(
        f"start rate, {count} workflows, {STARTS_IN_FLIGHT} in flight:"
        f" raw Temporal {count / raw:.0f}/s, collections {count / ours:.0f}/s"
        f" ({raw / ours:.0%} of raw; {outcomes.count('started')} started;"
        f" {'collections' if collections_first else 'raw'} first, {blocks} block(s))"
    )
    for loan in loans:
        await client.get_workflow_handle(workflow_id_for(loan.loan_id)).terminate("bench done")


def _write_book(path: Path, loans: int, overdue: int) -> None:
    run, today = uuid.uuid4().hex[:6], datetime.now(UTC).date()
    with path.open("w") as file:
        for n in range(loans):
            # Past due by 1 to 20 days, or next due in 1 to 20 days.
            offset = -(1 + n % 20) if n < overdue else 1 + n % 20
            loan = {
                "loan_id": f"BOOK-{run}-{n:06d}",
                "borrower_id": f"never_answers-{run}-{n}",
                "borrower_name": "Bench Borrower",
                "phone": f"+1202555{n % 10_000:04d}",
                "timezone": "America/New_York",
                "product": "personal",
                "principal": "600.00",
                "currency": "USD",
                "jurisdiction": "us",
                "schedule": [
                    {
                        "due_date": (today + timedelta(days=offset)).isoformat(),
                        "amount_due": "300.00",
                    },
                    {
                        "due_date": (today + timedelta(days=offset + 30)).isoformat(),
                        "amount_due": "300.00",
                    },
                ],
            }
            file.write(json.dumps(loan) + "\n")


async def _full_scan(client: Client, pool: object, home: Path, loans: int, overdue: int) -> None:
    path = home / "book.jsonl"
    _write_book(path, loans, overdue)
    started = time.perf_counter()
    report = await sync(pool, read_rows(path))  # type: ignore[arg-type]
    print(f"sync of {loans} loans: {time.perf_counter() - started:.1f} s, {report.counts}")
    started = time.perf_counter()
    totals = await client.execute_workflow(
        DelinquencyScan.run,
        ScanInput(),
        id=f"bench-scan-{uuid.uuid4().hex[:6]}",
        task_queue=TASK_QUEUE,
    )
    print(
        f"scan of {loans} loans ({overdue} past due): {time.perf_counter() - started:.1f} s,"
        f" {totals.pages} pages, {totals.started} collections started"
    )


async def main(options: argparse.Namespace) -> None:
    async with throwaway_stack() as (stack, pool):
        config = stack.running_config
        client = await connect(config)
        if options.starts_without_worker:
            await _start_rate(client, options.starts, options.collections_first, options.blocks)
        async with build_worker(client, pool, config):
            if not options.starts_without_worker:
                await _start_rate(client, options.starts, options.collections_first, options.blocks)
            if options.scan:
                await _full_scan(client, pool, config.home, options.loans, options.overdue)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--overdue", type=int, default=3_000)
    parser.add_argument("--starts", type=int, default=2_000)
    parser.add_argument(
        "--collections-first", action="store_true", help="time the collections' starts first"
    )
    parser.add_argument(
        "--starts-without-worker",
        action="store_true",
        help="time the starts before the worker is up: the start call alone",
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=1,
        help="time the starts in this many blocks, alternating raw and collections (1)",
    )
    parser.add_argument("--no-scan", dest="scan", action="store_false", help="start rate only")
    asyncio.run(main(parser.parse_args()))
