"""What payment services see: HTTP API latency, bank-file import, and the outbox under an outage.

    .venv/bin/python bench/payments.py [--loans 20] [--calls 200] [--lines 300]

On a throwaway embedded stack (dev server and PostgreSQL in a temporary data dir) with the
production worker in this process, it starts ``--loans`` quiet collections and measures:

- ``POST /v1/payments`` applied through the ``apply_payment`` update, one call at a time:
  p50, p95 and the slowest, over ``--calls`` calls (the app in process, through httpx);
- a bank file of ``--lines`` lines imported and applied, then the same file again (every line a
  duplicate);
- the same number of lines imported while Temporal is down (stored in the outbox, queued), then
  the relay draining them once Temporal is back;
- that the ledger holds each payment exactly once.

Everything shares the machine's cores: read the figures as this machine's, not a cluster's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import httpx
from temporalio.client import Client
from throwaway import throwaway_stack

from overdue.api import create_app
from overdue.bankfile import import_bank_file, read_bank_file
from overdue.client import start_collection
from overdue.config import Config
from overdue.connection import connect
from overdue.outbox import Outbox, TemporalClients
from overdue.stack import free_port
from overdue.worker import build_worker
from workflows.types import Borrower, Loan, workflow_id_for

T = TypeVar("T")
TOKEN = "bench-token-0123456789"
BALANCE_MINOR = 10_000_000  # large enough that no payment of the bench cures a loan


def _loan(loan_id: str) -> Loan:
    return Loan(
        loan_id=loan_id,
        borrower=Borrower(f"never_answers-{loan_id}", "Bench Borrower", "+15550100", "UTC"),
        product="personal",
        principal_minor=BALANCE_MINOR,
        outstanding_minor=BALANCE_MINOR,
        currency="USD",
        due_date=(datetime.now(UTC) - timedelta(days=1)).date().isoformat(),
        jurisdiction="us",
    )


def _bank_file(prefix: str, loans: list[str], lines: int) -> str:
    today = datetime.now(UTC).date()
    rows = [
        f"{prefix}-{uuid.uuid4().hex[:10]},{loans[n % len(loans)]},1.00,USD,{today}\n"
        for n in range(lines)
    ]
    return "payment_id,loan_id,amount,currency,paid_at\n" + "".join(rows)


async def _timed(work: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


async def _api_latency(client: Client, pool: asyncpg.Pool, loans: list[str], calls: int) -> None:
    async def provide() -> Client:
        return client

    app = create_app(provide, pool, TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    seconds = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        for n in range(calls):
            body = {
                "payment_id": f"API-{uuid.uuid4().hex[:10]}",
                "loan_id": loans[n % len(loans)],
                "amount": "1.00",
                "currency": "USD",
            }
            elapsed, response = await _timed(
                lambda body=body: http.post("/v1/payments", json=body, headers=headers)
            )
            assert response.status_code == 200, response.text
            seconds.append(elapsed)
    seconds.sort()
    p95 = seconds[int(len(seconds) * 0.95) - 1]
    print(
        f"POST /v1/payments applied, {calls} calls one at a time: p50"
        f" {statistics.median(seconds) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms,"
        f" slowest {seconds[-1] * 1000:.0f} ms"
    )


async def _bank_files(
    client: Client, pool: asyncpg.Pool, config: Config, loans: list[str], lines: int
) -> None:
    async def provide() -> Client:
        return client

    text = _bank_file("BANK", loans, lines)
    elapsed, report = await _timed(
        lambda: import_bank_file(Outbox(pool, provide), read_bank_file(text))
    )
    applied = len(report.applied)
    print(f"bank file, {lines} lines applied: {elapsed:.1f} s ({applied / elapsed:.0f} lines/s)")
    elapsed, report = await _timed(
        lambda: import_bank_file(Outbox(pool, provide), read_bank_file(text))
    )
    duplicates = len(report.duplicates)
    print(f"the same file again: {elapsed:.2f} s, {duplicates} duplicates, nothing applied")

    down = TemporalClients(replace(config, temporal_address=f"127.0.0.1:{free_port()}"))
    outage = _bank_file("OUTAGE", loans, lines)
    elapsed, report = await _timed(
        lambda: import_bank_file(Outbox(pool, down), read_bank_file(outage))
    )
    queued = len(report.queued)
    print(f"bank file, {lines} lines while Temporal is down: {elapsed:.2f} s, {queued} queued")

    # The relay would wait out each payment's backoff; the bench does not.
    await pool.execute("UPDATE payment_outbox SET next_attempt_at = now() WHERE status = 'pending'")
    relay, drained = Outbox(pool, provide), 0
    started = time.perf_counter()
    while delivered := await relay.deliver_due():
        drained += delivered
    elapsed = time.perf_counter() - started
    print(
        f"relay, Temporal back: {drained} payments in {elapsed:.1f} s ({drained / elapsed:.0f}/s)"
    )


async def main(loans_count: int, calls: int, lines: int) -> None:
    async with throwaway_stack() as (stack, pool):
        config = stack.running_config
        client = await connect(config)
        async with build_worker(client, pool, config):
            loans = [f"BENCH-{uuid.uuid4().hex[:6]}" for _ in range(loans_count)]
            for loan_id in loans:
                await start_collection(client, _loan(loan_id), day_seconds=600)
            while await pool.fetchval("SELECT count(*) FROM loans") < loans_count:
                await asyncio.sleep(0.2)
            await _api_latency(client, pool, loans, calls)
            await _bank_files(client, pool, config, loans, lines)
            held = await pool.fetchval("SELECT count(*) FROM payments")
            distinct = await pool.fetchval("SELECT count(DISTINCT payment_id) FROM payments")
            print(f"ledger: {held} payments, {distinct} distinct (expected {calls + 2 * lines})")
            for loan_id in loans:
                await client.get_workflow_handle(workflow_id_for(loan_id)).terminate("bench done")


if __name__ == "__main__":
    # One warning per payment queued during the outage is the relay's log, not the bench's.
    logging.getLogger("overdue.outbox").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--lines", type=int, default=300)
    options = parser.parse_args()
    asyncio.run(main(options.loans, options.calls, options.lines))
