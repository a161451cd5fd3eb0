"""The delinquency scan's activity: one page of the loan book, and the collections it calls for.

A loan is delinquent when its oldest unpaid instalment is past due in the borrower's today (DPD 1
is the day after the due date, borrower-local). Its collection starts with the amount overdue
(the unpaid part of the past-due instalments) and the oldest unpaid due date. Starting is
idempotent by workflow id, so a page retried after a crash starts nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity
from temporalio.client import Client

from overdue.starts import StartOutcome, start_all
from workflows.commands import ScanPage, ScanPageResult
from workflows.schedule import ScheduledInstalment, amount_overdue, is_delinquent, oldest_unpaid
from workflows.types import Borrower, Contact, Loan


class ScanActivities:
    """Reads the loan book and starts collections; holds the pool and a Temporal client."""

    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self._pool = pool
        self._client = client

    @activity.defn
    async def scan_page(self, page: ScanPage) -> ScanPageResult:
        """Start a collection for each delinquent loan of the page that has none running."""
        loans = await self._page(page.after_loan_id, page.page_size)
        delinquent = [
            _collected(loan, schedule, page.as_of)
            for loan, schedule in loans
            if is_delinquent(
                schedule, page.as_of.astimezone(ZoneInfo(loan.borrower.timezone)).date()
            )
        ]
        outcomes = await start_all(self._client, delinquent)
        full = len(loans) == page.page_size
        return ScanPageResult(
            last_loan_id=loans[-1][0].loan_id if full else "",
            examined=len(loans),
            delinquent=len(delinquent),
            started=outcomes.count(StartOutcome.STARTED),
            already_running=outcomes.count(StartOutcome.ALREADY_RUNNING),
            already_ended=outcomes.count(StartOutcome.ALREADY_ENDED),
        )

    async def _page(
        self, after_loan_id: str, size: int
    ) -> list[tuple[Loan, list[ScheduledInstalment]]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT l.loan_id, l.product, l.principal_minor, l.currency, l.jurisdiction,"
                " b.borrower_id, b.name, b.phone, b.timezone"
                " FROM book.loans l JOIN book.borrowers b USING (borrower_id)"
                " WHERE l.loan_id > $1 ORDER BY l.loan_id LIMIT $2",
                after_loan_id,
                size,
            )
            ids = [r["loan_id"] for r in rows]
            instalments = await conn.fetch(
                "SELECT loan_id, due_date::text, amount_due_minor, amount_paid_minor"
                " FROM book.instalments WHERE loan_id = ANY($1) ORDER BY loan_id, seq",
                ids,
            )
            contacts = await conn.fetch(
                "SELECT loan_id, contact_id, name, phone, relation FROM book.contacts"
                " WHERE loan_id = ANY($1) ORDER BY loan_id, contact_id",
                ids,
            )
        schedules: dict[str, list[ScheduledInstalment]] = defaultdict(list)
        for i in instalments:
            schedules[i["loan_id"]].append(
                ScheduledInstalment(i["due_date"], i["amount_due_minor"], i["amount_paid_minor"])
            )
        references: dict[str, list[Contact]] = defaultdict(list)
        for c in contacts:
            references[c["loan_id"]].append(
                Contact(c["contact_id"], c["name"], c["phone"], c["relation"])
            )
        return [
            (
                Loan(
                    loan_id=r["loan_id"],
                    borrower=Borrower(r["borrower_id"], r["name"], r["phone"], r["timezone"]),
                    product=r["product"],
                    principal_minor=r["principal_minor"],
                    outstanding_minor=0,  # set from the schedule when collected
                    currency=r["currency"].strip(),
                    due_date="",
                    jurisdiction=r["jurisdiction"],
                    contacts=references[r["loan_id"]],
                ),
                schedules[r["loan_id"]],
            )
            for r in rows
        ]


def _collected(loan: Loan, schedule: list[ScheduledInstalment], as_of: datetime) -> Loan:
    """The loan as its collection starts: owing what is overdue, due since the oldest unpaid
    instalment."""
    today = as_of.astimezone(ZoneInfo(loan.borrower.timezone)).date()
    oldest = oldest_unpaid(schedule)
    assert oldest is not None  # a delinquent loan has an unpaid instalment
    return replace(
        loan, outstanding_minor=amount_overdue(schedule, today), due_date=oldest.due_date
    )
