"""``LoanCollection`` end to end: the real worker on the time-skipping server, a real PostgreSQL.

Borrowers are simulated (``never_answers-`` borrowers never answer and never pay), so every payment
here is one the test signals itself. Tests move the shared clock forward only by sleeping in the
environment, from a due date relative to the environment's current time.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import (
    BANDS,
    advance_to_dpd,
    advance_to_local,
    audit,
    collecting,
    follow,
    loan_row,
    pay,
    payment,
    payment_rows,
    poll_status,
    reach_stage,
    run_ids,
    status_of,
    stored_search_attributes,
    wait_for_audit,
)
from workflows import clock
from workflows import search_attributes as sa
from workflows.collection import LoanCollection
from workflows.vocabulary import Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

REFERRAL_AFTER_DAYS = 10
WINDOWS = {"us": (time(8, 0), time(21, 0)), "cn": (time(8, 0), time(22, 0))}
JURISDICTIONS = [
    pytest.param("America/New_York", "us", "USD", id="us"),
    pytest.param("Asia/Shanghai", "cn", "CNY", id="cn"),
]


# --- stages --------------------------------------------------------------------------------


@pytest.mark.parametrize(("timezone", "jurisdiction", "currency"), JURISDICTIONS)
async def test_stages_advance_with_days_past_due_until_referral(
    time_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    loans: Loans,
    timezone: str,
    jurisdiction: str,
    currency: str,
) -> None:
    loan, handle = await loans.start_new(
        timezone=timezone, jurisdiction=jurisdiction, currency=currency
    )
    status = await collecting(handle)
    assert (status.stage, status.outstanding_minor) == (Stage.EARLY, 50_000)
    assert (await loan_row(pool, loan.loan_id))["stage"] == Stage.EARLY

    previous = Stage.EARLY
    for number, (stage, dpd) in enumerate(BANDS.items(), start=1):
        status = await reach_stage(time_env, loan, stage)
        assert status.days_past_due == dpd
        # The status moves first, the ledger when the change is recorded (row and audit at once).
        changes = await wait_for_audit(pool, loan.loan_id, "stage_changed", number)
        assert (await loan_row(pool, loan.loan_id))["stage"] == stage
        assert len(changes) == number
        assert (
            changes[-1]
            == {
                "from": previous,
                "to": stage,
                "days_past_due": dpd,  # the workflow wakes at the borrower-local midnight of the boundary
                "outstanding_minor": 50_000,
            }
        )
        previous = stage

    summary = await handle.result()
    assert summary.final_stage == Stage.REFERRED
    assert summary.resolved_in == Stage.LEGAL
    assert summary.outstanding_minor == 50_000
    assert summary.payments == 0
    assert summary.notices == [f"{loan.loan_id}:legal_notice"]

    row = await loan_row(pool, loan.loan_id)
    assert row["stage"] == Stage.REFERRED
    assert row["closed_at"] is not None
    changes = await audit(pool, loan.loan_id, "stage_changed")
    assert [(c["from"], c["to"]) for c in changes] == [
        ("early", "middle"),
        ("middle", "late"),
        ("late", "legal"),
        ("legal", "referred"),
    ]
    legal_at = await pool.fetchval(
        "SELECT at FROM audit_log WHERE loan_id = $1 AND action = 'stage_changed' AND details->>'to' = 'legal'",
        loan.loan_id,
    )
    referred_at = legal_at + timedelta(days=REFERRAL_AFTER_DAYS)
    assert changes[-1]["days_past_due"] == clock.days_past_due(
        loan.due_date, referred_at, ZoneInfo(timezone)
    )

    # Each stage asked for its own outreach: the early reminder, then the firm message in late.
    messages = await pool.fetch(
        "SELECT purpose, stage FROM contact_attempts WHERE loan_id = $1 AND channel = 'sms'"
        " AND purpose IN ('early_reminder', 'late_firm') ORDER BY attempt_no",
        loan.loan_id,
    )
    assert [(m["purpose"], m["stage"]) for m in messages] == [
        ("early_reminder", "early"),
        ("late_firm", "late"),
    ]


# --- payments ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [Stage.EARLY, Stage.MIDDLE, Stage.LATE, Stage.LEGAL])
async def test_payment_in_full_cures_the_loan(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans, stage: str
) -> None:
    loan, handle = await loans.start_new()
    status = await reach_stage(time_env, loan, stage)

    paid = await pay(time_env, handle, status.outstanding_minor)
    summary = await handle.result()

    assert summary.final_stage == Stage.CURED
    assert summary.resolved_in == stage
    assert summary.outstanding_minor == 0
    assert summary.recovered_minor == 50_000
    assert summary.payments == 1
    rows = await payment_rows(pool, loan.loan_id)
    assert [(r["payment_id"], r["amount_minor"], r["stage"]) for r in rows] == [
        (paid.payment_id, 50_000, stage)
    ]
    row = await loan_row(pool, loan.loan_id)
    assert (row["stage"], row["outstanding_minor"]) == (Stage.CURED, 0)
    assert row["closed_at"] is not None
    changes = await audit(pool, loan.loan_id, "stage_changed")
    assert (changes[-1]["from"], changes[-1]["to"]) == (stage, Stage.CURED)
    assert len(await audit(pool, loan.loan_id, "payment_applied")) == 1


async def test_partial_payment_lowers_the_balance_without_curing(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)

    first = await pay(time_env, handle, 20_000)
    status = await poll_status(handle, lambda s: s.outstanding_minor != 50_000)
    await wait_for_audit(pool, loan.loan_id, "payment_applied", 1)
    assert status.outstanding_minor == 30_000
    assert status.recovered_minor == 20_000
    assert status.stage == Stage.EARLY
    assert status.applied_payment_ids == [first.payment_id]
    row = await loan_row(pool, loan.loan_id)
    assert (row["stage"], row["outstanding_minor"]) == (Stage.EARLY, 30_000)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    # The rest of the balance cures it.
    await pay(time_env, handle, 30_000)
    summary = await handle.result()
    assert (summary.final_stage, summary.resolved_in) == (Stage.CURED, Stage.EARLY)
    assert (summary.payments, summary.recovered_minor) == (2, 50_000)
    assert len(await payment_rows(pool, loan.loan_id)) == 2


async def test_duplicate_payment_is_applied_once(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)

    now = await time_env.get_current_time()
    twice = payment(20_000, now)
    # Back to back: the second signal may land while the first one's ledger write is in flight.
    await handle.signal(LoanCollection.payment_received, twice)
    await handle.signal(LoanCollection.payment_received, twice)
    # Signals are handled in order: once this probe is rejected, both copies have been seen.
    await handle.signal(LoanCollection.payment_received, payment(0, now, payment_id="probe-1"))
    await wait_for_audit(pool, loan.loan_id, "payment_rejected", 1)
    status = await poll_status(handle, lambda s: s.outstanding_minor != 50_000)

    assert status.outstanding_minor == 30_000
    assert status.recovered_minor == 20_000
    assert status.applied_payment_ids == [twice.payment_id]
    assert len(await payment_rows(pool, loan.loan_id)) == 1
    assert (await loan_row(pool, loan.loan_id))["outstanding_minor"] == 30_000

    # Once more, well after it was applied: still ignored.
    await handle.signal(LoanCollection.payment_received, twice)
    await handle.signal(LoanCollection.payment_received, payment(0, now, payment_id="probe-2"))
    await wait_for_audit(pool, loan.loan_id, "payment_rejected", 2)
    status = await status_of(handle)
    assert (status.outstanding_minor, status.applied_payment_ids) == (30_000, [twice.payment_id])

    await pay(time_env, handle, 30_000)
    summary = await handle.result()
    assert (summary.final_stage, summary.payments, summary.recovered_minor) == (
        Stage.CURED,
        2,
        50_000,
    )
    rows = await payment_rows(pool, loan.loan_id)
    assert sorted(r["amount_minor"] for r in rows) == [20_000, 30_000]
    assert len(await audit(pool, loan.loan_id, "payment_applied")) == 2


async def test_payment_id_recorded_on_another_loan_is_rejected_not_fatal(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    _first, first_handle = await loans.start_new()
    second, second_handle = await loans.start_new()
    await collecting(first_handle)
    await collecting(second_handle)
    now = await time_env.get_current_time()
    shared = payment(10_000, now, payment_id=f"shared-{uuid.uuid4().hex}")

    await first_handle.signal(LoanCollection.payment_received, shared)
    await poll_status(first_handle, lambda s: s.outstanding_minor == 40_000)
    # The ledger holds the id for the first loan: the second refuses it and keeps collecting.
    await second_handle.signal(LoanCollection.payment_received, shared)
    rejected = await wait_for_audit(pool, second.loan_id, "payment_rejected", 1)
    assert "already recorded" in json.dumps(rejected)
    status = await status_of(second_handle)
    assert (status.outstanding_minor, status.applied_payment_ids) == (50_000, [])
    assert (await second_handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert len(await payment_rows(pool, second.loan_id)) == 0


async def test_continue_as_new_at_stage_boundary_keeps_applied_payments(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    first_run = (await handle.describe()).run_id
    assert first_run == handle.first_execution_run_id

    early = await pay(time_env, handle, 10_000)
    await poll_status(handle, lambda s: s.applied_payment_ids == [early.payment_id])

    status = await reach_stage(time_env, loan, Stage.MIDDLE)
    assert status.outstanding_minor == 40_000
    assert status.applied_payment_ids == [early.payment_id]  # carried into the new run
    current = await follow(time_env, loan).describe()
    assert current.run_id != first_run
    assert await run_ids(time_env, loan, first_run) == [first_run, current.run_id]
    assert current.status == WorkflowExecutionStatus.RUNNING

    # The payment service re-sends the early payment after the boundary: the new run ignores it.
    now = await time_env.get_current_time()
    await handle.signal(
        LoanCollection.payment_received, payment(10_000, now, payment_id=early.payment_id)
    )
    await handle.signal(LoanCollection.payment_received, payment(0, now, payment_id="probe"))
    await wait_for_audit(pool, loan.loan_id, "payment_rejected", 1)
    status = await status_of(handle)
    assert (status.outstanding_minor, status.applied_payment_ids) == (40_000, [early.payment_id])
    assert len(await payment_rows(pool, loan.loan_id)) == 1

    await pay(time_env, handle, 40_000)
    summary = await handle.result()
    assert (summary.final_stage, summary.resolved_in) == (Stage.CURED, Stage.MIDDLE)
    assert (summary.payments, summary.recovered_minor) == (2, 50_000)
    assert [(r["stage"], r["amount_minor"]) for r in await payment_rows(pool, loan.loan_id)] == [
        (Stage.EARLY, 10_000),
        (Stage.MIDDLE, 40_000),
    ]


async def test_invalid_payments_are_rejected_and_audited(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)

    wrong_currency = await pay(time_env, handle, 50_000, currency="EUR")
    zero = await pay(time_env, handle, 0)
    negative = await pay(time_env, handle, -500)
    rejected = await wait_for_audit(pool, loan.loan_id, "payment_rejected", 3)

    assert [(r["payment_id"], r["amount_minor"], r["currency"]) for r in rejected] == [
        (wrong_currency.payment_id, 50_000, "EUR"),
        (zero.payment_id, 0, "USD"),
        (negative.payment_id, -500, "USD"),
    ]
    assert "currency" in rejected[0]["reason"]
    assert all("amount" in r["reason"] for r in rejected[1:])
    status = await status_of(handle)
    assert (status.outstanding_minor, status.recovered_minor, status.applied_payment_ids) == (
        50_000,
        0,
        [],
    )
    assert status.stage == Stage.EARLY
    assert await payment_rows(pool, loan.loan_id) == []
    assert (await loan_row(pool, loan.loan_id))["outstanding_minor"] == 50_000
    assert await audit(pool, loan.loan_id, "payment_applied") == []

    # The collection goes on: a valid payment still cures it.
    await pay(time_env, handle, 50_000)
    summary = await handle.result()
    assert (summary.final_stage, summary.payments) == (Stage.CURED, 1)


# --- legal notice and contact rules --------------------------------------------------------


@pytest.mark.parametrize(("timezone", "jurisdiction", "currency"), JURISDICTIONS)
async def test_legal_notice_is_filed_and_contacts_respect_the_window(
    time_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    loans: Loans,
    timezone: str,
    jurisdiction: str,
    currency: str,
) -> None:
    loan, handle = await loans.start_new(
        timezone=timezone, jurisdiction=jurisdiction, currency=currency
    )
    summary = await handle.result()
    assert summary.final_stage == Stage.REFERRED

    notices = await pool.fetch("SELECT * FROM notices WHERE loan_id = $1", loan.loan_id)
    assert len(notices) == 1
    notice = notices[0]
    assert notice["notice_key"] == f"{loan.loan_id}:legal_notice"
    assert notice["kind"] == "legal_notice"
    letter = Path(notice["path"])
    assert letter.is_file()
    assert hashlib.sha256(letter.read_bytes()).hexdigest() == notice["sha256"]
    text = letter.read_text()
    assert loan.loan_id in text
    # In the borrower's language, the jurisdiction's by default: a cn borrower's is Chinese.
    if jurisdiction == "cn":
        assert "人民币500.00元" in text
        assert "逾期天数" in text and "29天" in text
    else:
        assert f"500.00 {currency}" in text
        assert "Days past due:    29" in text
    served = await audit(pool, loan.loan_id, "notice_served")
    assert served == [{"kind": "legal_notice", "sha256": notice["sha256"]}]

    attempts = await pool.fetch(
        "SELECT channel, target, at_utc, at_local, stage FROM contact_attempts WHERE loan_id = $1",
        loan.loan_id,
    )
    calls = [a for a in attempts if a["channel"] == "call"]
    assert calls, "a borrower who never answers is called"
    zone = ZoneInfo(timezone)
    opens, closes = WINDOWS[jurisdiction]
    for attempt in attempts:
        local = attempt["at_utc"].astimezone(zone)
        assert attempt["at_local"] == clock.format_local(attempt["at_utc"], zone)
        hour, minute = map(int, attempt["at_local"].split()[1].split(":"))
        assert opens <= time(hour, minute) < closes, (
            f"{attempt['channel']} at {attempt['at_local']}"
        )
        assert opens <= local.time() < closes
        assert attempt["stage"] in (Stage.EARLY, Stage.MIDDLE, Stage.LATE)
    # References are asked once each, and only after the borrower could not be reached.
    references = [a["target"] for a in attempts if a["target"] == "contact"]
    assert len(references) <= len(loan.contacts)


# --- search attributes ---------------------------------------------------------------------


async def test_search_attributes_follow_the_stage(
    time_env: WorkflowEnvironment, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)

    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.LOAN_ID) == loan.loan_id
    assert attributes.get(sa.COLLECTION_STAGE) == Stage.EARLY
    assert attributes.get(sa.OUTSTANDING_MINOR) == 50_000

    await reach_stage(time_env, loan, Stage.MIDDLE)
    # The new stage's first call is planned a step after the stage changes: wait for it.
    await poll_status(follow(time_env, loan), lambda s: s.next_action.at_utc is not None)
    attributes = (await follow(time_env, loan).describe()).typed_search_attributes
    assert attributes.get(sa.LOAN_ID) == loan.loan_id
    assert attributes.get(sa.COLLECTION_STAGE) == Stage.MIDDLE
    assert attributes.get(sa.DAYS_PAST_DUE) == BANDS[Stage.MIDDLE]
    assert attributes.get(sa.NEXT_CONTACT_AT) is not None  # a call is planned

    # Closed: the stage says so, and no contact is planned any more.
    await pay(time_env, handle, 50_000)
    assert (await handle.result()).final_stage == Stage.CURED
    attributes = await stored_search_attributes(time_env, loan)
    assert attributes.get(sa.LOAN_ID) == loan.loan_id
    assert attributes.get(sa.COLLECTION_STAGE) == Stage.CURED
    assert attributes.get(sa.OUTSTANDING_MINOR) == 0
    assert attributes.get(sa.NEXT_CONTACT_AT) is None


async def test_every_attempt_records_the_planner_decision(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    # Borrower-local night, whatever the hour the suite runs at: the loan starts at 02:00 on
    # Kiritimati, so its first message waits for the window, and the audit says so.
    await advance_to_local(time_env, "Pacific/Kiritimati", 2)
    loan, handle = await loans.start_new(timezone="Pacific/Kiritimati")
    await collecting(handle)
    await advance_to_dpd(time_env, loan, 3)
    entries = await wait_for_audit(pool, loan.loan_id, "contact_attempt", 1)
    planner_said = entries[0]["planner"]
    assert planner_said["allowed_at"]
    assert any(d.startswith("window until ") for d in planner_said["deferred_by"]), planner_said
