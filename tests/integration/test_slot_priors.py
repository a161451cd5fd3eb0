"""``load_slot_priors`` against a real PostgreSQL: the jurisdiction's answer rates by slot, and
the borrower's own earlier calls, counted from the ledger's contact attempts.

The attempts are put in 2031, a window no other test writes in, so the counts are this test's.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from activities.ledger import LedgerActivities
from activities.slots import SlotActivities
from tests.phones import unique_phone
from workflows import slots
from workflows.commands import LoadSlotPriors, OpenLoan
from workflows.types import Borrower, Loan

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

AS_OF = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)
SLOTS = ["morning", "midday", "afternoon", "evening"]


async def open_loan(pool: asyncpg.Pool, jurisdiction: str, borrower_id: str) -> Loan:
    loan = Loan(
        loan_id=f"prior-{uuid.uuid4().hex[:10]}",
        borrower=Borrower(borrower_id, "Ann Lee", unique_phone(), "Asia/Shanghai"),
        product="personal",
        principal_minor=100_000,
        outstanding_minor=50_000,
        currency="CNY",
        due_date="2031-05-01",
        jurisdiction=jurisdiction,
    )
    await LedgerActivities(pool).open_loan(OpenLoan(loan, AS_OF - timedelta(days=40)))
    return loan


async def attempt(
    pool: asyncpg.Pool,
    loan: Loan,
    number: int,
    slot: str,
    outcome: str,
    *,
    at: datetime,
    channel: str = "call",
    target: str = "borrower",
) -> None:
    await pool.execute(
        "INSERT INTO contact_attempts (idempotency_key, loan_id, attempt_no, channel, target,"
        " target_id, slot, purpose, stage, at_utc, at_local, outcome, borrower_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 'reminder', 'early', $8, '', $9, $10)",
        f"{loan.loan_id}:attempt:{number}",
        loan.loan_id,
        number,
        channel,
        target,
        loan.borrower.borrower_id if target == "borrower" else "c-1",
        slot,
        at,
        outcome,
        loan.borrower.borrower_id,
    )


async def test_priors_count_right_party_answers_by_slot_and_the_borrowers_own_calls(
    pool: asyncpg.Pool,
) -> None:
    week_ago = AS_OF - timedelta(days=7)
    portfolio = await open_loan(pool, "cn", f"b-{uuid.uuid4().hex[:8]}")
    calls = [
        *[("evening", "answered")] * 30,
        *[("evening", "no_answer")] * 10,
        *[("morning", "busy")] * 5,
        ("morning", "wrong_party"),  # someone else answered: not the borrower
        ("morning", "failed"),  # the provider failed: no answer either way, not counted
    ]
    for n, (slot, outcome) in enumerate(calls, start=1):
        await attempt(pool, portfolio, n, slot, outcome, at=week_ago)
    # Not counted: a reference's call, an SMS, a call before the window, one after ``as_of``,
    # and another jurisdiction's calls.
    await attempt(pool, portfolio, 100, "evening", "no_answer", at=week_ago, target="contact")
    await attempt(pool, portfolio, 101, "evening", "delivered", at=week_ago, channel="sms")
    await attempt(pool, portfolio, 102, "evening", "no_answer", at=AS_OF - timedelta(days=91))
    await attempt(pool, portfolio, 103, "evening", "no_answer", at=AS_OF + timedelta(hours=1))
    elsewhere = await open_loan(pool, "us", f"b-{uuid.uuid4().hex[:8]}")
    await attempt(pool, elsewhere, 1, "evening", "no_answer", at=week_ago)

    # The borrower's own earlier calls, on another loan of theirs.
    borrower_id = f"b-{uuid.uuid4().hex[:8]}"
    earlier = await open_loan(pool, "cn", borrower_id)
    await attempt(pool, earlier, 1, "evening", "answered", at=week_ago)
    await attempt(pool, earlier, 2, "midday", "no_answer", at=week_ago)
    await attempt(pool, earlier, 3, "midday", "busy", at=week_ago)

    loaded = await SlotActivities(pool).load_slot_priors(
        LoadSlotPriors("cn", borrower_id, SLOTS, AS_OF)
    )
    by_slot = {p.slot: p for p in loaded.slots}
    assert [p.slot for p in loaded.slots] == SLOTS
    assert (by_slot["evening"].answered, by_slot["evening"].calls) == (31, 41)
    assert (by_slot["morning"].answered, by_slot["morning"].calls) == (0, 6)
    assert by_slot["evening"] == slots.prior_for("evening", 31, 41)
    assert by_slot["afternoon"] == slots.prior_for("afternoon", 0, 0)  # no calls: the default
    assert loaded.answered == {"evening": 1}
    assert loaded.unanswered == {"midday": 2}
