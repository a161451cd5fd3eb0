"""The delinquency scan's activity: one page of the loan book, and what its collections are told.

A loan is delinquent when its oldest unpaid instalment is past due in the borrower's today (DPD 1
is the day after the due date, borrower-local). Its collection starts with the amount overdue
(the unpaid part of the past-due instalments) and the oldest unpaid due date. A loan whose
collection runs, and whose book version is newer than the one the collection was last told,
is told the new figures and the payments listed since (signal ``loan_changed``).

A loan whose collection ended is collected again only when it is overdue again: its collection
cured it, and its oldest unpaid instalment fell due after the day it was cured. The next
collection runs under the same workflow id, numbered in the ledger (``collections``). A loan
referred to legal, or closed in any other way, is never collected again by the scan.

Starting is idempotent by workflow id, and a collection takes a version once, so a page retried
after a crash starts nothing twice and changes nothing twice. What a page told is written last:
a crash before it only tells the same version again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from overdue import cases
from overdue.starts import STARTS_IN_FLIGHT, StartOutcome, start_all, start_collection
from workflows.collection import LoanCollection
from workflows.commands import ScanPage, ScanPageResult
from workflows.schedule import (
    CORE_SYSTEM,
    ScheduledInstalment,
    amount_overdue,
    is_delinquent,
    oldest_unpaid,
    outstanding,
)
from workflows.types import Borrower, Contact, Loan, LoanChanged, PaymentReceived, workflow_id_for


@dataclass
class BookEntry:
    """A loan of the page: as the book holds it, and what its collection was last told."""

    loan: Loan
    schedule: list[ScheduledInstalment]
    version: int
    told_version: int | None
    new_payments: list[PaymentReceived]  # listed since ``told_version``

    def today(self, as_of: datetime) -> str:
        return as_of.astimezone(ZoneInfo(self.loan.borrower.timezone)).date().isoformat()

    def change(self, as_of: datetime) -> LoanChanged:
        """What the loan's running collection is told."""
        today = datetime.fromisoformat(self.today(as_of)).date()
        oldest = oldest_unpaid(self.schedule)
        return LoanChanged(
            version=self.version,
            overdue_minor=amount_overdue(self.schedule, today),
            outstanding_minor=outstanding(self.schedule),
            oldest_unpaid_due=oldest.due_date if oldest is not None else None,
            payments=self.new_payments,
        )


class ScanActivities:
    """Reads the loan book, starts collections and tells running ones; holds the pool and a
    Temporal client."""

    def __init__(self, pool: asyncpg.Pool, client: Client) -> None:
        self._pool = pool
        self._client = client

    @activity.defn
    async def escalate_ended_cases(self, as_of: datetime) -> int:
        """Escalate the cases past their deadline whose collection has ended (a complaint that
        outlives a cured loan, or the loan's earlier collection): a running collection
        escalates its own. Returns how many."""
        return await cases.escalate_ended(self._pool, as_of)

    @activity.defn
    async def scan_page(self, page: ScanPage) -> ScanPageResult:
        """Start a collection for each delinquent loan of the page that has none running, and
        tell each running one what changed in the book since it was last told."""
        entries = await self._page(page.after_loan_id, page.page_size)
        delinquent = [
            e
            for e in entries
            if is_delinquent(e.schedule, datetime.fromisoformat(e.today(page.as_of)).date())
        ]
        outcomes = dict(
            zip(
                (e.loan.loan_id for e in delinquent),
                await start_all(self._client, [_collected(e, page.as_of) for e in delinquent]),
                strict=True,
            )
        )
        # Told: started from this version, or running and behind it. A loan that is not past
        # due any more is told only once a collection heard of it (to see its balance paid).
        behind = [
            e
            for e in entries
            if outcomes.get(e.loan.loan_id) != StartOutcome.STARTED
            and e.told_version != e.version
            and (
                outcomes.get(e.loan.loan_id) == StartOutcome.ALREADY_RUNNING
                or (e.loan.loan_id not in outcomes and e.told_version is not None)
            )
        ]
        told = await self._tell_all(behind, page.as_of)
        ended = [e for e in delinquent if outcomes[e.loan.loan_id] == StartOutcome.ALREADY_ENDED]
        again = await self._collect_again(ended, page.as_of)
        started = [e for e in entries if outcomes.get(e.loan.loan_id) == StartOutcome.STARTED]
        started += again
        await self._pool.executemany(
            "UPDATE book.loans SET told_version = $2 WHERE loan_id = $1",
            [(e.loan.loan_id, e.version) for e in [*started, *told]],
        )
        full = len(entries) == page.page_size
        values = list(outcomes.values())
        return ScanPageResult(
            last_loan_id=entries[-1].loan.loan_id if full else "",
            examined=len(entries),
            delinquent=len(delinquent),
            started=values.count(StartOutcome.STARTED),
            already_running=values.count(StartOutcome.ALREADY_RUNNING),
            already_ended=values.count(StartOutcome.ALREADY_ENDED),
            signalled=len(told),
            started_again=len(again),
        )

    async def _collect_again(self, ended: list[BookEntry], as_of: datetime) -> list[BookEntry]:
        """Start the next collection of each loan that is overdue again after a cure; the
        entries started (a retried page finds them running and starts nothing twice)."""
        if not ended:
            return []
        rows = {
            r["loan_id"]: r
            for r in await self._pool.fetch(
                "SELECT l.loan_id, l.stage, l.closed_at, max(c.number) AS number"
                " FROM loans l LEFT JOIN collections c USING (loan_id)"
                " WHERE l.loan_id = ANY($1) GROUP BY l.loan_id",
                [e.loan.loan_id for e in ended],
            )
        }
        again = []
        for entry in ended:
            row = rows.get(entry.loan.loan_id)
            if row is None or row["stage"] != "cured" or row["closed_at"] is None:
                continue
            cured_on = row["closed_at"].astimezone(ZoneInfo(entry.loan.borrower.timezone)).date()
            loan = _collected(entry, as_of)
            if date.fromisoformat(loan.due_date) <= cured_on:
                continue  # still the arrears the collection cured: the book is behind
            outcome = await start_collection(self._client, loan, number=(row["number"] or 1) + 1)
            if outcome == StartOutcome.STARTED:
                again.append(entry)
        return again

    async def _tell_all(self, entries: list[BookEntry], as_of: datetime) -> list[BookEntry]:
        """Send each running collection its loan's change, ``STARTS_IN_FLIGHT`` at a time;
        the entries whose collection took it (one that has ended is not told)."""
        limit = asyncio.Semaphore(STARTS_IN_FLIGHT)

        async def tell(entry: BookEntry) -> bool:
            handle = self._client.get_workflow_handle(workflow_id_for(entry.loan.loan_id))
            async with limit:
                try:
                    await handle.signal(LoanCollection.loan_changed, entry.change(as_of))
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        return False  # its collection ended: nothing runs to tell
                    raise
            return True

        told = await asyncio.gather(*(tell(e) for e in entries))
        return [e for e, taken in zip(entries, told, strict=True) if taken]

    async def _page(self, after_loan_id: str, size: int) -> list[BookEntry]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT l.loan_id, l.product, l.principal_minor, l.currency, l.jurisdiction,"
                " l.version, l.told_version, l.risk_score,"
                " b.borrower_id, b.name, b.phone, b.timezone, b.language"
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
            payments = await conn.fetch(
                "SELECT p.loan_id, p.payment_id, p.amount_minor, p.paid_at, l.currency"
                " FROM book.payments p JOIN book.loans l USING (loan_id)"
                " WHERE p.loan_id = ANY($1) AND p.first_version > coalesce(l.told_version, 0)"
                " ORDER BY p.loan_id, p.paid_at, p.payment_id",
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
        received: dict[str, list[PaymentReceived]] = defaultdict(list)
        for p in payments:
            received[p["loan_id"]].append(
                PaymentReceived(
                    p["payment_id"],
                    p["amount_minor"],
                    p["currency"].strip(),
                    p["paid_at"],
                    CORE_SYSTEM,
                )
            )
        return [
            BookEntry(
                loan=Loan(
                    loan_id=r["loan_id"],
                    borrower=Borrower(
                        r["borrower_id"], r["name"], r["phone"], r["timezone"], r["language"]
                    ),
                    product=r["product"],
                    principal_minor=r["principal_minor"],
                    outstanding_minor=0,  # set from the schedule when collected
                    currency=r["currency"].strip(),
                    due_date="",
                    jurisdiction=r["jurisdiction"],
                    contacts=references[r["loan_id"]],
                    risk_score=r["risk_score"],
                ),
                schedule=schedules[r["loan_id"]],
                version=r["version"],
                told_version=r["told_version"],
                new_payments=received[r["loan_id"]],
            )
            for r in rows
        ]


def _collected(entry: BookEntry, as_of: datetime) -> Loan:
    """The loan as its collection starts: owing what is overdue, due since the oldest unpaid
    instalment, with the whole balance beside it."""
    change = entry.change(as_of)
    assert change.oldest_unpaid_due is not None  # a delinquent loan has an unpaid instalment
    return replace(
        entry.loan,
        outstanding_minor=change.overdue_minor,
        total_outstanding_minor=change.outstanding_minor,
        due_date=change.oldest_unpaid_due,
    )
