"""The Web UI as a collections console, on the time-skipping server with the real worker.

The console attributes (``Currency``, ``OutstandingAmount``, ``OnHold``, ``LegalNoticeAt``,
``Outreach``), the machine's situation names, and every run telling the whole story: a run that
continued as new or closed shows no next contact, and the newest run's details list the stages,
payments and notices of the runs before it.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.api.common.v1 import SearchAttributes, WorkflowExecution
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.common import TypedSearchAttributes
from temporalio.converter import decode_typed_search_attributes
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import (
    collecting,
    eventually,
    follow,
    pay,
    poll_status,
    reach_stage,
    run_ids,
)
from workflows import search_attributes as sa
from workflows.collection import LoanCollection
from workflows.collection.rules import OUTREACH_LABELS
from workflows.types import HoldRequest, workflow_id_for
from workflows.vocabulary import SituationState, Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


async def attributes_of(
    env: WorkflowEnvironment, loan_id: str, run_id: str
) -> TypedSearchAttributes:
    """One run's search attributes, an unset one dropped (the Java test server keeps it as a
    null payload, which ``describe()`` cannot decode: ``support.stored_search_attributes``)."""
    raw = await env.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=env.client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id_for(loan_id), run_id=run_id),
        )
    )
    kept = SearchAttributes()
    for name, value in raw.workflow_execution_info.search_attributes.indexed_fields.items():
        if value.metadata.get("encoding") != b"binary/null":
            kept.indexed_fields[name].CopyFrom(value)
    return decode_typed_search_attributes(kept)


async def details_of(env: WorkflowEnvironment, loan_id: str, run_id: str) -> str:
    """A run's current details, as the Web UI reads them (a closed run's, by replaying it)."""
    handle = env.client.get_workflow_handle(workflow_id_for(loan_id), run_id=run_id)
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def test_console_attributes_are_published_and_follow_a_hold(
    time_env: WorkflowEnvironment, loans: Loans
) -> None:
    loan, handle = await loans.start_new(outstanding_minor=123_456, currency="USD")
    status = await collecting(handle)
    assert (status.situation, status.outreach) == (SituationState.NORMAL, "none")

    async def published() -> TypedSearchAttributes | None:
        attributes = await attributes_of(
            time_env, loan.loan_id, handle.first_execution_run_id or ""
        )
        return attributes if attributes.get(sa.ON_HOLD) is not None else None

    attributes = await eventually(published, what="the console attributes")
    assert attributes.get(sa.CURRENCY) == "USD"
    assert attributes.get(sa.OUTSTANDING_AMOUNT) == 1234.56
    assert attributes.get(sa.OUTSTANDING_MINOR) == 123_456
    assert attributes.get(sa.ON_HOLD) is False
    assert attributes.get(sa.SITUATION) == SituationState.NORMAL
    assert attributes.get(sa.OUTREACH) == "none"
    assert attributes.get(sa.LEGAL_NOTICE_AT) is None  # nothing served yet

    await handle.execute_update(
        LoanCollection.pause_collection, HoldRequest(reason="fraud check", operator="ops:ann")
    )

    async def held() -> bool:
        attributes = await attributes_of(
            time_env, loan.loan_id, handle.first_execution_run_id or ""
        )
        return attributes.get(sa.ON_HOLD) is True

    await eventually(held, what="OnHold set")
    await handle.execute_update(LoanCollection.resume_collection, HoldRequest(operator="ops:ann"))

    async def resumed() -> bool:
        attributes = await attributes_of(
            time_env, loan.loan_id, handle.first_execution_run_id or ""
        )
        return attributes.get(sa.ON_HOLD) is False

    await eventually(resumed, what="OnHold cleared")
    await pay(time_env, handle, 23_456)
    await poll_status(handle, lambda s: s.outstanding_minor == 100_000)

    async def paid_down() -> bool:
        attributes = await attributes_of(
            time_env, loan.loan_id, handle.first_execution_run_id or ""
        )
        return attributes.get(sa.OUTSTANDING_AMOUNT) == 1000.0

    await eventually(paid_down, what="OutstandingAmount after a payment")


async def test_every_run_tells_the_whole_story(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    # Through every stage to a referral: one run per stage, the legal notice served in the last.
    loan, handle = await loans.start_new()
    summary = await handle.result()
    assert summary.final_stage == Stage.REFERRED
    assert summary.situation == SituationState.NORMAL
    assert summary.outreach in OUTREACH_LABELS

    runs = await run_ids(time_env, loan, handle.first_execution_run_id or "")
    assert len(runs) == 4  # early, middle, late, legal
    for run in runs[:-1]:
        # A run that handed over shows no next contact that it will never make.
        attributes = await attributes_of(time_env, loan.loan_id, run)
        assert attributes.get(sa.NEXT_CONTACT_AT) is None, run
        details = await details_of(time_env, loan.loan_id, run)
        assert "**Next** none · continued as new" in details, details

    last = runs[-1]
    attributes = await attributes_of(time_env, loan.loan_id, last)
    assert attributes.get(sa.NEXT_CONTACT_AT) is None
    notice = await pool.fetchrow(
        "SELECT notice_key, sha256, issued_at FROM notices WHERE loan_id = $1", loan.loan_id
    )
    assert notice is not None
    served_at: datetime = attributes.get(sa.LEGAL_NOTICE_AT)  # type: ignore[assignment]
    assert served_at == notice["issued_at"]
    assert attributes.get(sa.CURRENCY) == loan.currency
    assert attributes.get(sa.OUTSTANDING_AMOUNT) == 500.0

    # The newest run's details tell the story of every run, with dates and no letter's text.
    details = await details_of(time_env, loan.loan_id, last)
    lines = details.splitlines()
    assert lines[0].startswith(f"Loan {loan.loan_id} · "), "the summary comes first"
    assert "**Next** none · closed: referred" in details
    zone = ZoneInfo(loan.borrower.timezone)
    stages = next(line for line in lines if line.startswith("**Stages** "))
    assert [part.split()[0] for part in stages.removeprefix("**Stages** ").split(" → ")] == [
        "early",
        "middle",
        "late",
        "legal",
        "referred",
    ]
    notices = next(line for line in lines if line.startswith("**Notices** "))
    assert f"legal_notice {served_at.astimezone(zone):%Y-%m-%d}" in notices
    assert f"overdue notice show {loan.loan_id} legal_notice" in notices
    assert loan.borrower.name not in details


async def test_status_lists_the_notices_served_with_their_hash(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await pay(time_env, handle, 10_000)  # a payment in the story

    # Run to the legal stage: its notice is served on entry.
    await reach_stage(time_env, loan, Stage.LEGAL)
    status = await poll_status(follow(time_env, loan), lambda s: bool(s.served_notices))
    row = await pool.fetchrow(
        "SELECT notice_key, kind, sha256, issued_at FROM notices WHERE loan_id = $1", loan.loan_id
    )
    assert row is not None
    [served] = status.served_notices
    assert (served.notice_key, served.kind, served.sha256, served.served_at) == (
        row["notice_key"],
        row["kind"],
        row["sha256"],
        row["issued_at"],
    )
    details = await details_of(time_env, loan.loan_id, "")
    assert "**Payments** 1 · recovered 100.00 USD" in details
