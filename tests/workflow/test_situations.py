"""Situations a conversation reveals, on the time-skipping server with the real worker.

Borrowers here never answer (persona ``never_answers``), so every change of course comes from a
reported ``contact_outcome``, as a collector or a dialer would report it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from overdue.institutions import SimulatedDeathRegistry
from tests.workflow.conftest import Loans
from tests.workflow.support import (
    DEADLINE,
    Handle,
    advance_to_dpd,
    audit,
    collecting,
    follow,
    loan_row,
    pay,
    poll_status,
    settled_by,
    status_of,
    wait_for_audit,
)
from workflows.collection import LoanCollection
from workflows.commands import DeathCheck, DeathCheckResult
from workflows.types import (
    ContactOutcome,
    DisputeResolution,
    Hardship,
    Loan,
    Promise,
    ReviewDecision,
)
from workflows.vocabulary import Review, Situation, SituationState, Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


def outcome(at: datetime, **facts: object) -> ContactOutcome:
    return ContactOutcome(
        outcome_id=f"O-{uuid.uuid4().hex}", source="collector:test", at=at, **facts
    )  # type: ignore[arg-type]


def day(loan: Loan, dpd: int) -> str:
    """The ISO date on which the loan is ``dpd`` days past due."""
    return (date.fromisoformat(loan.due_date) + timedelta(days=dpd)).isoformat()


async def report(env: WorkflowEnvironment, handle: Handle, **facts: object) -> ContactOutcome:
    sent = outcome(await env.get_current_time(), **facts)
    await handle.signal(LoanCollection.contact_outcome, sent)
    return sent


async def attempts_between(
    pool: asyncpg.Pool, loan_id: str, start: datetime, end: datetime, channels: tuple[str, ...]
) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM contact_attempts WHERE loan_id = $1 AND at_utc >= $2"
            " AND at_utc < $3 AND channel = ANY($4)",
            loan_id,
            start,
            end,
            list(channels),
        )
    )


async def wait_for_notices(pool: asyncpg.Pool, loan_id: str, count: int) -> list[str]:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        kinds = [
            r["kind"]
            for r in await pool.fetch(
                "SELECT kind FROM notices WHERE loan_id = $1 ORDER BY issued_at, notice_key",
                loan_id,
            )
        ]
        if len(kinds) >= count:
            return kinds
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {count} notices for {loan_id}, got {kinds}")
        await asyncio.sleep(0.05)


# --- promises ------------------------------------------------------------------------------


async def test_kept_promise_holds_outreach_then_resumes(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await report(time_env, handle, promise=Promise(20_000, day(loan, 3)))
    status = await poll_status(handle, lambda s: s.situation == SituationState.PROMISED)
    assert status.promise is not None and status.promise.amount_minor == 20_000
    assert status.next_action.at_utc is None  # nothing is planned while the promise stands

    await pay(time_env, handle, 20_000)
    # Kept, then outreach planned again: two steps of the workflow, so wait for both.
    status = await poll_status(
        handle, lambda s: s.promise is None and s.next_action.at_utc is not None
    )
    assert (status.situation, status.outreach) == (SituationState.NORMAL, Situation.CONTACTED)
    assert status.outstanding_minor == 30_000
    promise = await pool.fetchrow("SELECT * FROM promises WHERE loan_id = $1", loan.loan_id)
    assert promise["status"] == "kept"
    assert await audit(pool, loan.loan_id, "promise_broken_reported") == []


async def test_broken_promises_report_charge_and_escalate(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    first = day(loan, 1)
    await report(time_env, handle, promise=Promise(10_000, first))
    await poll_status(handle, lambda s: s.situation == SituationState.PROMISED)
    # Broken at the borrower's midnight after the date plus two days of grace: DPD 4.
    await advance_to_dpd(time_env, loan, 4)
    # The count moves first; the situation once the credit record and the fee are written.
    status = await poll_status(
        follow(time_env, loan),
        lambda s: s.broken_promises == 1 and s.outreach == Situation.PROMISE_BROKEN,
    )
    assert status.stage == Stage.EARLY

    credit = await pool.fetch("SELECT * FROM credit_records WHERE loan_id = $1", loan.loan_id)
    fees = await pool.fetch("SELECT * FROM fees WHERE loan_id = $1", loan.loan_id)
    assert [r["kind"] for r in credit] == ["broken_promise"]
    assert [(r["kind"], r["amount_minor"]) for r in fees] == [("failed_debit", 1500)]
    # The fee is owed: added to the amount in collection and to the whole balance, and shown.
    assert (status.fees_minor, status.outstanding_minor) == (1500, loan.outstanding_minor + 1500)
    assert status.total_outstanding_minor == loan.outstanding_minor + 1500
    ledger = await pool.fetchval(
        "SELECT outstanding_minor FROM loans WHERE loan_id = $1", loan.loan_id
    )
    assert ledger == loan.outstanding_minor + 1500

    # The second broken promise (the strategy's limit) escalates at once, ahead of the calendar.
    await report(time_env, follow(time_env, loan), promise=Promise(10_000, day(loan, 4)))
    await poll_status(follow(time_env, loan), lambda s: s.situation == SituationState.PROMISED)
    await advance_to_dpd(time_env, loan, 7)
    # Middle by the calendar at DPD 6, late by the promise (once its consequences are recorded).
    status = await poll_status(
        follow(time_env, loan), lambda s: s.broken_promises == 2 and s.stage == Stage.LATE
    )
    assert status.days_past_due < 19
    promises = await pool.fetch(
        "SELECT status FROM promises WHERE loan_id = $1 ORDER BY made_at", loan.loan_id
    )
    assert [r["status"] for r in promises] == ["broken", "broken"]


async def test_partial_payment_against_a_promise_is_partly_kept(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await report(time_env, handle, promise=Promise(30_000, day(loan, 1)))
    await poll_status(handle, lambda s: s.situation == SituationState.PROMISED)
    await pay(time_env, handle, 10_000)
    status = await poll_status(handle, lambda s: s.outstanding_minor == 40_000)
    assert status.promise is not None and status.promise.paid_minor == 10_000

    await advance_to_dpd(time_env, loan, 4)
    status = await poll_status(follow(time_env, loan), lambda s: s.broken_promises == 1)
    row = await pool.fetchrow("SELECT * FROM promises WHERE loan_id = $1", loan.loan_id)
    assert (row["status"], row["paid_minor"]) == ("partially_kept", 10_000)


# --- disputes and cease requests -------------------------------------------------------------


async def test_rejected_dispute_pauses_outreach_and_the_stage_clock(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    opened_at = await time_env.get_current_time()
    await report(time_env, handle, dispute=True)
    status = await poll_status(handle, lambda s: s.situation == SituationState.DISPUTED)
    assert status.next_action.at_utc is None

    # Ten days in dispute: past the middle boundary by the calendar, but collection is paused,
    # and the loan sleeps until the dispute is resolved (no wake, no stage change).
    await advance_to_dpd(time_env, loan, 11)
    status = await status_of(follow(time_env, loan))
    assert (status.stage, status.situation) == (Stage.EARLY, SituationState.DISPUTED)
    resolved_at = await time_env.get_current_time()
    assert await attempts_between(pool, loan.loan_id, opened_at, resolved_at, ("call", "sms")) == 0

    await follow(time_env, loan).signal(
        LoanCollection.dispute_resolved,
        DisputeResolution(f"R-{uuid.uuid4().hex}", upheld=False, at=resolved_at),
    )
    status = await poll_status(
        follow(time_env, loan),
        lambda s: s.situation != SituationState.DISPUTED and s.next_action.at_utc is not None,
    )
    assert status.stage == Stage.EARLY
    assert status.days_paused >= 9
    # The next boundary comes as many days later as the dispute lasted (DPD 6 + 10 paused).
    moment = await advance_to_dpd(time_env, loan, 14)
    status = await poll_status(follow(time_env, loan), settled_by(moment))
    assert status.stage == Stage.EARLY
    await advance_to_dpd(time_env, loan, 17)
    await poll_status(follow(time_env, loan), lambda s: s.stage == Stage.MIDDLE)


async def test_upheld_dispute_closes_the_loan(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await report(time_env, handle, dispute=True)
    await poll_status(handle, lambda s: s.situation == SituationState.DISPUTED)
    resolution = DisputeResolution(
        f"R-{uuid.uuid4().hex}", upheld=True, at=await time_env.get_current_time()
    )
    await handle.signal(LoanCollection.dispute_resolved, resolution)
    await handle.signal(LoanCollection.dispute_resolved, resolution)  # a duplicate is ignored
    summary = await handle.result()
    assert summary.final_stage == "dispute_upheld"
    assert (await loan_row(pool, loan.loan_id))["stage"] == "dispute_upheld"
    assert len(await audit(pool, loan.loan_id, "dispute_closed")) == 1


async def test_cease_request_stops_calls_and_messages_but_not_notices(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    ceased_at = await time_env.get_current_time()
    await report(time_env, handle, cease=True)
    await poll_status(handle, lambda s: s.situation == SituationState.CEASED)

    summary = await handle.result()  # runs to referral: the calendar still moves the stage
    assert summary.final_stage == Stage.REFERRED
    end = summary.ended_at + timedelta(days=1)
    assert await attempts_between(pool, loan.loan_id, ceased_at, end, ("call", "sms")) == 0
    notices = await pool.fetch("SELECT kind FROM notices WHERE loan_id = $1", loan.loan_id)
    assert [r["kind"] for r in notices] == ["legal_notice"]


# --- complaints, refusal, duplicates ---------------------------------------------------------


async def test_complaint_opens_a_routed_case_and_collection_goes_on(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    sent = await report(time_env, handle, complaint="collector_conduct", note="rude on the phone")
    await report(time_env, handle, complaint="collector_conduct")  # another case, another id
    await handle.signal(LoanCollection.contact_outcome, sent)  # the same outcome again: ignored
    await poll_status(
        handle, lambda s: len(s.complaint_cases) == 2 and s.next_action.at_utc is not None
    )
    cases = await pool.fetch(
        "SELECT category, route, status FROM complaint_cases WHERE loan_id = $1", loan.loan_id
    )
    assert [tuple(r) for r in cases] == [("collector_conduct", "compliance", "open")] * 2
    outcomes = await pool.fetchval(
        "SELECT count(*) FROM contact_outcomes WHERE loan_id = $1", loan.loan_id
    )
    assert outcomes == 2


async def test_wilful_refusal_gets_a_truthful_notice(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await report(time_env, handle, refusal=True)
    status = await poll_status(handle, lambda s: s.outreach == Situation.REFUSAL)
    notice = await pool.fetchrow(
        "SELECT path FROM notices WHERE loan_id = $1 AND kind = 'refusal_notice'", loan.loan_id
    )
    assert notice is not None
    text = Path(notice["path"]).read_text()
    assert "we will take no step that this notice does not describe" in text
    # The legal stage starts at DPD 29: the notice counts the days truthfully.
    assert f"in {29 - status.days_past_due} days it will reach our" in text
    entries = await wait_for_audit(pool, loan.loan_id, "contact_outcome", 1)
    assert json.dumps(entries[0]).count("refusal") >= 1


async def test_the_situation_label_follows_the_machine(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    # A code naming a situation the loan is not in does not show: the promise does.
    await report(
        time_env, handle, situation=Situation.HARDSHIP, promise=Promise(10_000, day(loan, 3))
    )
    status = await poll_status(handle, lambda s: s.promise is not None)
    assert status.situation == SituationState.PROMISED
    # A refusal in the same report as a dispute: the loan is disputed, and says so.
    await report(time_env, handle, dispute=True, refusal=True)
    await wait_for_audit(pool, loan.loan_id, "dispute_opened", 1)
    assert (await status_of(handle)).situation == SituationState.DISPUTED
    resolution = DisputeResolution(
        f"R-{uuid.uuid4().hex}", upheld=False, at=await time_env.get_current_time()
    )
    await handle.signal(LoanCollection.dispute_resolved, resolution)
    await poll_status(handle, lambda s: s.outreach == Situation.CONTACTED)


# --- deceased -------------------------------------------------------------------------------


async def decide(
    env: WorkflowEnvironment, handle: Handle, review: str, decided: str
) -> ReviewDecision:
    decision = ReviewDecision(
        decision_id=f"D-{uuid.uuid4().hex}",
        review=review,
        outcome=decided,
        by="ops:test",
        at=await env.get_current_time(),
    )
    await handle.signal(LoanCollection.review_decided, decision)
    return decision


async def test_verified_death_writes_to_the_estate_and_closes_as_a_claim(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    # The simulated registry confirms the deaths of "deceased-" borrowers.
    loan, handle = await loans.start_new(persona="deceased")
    await collecting(handle)
    reported_at = await time_env.get_current_time()
    await report(time_env, handle, death_reported_by="relative")
    status = await poll_status(handle, lambda s: s.situation in SituationState.DECEASED)
    assert status.next_action.at_utc is None
    notices = await wait_for_notices(pool, loan.loan_id, 2)
    assert notices == ["death_documents_request", "estate_inquiry"]
    inquiry = Path(
        await pool.fetchval(
            "SELECT path FROM notices WHERE loan_id = $1 AND kind = 'estate_inquiry'",
            loan.loan_id,
        )
    ).read_text()
    assert "No relative or other person is personally liable" in inquiry

    # Nothing reaches the borrower once the death is reported, even as the calendar moves on.
    await advance_to_dpd(time_env, loan, 30)
    until = await time_env.get_current_time()
    assert await attempts_between(pool, loan.loan_id, reported_at, until, ("call", "sms")) == 0
    # Waiting for a person, the loan sets no timer: its status is as of its last step (the DPD
    # there too), and nothing is to be waited for.
    status = await status_of(follow(time_env, loan))
    assert status.stage == Stage.EARLY  # collection is paused: no legal notice to the deceased

    await decide(time_env, follow(time_env, loan), Review.ESTATE, "estate_claim")
    summary = await follow(time_env, loan).result()
    assert summary.final_stage == "estate_claim"
    assert (await loan_row(pool, loan.loan_id))["stage"] == "estate_claim"


async def start_with_registry_answer(loans: Loans, answer: str) -> tuple[Loan, Handle]:
    """A new loan whose borrower's death the simulated registry answers with ``answer``.

    The simulated registry fixes its answer by the borrower id ("not verified" or "no record"
    for borrowers not named ``deceased-``): build loans until one draws ``answer``.
    """
    registry = SimulatedDeathRegistry()
    for _ in range(100):
        loan = await loans.build()
        probe = DeathCheck(
            check_key="probe",
            loan_id=loan.loan_id,
            borrower_id=loan.borrower.borrower_id,
            reported_by="test",
            reported_at=datetime.now(UTC),
        )
        if await registry.check(probe) == answer:
            return loan, await loans.start(loan)
    raise AssertionError(f"no borrower id drew {answer!r} from the simulated registry")


@pytest.mark.parametrize("decided", ["verified", "not_verified"])
async def test_a_registry_miss_waits_for_a_person_and_nothing_reaches_the_borrower(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans, decided: str
) -> None:
    # Registries lag: the registry's "not verified" does not overrule a report by family.
    loan, handle = await start_with_registry_answer(loans, DeathCheckResult.NOT_VERIFIED)
    await collecting(handle)
    reported_at = await time_env.get_current_time()
    await report(time_env, handle, death_reported_by="daughter")
    verification = await wait_for_audit(pool, loan.loan_id, "death_verification", 1)
    assert verification[0]["result"] == DeathCheckResult.NOT_VERIFIED
    await wait_for_audit(pool, loan.loan_id, "registry_not_verified", 1)
    status = await poll_status(handle, lambda s: s.situation == SituationState.DECEASED_REVIEW)
    assert status.next_action.at_utc is None  # waits for a person

    # It waits for as long as it takes, past the verification window, with nothing planned.
    await advance_to_dpd(time_env, loan, 20)
    status = await status_of(follow(time_env, loan))  # no timer: as of its last step
    assert (status.situation, status.next_action.at_utc) == (SituationState.DECEASED_REVIEW, None)
    assert status.stage == Stage.EARLY  # collection is paused
    until = await time_env.get_current_time()
    assert await attempts_between(pool, loan.loan_id, reported_at, until, ("call", "sms")) == 0
    assert await wait_for_notices(pool, loan.loan_id, 1) == ["death_documents_request"]
    assert await audit(pool, loan.loan_id, "death_not_verified") == []
    assert await audit(pool, loan.loan_id, "verification_overdue") == []

    await decide(time_env, follow(time_env, loan), Review.DEATH_VERIFICATION, decided)
    if decided == "verified":
        # On to the estate, by letter; still nothing to the borrower.
        notices = await wait_for_notices(pool, loan.loan_id, 2)
        assert notices == ["death_documents_request", "estate_inquiry"]
        status = await status_of(follow(time_env, loan))
        assert (status.situation, status.next_action.at_utc) == (
            SituationState.ESTATE_CONTACT,
            None,
        )
        until = await time_env.get_current_time()
        assert await attempts_between(pool, loan.loan_id, reported_at, until, ("call", "sms")) == 0
    else:
        # A person found it not verified: collection resumes.
        status = await poll_status(
            follow(time_env, loan),
            lambda s: s.outreach == Situation.CONTACTED and s.next_action.at_utc is not None,
        )
        assert len(await audit(pool, loan.loan_id, "death_not_verified")) == 1


async def test_no_registry_record_goes_to_a_person_after_the_verification_window(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await start_with_registry_answer(loans, DeathCheckResult.NO_RECORD)
    await collecting(handle)
    await report(time_env, handle, death_reported_by="neighbour")
    verification = await wait_for_audit(pool, loan.loan_id, "death_verification", 1)
    assert verification[0]["result"] == DeathCheckResult.NO_RECORD
    # No record: after the verification window a person decides.
    await advance_to_dpd(time_env, loan, 17)
    await wait_for_audit(pool, loan.loan_id, "verification_overdue", 1)
    await decide(time_env, follow(time_env, loan), Review.DEATH_VERIFICATION, "not_verified")
    status = await poll_status(follow(time_env, loan), lambda s: s.next_action.at_utc is not None)
    assert (status.situation, status.outreach) == (SituationState.NORMAL, Situation.CONTACTED)


# --- unable to pay --------------------------------------------------------------------------


async def test_short_term_hardship_plan_completed_settles_the_loan(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new(outstanding_minor=30_000)
    await collecting(handle)
    await report(time_env, handle, hardship=Hardship("short", "lost a shift"))
    status = await poll_status(handle, lambda s: s.arrangement is not None)
    plan = status.arrangement
    assert plan is not None and [i.amount_minor for i in plan.instalments] == [10_000] * 3
    for _ in plan.instalments:
        await pay(time_env, handle, 10_000)
    summary = await handle.result()
    assert summary.final_stage == Stage.CURED
    statuses = await pool.fetch(
        "SELECT status FROM promises WHERE loan_id = $1 ORDER BY due_date", loan.loan_id
    )
    assert [r["status"] for r in statuses] == ["kept", "kept", "kept"]


async def test_missed_instalment_is_a_broken_promise(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new(outstanding_minor=30_000)
    await collecting(handle)
    await report(time_env, handle, hardship=Hardship("short", "medical bills"))
    await poll_status(handle, lambda s: s.arrangement is not None)
    # First instalment due 7 days on, broken 2 days of grace later.
    await advance_to_dpd(time_env, loan, 11)
    # Counted, charged, the plan ended, outreach planned again: steps apart, so wait for all.
    await poll_status(
        follow(time_env, loan),
        lambda s: (
            s.broken_promises == 1 and s.arrangement is None and s.next_action.at_utc is not None
        ),
    )
    fees = await pool.fetchval("SELECT count(*) FROM fees WHERE loan_id = $1", loan.loan_id)
    assert fees == 1


async def test_long_term_hardship_review_then_forbearance_without_fees(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new(outstanding_minor=60_000)
    await collecting(handle)
    await report(time_env, handle, hardship=Hardship("long", "long-term illness"))
    status = await poll_status(handle, lambda s: s.situation == SituationState.HARDSHIP_REVIEW)
    assert status.next_action.at_utc is None  # held while a person reviews

    await decide(time_env, handle, Review.HARDSHIP, "approved")
    status = await poll_status(handle, lambda s: s.arrangement is not None)
    assert status.arrangement is not None
    assert status.arrangement.kind == "forbearance"
    assert [i.amount_minor for i in status.arrangement.instalments] == [10_000] * 6
    # Missing the first reduced instalment is a broken promise, with no fee under forbearance.
    await advance_to_dpd(time_env, loan, 11)
    # The plan ends after the broken promise is reported: only then is the fee (none) settled.
    await poll_status(
        follow(time_env, loan), lambda s: s.broken_promises == 1 and s.arrangement is None
    )
    fees = await pool.fetchval("SELECT count(*) FROM fees WHERE loan_id = $1", loan.loan_id)
    assert fees == 0


async def test_long_term_hardship_rejected_resumes_outreach(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    await report(time_env, handle, hardship=Hardship("long", "caring for a parent"))
    await poll_status(handle, lambda s: s.situation == SituationState.HARDSHIP_REVIEW)
    await decide(time_env, handle, Review.HARDSHIP, "rejected")
    status = await poll_status(
        handle,
        lambda s: s.outreach == Situation.CONTACTED and s.next_action.at_utc is not None,
    )
    assert status.arrangement is None
    assert len(await audit(pool, loan.loan_id, "forbearance_rejected")) == 1


async def test_estate_settles_by_payment_or_is_written_off(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    settled, settled_handle = await loans.start_new(persona="deceased")
    written, written_handle = await loans.start_new(persona="deceased")
    for handle in (settled_handle, written_handle):
        await collecting(handle)
        await report(time_env, handle, death_reported_by="spouse")
    await wait_for_notices(pool, settled.loan_id, 2)
    await wait_for_notices(pool, written.loan_id, 2)

    # A person writes one off. It is decided first: a loan waiting on a person has no timer,
    # and waiting on the other loan's result lets the test server skip time far ahead.
    await decide(time_env, written_handle, Review.ESTATE, "written_off")
    # A voluntary payment from the estate settles the other.
    await pay(time_env, settled_handle, 50_000)
    summary = await settled_handle.result()
    assert (summary.final_stage, summary.situation) == (Stage.CURED, SituationState.ESTATE_CONTACT)

    assert (await written_handle.result()).final_stage == "written_off"
    assert (await loan_row(pool, written.loan_id))["stage"] == "written_off"
