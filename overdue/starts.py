"""Starting a loan's collection: one way for the CLI, the demo and the delinquency scan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes as sa
from workflows.collection import LoanCollection
from workflows.collection.view import loan_summary
from workflows.money import to_major
from workflows.types import TASK_QUEUE, CollectionInput, Loan, workflow_id_for
from workflows.vocabulary import Stage


class StartOutcome:
    STARTED = "started"
    ALREADY_RUNNING = "already_running"
    ALREADY_ENDED = "already_ended"  # completed (cured or referred): not collected again


async def start_collection(
    client: Client,
    loan: Loan,
    *,
    day_seconds: float | None = None,
    clock_origin: datetime | None = None,
    number: int = 1,
) -> str:
    """Start a loan's collection; returns a ``StartOutcome``.

    On a compressed clock (``day_seconds``), loans started with one ``clock_origin`` share one
    collection time, which the borrower-level budget needs to compare their contacts.

    The workflow id is the loan's, and a running collection is never duplicated; a loan whose
    earlier collection failed or was terminated may be started again, one that completed may
    not, unless as its next collection (``number`` above 1: the loan fell overdue again after a
    cure, which only the delinquency scan decides).
    """
    try:
        await client.start_workflow(
            LoanCollection.run,
            CollectionInput(
                loan=loan, day_seconds=day_seconds, clock_origin=clock_origin, number=number
            ),
            id=workflow_id_for(loan.loan_id),
            task_queue=TASK_QUEUE,
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
                if number == 1
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE
            ),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=loan_summary(loan),
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.LOAN_ID, loan.loan_id),
                    SearchAttributePair(sa.COLLECTION_STAGE, Stage.EARLY),
                    SearchAttributePair(sa.OUTSTANDING_MINOR, loan.outstanding_minor),
                    SearchAttributePair(
                        sa.TOTAL_OUTSTANDING_AMOUNT,
                        to_major(
                            loan.total_outstanding_minor or loan.outstanding_minor, loan.currency
                        ),
                    ),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        if await _status(client, loan.loan_id) == WorkflowExecutionStatus.RUNNING:
            return StartOutcome.ALREADY_RUNNING
        return StartOutcome.ALREADY_ENDED
    return StartOutcome.STARTED


async def _status(client: Client, loan_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id_for(loan_id)).describe()).status
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


# Collections started at once by a bulk start: enough to keep the server busy, few enough that
# a large book does not crowd out the collections already running.
STARTS_IN_FLIGHT = 32


async def start_all(
    client: Client,
    loans: Iterable[Loan],
    *,
    day_seconds: float | None = None,
    on_started: Callable[[Loan, str], None] | None = None,
) -> list[str]:
    """Start each loan's collection, ``STARTS_IN_FLIGHT`` at a time; the ``StartOutcome`` of
    each, in order. ``on_started`` is called as each one is done (a progress bar).

    Loans are taken from ``loans`` only as starts finish: an iterator that reads a file streams
    through in flat memory, however many loans it holds.
    """
    taken = enumerate(loans)  # one iterator shared by the starters: each takes the next loan
    outcomes: dict[int, str] = {}

    async def starter() -> None:
        for n, loan in taken:
            outcomes[n] = await start_collection(client, loan, day_seconds=day_seconds)
            if on_started is not None:
                on_started(loan, outcomes[n])

    await asyncio.gather(*(starter() for _ in range(STARTS_IN_FLIGHT)))
    return [outcomes[n] for n in range(len(outcomes))]
