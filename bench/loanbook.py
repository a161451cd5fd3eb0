"""`overdue loans sync` at loan-book scale: lines per second, and memory flat with file size.

    .venv/bin/python bench/loanbook.py [--loans 10000] [--small 1000]

On a throwaway embedded stack (PostgreSQL in a temporary data dir), it writes a JSON Lines book
of ``--loans`` loans with twelve monthly instalments each (written as it goes, never held), and
syncs it: the first time every loan is added, the second time every loan is unchanged. The
Python heap's peak during each sync (``tracemalloc``) is printed beside the same for a book of
``--small`` loans: a sync streams, so the two peaks are alike whatever the file's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from throwaway import throwaway_stack

from overdue.loanbook import SyncReport, read_rows, sync


def write_book(path: Path, loans: int) -> None:
    run, today = uuid.uuid4().hex[:6], datetime.now(UTC).date()
    with path.open("w") as file:
        for n in range(loans):
            first_due = today - timedelta(days=300 - n % 90)
            schedule = [
                {
                    "due_date": (first_due + timedelta(days=30 * k)).isoformat(),
                    "amount_due": "100.00",
                    "amount_paid": "100.00" if k < 6 else "0",
                }
                for k in range(12)
            ]
            loan = {
                "loan_id": f"BOOK-{run}-{n}",
                "borrower_id": f"BB-{run}-{n // 3}",  # three loans per borrower
                "borrower_name": "Bench Borrower",
                "phone": f"+1202555{n % 10_000:04d}",
                "timezone": "America/New_York",
                "product": "personal",
                "principal": "1200.00",
                "currency": "USD",
                "jurisdiction": "us",
                "version": 1,
                "schedule": schedule,
            }
            file.write(json.dumps(loan) + "\n")


async def timed_sync(pool: object, path: Path) -> tuple[SyncReport, float, float]:
    tracemalloc.start()
    started = time.perf_counter()
    report = await sync(pool, read_rows(path))  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return report, seconds, peak / 2**20


async def main(loans: int, small: int) -> None:
    async with throwaway_stack(pool_size=4) as (stack, pool):
        for count in (small, loans):
            path = stack.config.home / f"book-{count}.jsonl"
            write_book(path, count)
            size = path.stat().st_size / 2**20
            for label in ("first sync", "again"):
                report, seconds, peak = await timed_sync(pool, path)
                print(
                    f"{count:>6} loans ({size:.1f} MiB), {label:<10}: {seconds:6.1f} s,"
                    f" {count / seconds:6.0f} lines/s, heap peak {peak:5.1f} MiB,"
                    f" {report.counts}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    options = parser.parse_args()
    asyncio.run(main(options.loans, options.small))
