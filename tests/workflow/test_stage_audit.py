"""Every stage a loan enters has its audit entry, also when a payment lands as a stage starts.

On the time-skipping server with the real activities and PostgreSQL. The payment reaches the
server while the workflow task that moves the loan to middle is still running (the simulator's
borrowers pay from inside a call, which a lean history makes in that same task). That task ends
in continue-as-new, which the server refuses while a signal it has not seen is waiting, and the
task runs again with the payment first: the loan is cured in early instead. Whatever the task's
first attempt wrote to the ledger must not stand for a change the loan never made, nor take the
place of the cure's entry.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from activities.ledger import LedgerActivities
from overdue.config import Config
from overdue.replay import HistoryReplayer
from overdue.report.ledger import stage_disagreements
from tests.workflow.conftest import Loans
from tests.workflow.support import (
    advance_to_dpd,
    audit,
    collecting,
    current_time,
    eventually,
    loan_row,
    payment,
    run_ids,
)
from tests.workflow.test_plan_checks import own_worker, start_on
from workflows.collection import LoanCollection
from workflows.commands import StageChange
from workflows.types import workflow_id_for
from workflows.vocabulary import Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_a_payment_as_the_middle_stage_starts_leaves_every_stage_change_audited(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, config: Config
) -> None:
    queue = f"stage-audit-{uuid.uuid4().hex}"
    loans = Loans(time_env)
    loan = await loans.build(persona="never_answers")
    original = LedgerActivities(pool).record_stage_change
    paid: list[str] = []

    @activity.defn(name="record_stage_change")
    async def pay_as_middle_starts(change: StageChange) -> None:
        # The borrower pays the whole balance just as the stage changes: the signal is stored by
        # the server before the write, while the workflow task that asked for it still runs.
        if change.to_stage == Stage.MIDDLE and not paid:
            received = payment(loan.outstanding_minor, await current_time(time_env))
            paid.append(received.payment_id)
            handle = time_env.client.get_workflow_handle(workflow_id_for(loan.loan_id))
            await handle.signal(LoanCollection.payment_received, received)
        await original(change)

    async with own_worker(
        time_env, pool, config, queue, replace={"record_stage_change": pay_as_middle_starts}
    ):
        handle = await start_on(time_env, loan, queue)
        loans.started.append(handle.id)
        try:
            await collecting(handle)
            await advance_to_dpd(time_env, loan, 6)
            summary = await time_env.client.get_workflow_handle_for(
                LoanCollection.run, workflow_id_for(loan.loan_id)
            ).result()
        finally:
            await loans.cleanup()
        assert handle.first_execution_run_id is not None
        runs = [
            await time_env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            for run_id in await run_ids(time_env, loan, handle.first_execution_run_id)
        ]

    assert paid, "the loan never reached the middle stage"
    assert summary.final_stage == Stage.CURED
    row = await loan_row(pool, loan.loan_id)
    assert row["stage"] == Stage.CURED
    assert row["closed_at"] is not None
    changes = await eventually(
        lambda: audit(pool, loan.loan_id, "stage_changed"), what="stage changes"
    )
    # The ledger tells the workflow's story: each stage it entered, in order, and nothing else.
    # ``resolved_in`` is the last open stage the workflow itself entered.
    told = [change["to"] for change in changes]
    assert told[-1] == Stage.CURED, f"the cure has no audit entry: {changes}"
    assert told.count(Stage.CURED) == 1
    entered = [Stage.EARLY, *told]
    open_stages = [stage for stage in entered if stage in Stage.OPEN]
    assert open_stages[-1] == summary.resolved_in, (
        f"the audit log shows stages the workflow never entered: {changes}, resolved in"
        f" {summary.resolved_in}"
    )
    for before, change in zip(entered, changes, strict=False):
        assert change["from"] == before, changes
    # The ledger's own check (``overdue simulate`` runs it on every simulated loan) agrees.
    assert await stage_disagreements(pool, [loan.loan_id]) == []
    # And the history, with its payment at the stage's start, replays on the current code.
    results = await HistoryReplayer().replay_all((history, "server", None) for history in runs)
    assert [r.error for r in results if not r.ok] == []
