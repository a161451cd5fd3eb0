"""``DelinquencyScan``: the daily pass over the loan book that starts and updates collections.

A Temporal Schedule (``overdue-delinquency-scan``, made by ``overdue up``) runs it every day, and
``overdue scan --now`` runs it at once. It pages through the loan book by loan id; for each page
an activity starts a collection for every loan whose oldest unpaid instalment is past due in the
borrower's own today, and has none running, and tells each running collection what changed in
the book since it was last told (``activities.scan``). Starting is idempotent (the collection's
workflow id is the loan's), and a collection takes each version once, so a page done twice
starts nothing twice and changes nothing twice.

The scan continues-as-new after every page with its cursor and totals: its history stays small
however large the book, a crash resumes at the page it was on (neither skipping a loan nor
starting one twice), and its current details in the Web UI show how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.commands import ScanPage, ScanPageResult

with workflow.unsafe.imports_passed_through():
    from activities.scan import ScanActivities

SCAN_WORKFLOW_TYPE = "DelinquencyScan"
SCHEDULE_ID = "overdue-delinquency-scan"
PAGE_SIZE = 500
# Patch: the scan ends by escalating the cases whose collection has ended (a complaint that
# outlives a cured loan, or the loan's earlier collection) once past their deadline; a running
# collection escalates its own.
ESCALATE_ENDED_CASES = "escalate-ended-cases"
# A page starts at most PAGE_SIZE collections, 32 at a time: minutes at worst.
PAGE_TIMEOUT = timedelta(minutes=10)


@dataclass
class ScanTotals:
    """What the scan did so far, over every page."""

    pages: int = 0
    examined: int = 0
    delinquent: int = 0
    started: int = 0
    already_running: int = 0
    already_ended: int = 0
    signalled: int = 0
    started_again: int = 0
    # Cases of ended collections escalated past their deadline, at the scan's end.
    escalated: int = 0


@dataclass
class ScanInput:
    """Where the scan stands: the moment it judges delinquency at (its first run's start, so
    every page judges by one today), the last loan id done, and the totals so far."""

    as_of: datetime | None = None
    after_loan_id: str = ""
    totals: ScanTotals = field(default_factory=ScanTotals)
    page_size: int = PAGE_SIZE


def add(totals: ScanTotals, page: ScanPageResult) -> ScanTotals:
    return replace(
        totals,
        pages=totals.pages + 1,
        examined=totals.examined + page.examined,
        delinquent=totals.delinquent + page.delinquent,
        started=totals.started + page.started,
        already_running=totals.already_running + page.already_running,
        already_ended=totals.already_ended + page.already_ended,
        signalled=totals.signalled + page.signalled,
        started_again=totals.started_again + page.started_again,
    )


def progress(totals: ScanTotals, as_of: datetime) -> str:
    """The scan's current details in the Web UI."""
    return (
        f"**Delinquency scan** as of {as_of:%Y-%m-%d %H:%M} UTC · page {totals.pages}\n"
        f"{totals.examined} loans examined, {totals.delinquent} past due: {totals.started}"
        f" collections started, {totals.already_running} already running,"
        f" {totals.already_ended} ended before ({totals.started_again} overdue again after a"
        f" cure: collected again); {totals.signalled} running collections told of a change;"
        f" {totals.escalated} cases of ended collections escalated"
    )


@workflow.defn(name=SCAN_WORKFLOW_TYPE)
class DelinquencyScan:
    """Starts a collection for every loan of the book that is past due and has none running."""

    @workflow.run
    async def run(self, input: ScanInput) -> ScanTotals:
        as_of = input.as_of or workflow.now()
        workflow.set_current_details(progress(input.totals, as_of))
        page = await workflow.execute_activity_method(
            ScanActivities.scan_page,
            ScanPage(as_of, input.after_loan_id, input.page_size),
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"page after {input.after_loan_id or 'the start'}",
        )
        totals = add(input.totals, page)
        workflow.set_current_details(progress(totals, as_of))
        if not page.last_loan_id:
            if workflow.patched(ESCALATE_ENDED_CASES):
                totals.escalated = await workflow.execute_activity_method(
                    ScanActivities.escalate_ended_cases,
                    as_of,
                    start_to_close_timeout=PAGE_TIMEOUT,
                    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
                    summary="escalate the cases of ended collections past their deadline",
                )
                workflow.set_current_details(progress(totals, as_of))
            return totals
        workflow.continue_as_new(
            replace(input, as_of=as_of, after_loan_id=page.last_loan_id, totals=totals)
        )
