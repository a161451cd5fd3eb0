"""The budget's activities against a real PostgreSQL: places taken atomically, checked again at
the contact, and a retried contact that may already have been made is never refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from activities.budget import BudgetActivities
from activities.channels import ChannelActivities, Delivery
from activities.ledger import LedgerActivities
from tests.phones import unique_phone
from workflows import budget
from workflows.commands import (
    BudgetTerms,
    ContactRequest,
    ContactReservation,
    OpenLoan,
)
from workflows.types import Borrower, Loan
from workflows.vocabulary import Outcome

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# A weekday, 10:00 in New York: inside the window.
AT = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
TERMS = BudgetTerms("us", "America/New_York", max_calls_per_day=3, min_gap_minutes=90)


class FlakyDialer:
    """Reaches the borrower every time; the first call's outcome is lost on the way back, as
    when the worker dies after dialling."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def call(self, delivery: Delivery) -> str:
        self.keys.append(delivery.request.idempotency_key)
        if len(self.keys) == 1:
            raise ConnectionError("the dialer's answer was lost")
        return Outcome.NO_ANSWER

    async def send_sms(self, delivery: Delivery) -> str:
        raise AssertionError("no SMS here")


async def borrower_with_loans(pool: asyncpg.Pool, count: int) -> list[Loan]:
    run, phone = uuid.uuid4().hex[:8], unique_phone()
    loans = [
        Loan(
            loan_id=f"bud-{run}-{n}",
            borrower=Borrower(f"b-{run}", "Ann Lee", phone, "America/New_York"),
            product="personal",
            principal_minor=100_000,
            outstanding_minor=50_000,
            currency="USD",
            due_date="2026-11-10",
            jurisdiction="us",
        )
        for n in range(count)
    ]
    for loan in loans:
        await LedgerActivities(pool).open_loan(OpenLoan(loan, AT - timedelta(days=5)))
    return loans


def place(loan: Loan, key: int, at: datetime, now: datetime, **options: bool) -> ContactReservation:
    borrower = loan.borrower
    return ContactReservation(
        reservation_key=f"{loan.loan_id}:reservation:{key}",
        loan_id=loan.loan_id,
        borrower_id=borrower.borrower_id,
        channel="call",
        target="borrower",
        target_id=borrower.borrower_id,
        number=budget.number_key(borrower.phone),
        at=at,
        expires_at=budget.reservation_lapses(at, None),
        now=now,
        terms=TERMS,
        **options,
    )


def call_request(loan: Loan, reservation: ContactReservation) -> ContactRequest:
    return ContactRequest(
        idempotency_key=f"{loan.loan_id}:attempt:1",
        loan_id=loan.loan_id,
        borrower_id=loan.borrower.borrower_id,
        attempt_no=1,
        channel="call",
        target="borrower",
        target_id=loan.borrower.borrower_id,
        slot="morning",
        purpose="reminder",
        template="call_reminder",
        stage="early",
        at=reservation.at,
        at_local="-",
        timezone=loan.borrower.timezone,
        message="Courteous reminder call.",
        outstanding_minor=loan.outstanding_minor,
        currency=loan.currency,
        reservation=reservation,
    )


async def test_two_loans_racing_for_one_moment_get_one_place(pool: asyncpg.Pool) -> None:
    """Both ask at once for the same moment: the advisory locks let exactly one in."""
    first, second = await borrower_with_loans(pool, 2)
    activities = BudgetActivities(pool)
    results = await asyncio.gather(
        activities.reserve_contact(place(first, 1, AT, AT - timedelta(hours=1))),
        activities.reserve_contact(place(second, 1, AT, AT - timedelta(hours=1))),
    )
    assert sorted(r.granted for r in results) == [False, True]
    refused = next(r for r in results if not r.granted)
    assert refused.rule == "min_gap" and refused.across_loans
    held = await pool.fetchval(
        "SELECT count(*) FROM contact_reservations WHERE borrower_id = $1 AND status = 'held'",
        first.borrower.borrower_id,
    )
    assert held == 1


async def test_a_retried_call_is_made_and_recorded_once_even_past_its_place(
    pool: asyncpg.Pool,
) -> None:
    """The dialer was reached, its answer lost. Past the place's grace a sibling may still not
    plan next to it; the retry goes on without a second check (the call may have been made) and
    the attempt is recorded once, under the one idempotency key the dialer saw twice."""
    loan, sibling = await borrower_with_loans(pool, 2)
    mine = place(loan, 1, AT, AT - timedelta(hours=1))
    assert (await BudgetActivities(pool).reserve_contact(mine)).granted
    dialer = FlakyDialer()
    channels = ChannelActivities(pool, dialer)
    request = call_request(loan, place(loan, 1, AT, AT, at_contact=True))
    with pytest.raises(ConnectionError):
        await channels.place_call(request)

    # Past the place's grace, the confirmed call still counts for the sibling: it may be under
    # way, or its activity retrying, until its outcome is recorded.
    later = mine.expires_at + timedelta(minutes=1)
    theirs = place(sibling, 1, later + timedelta(minutes=5), later)
    refused = await BudgetActivities(pool).reserve_contact(theirs)
    assert not refused.granted and refused.rule == "min_gap"

    result = await channels.place_call(request)
    assert result.outcome == Outcome.NO_ANSWER and result.deferred is None
    assert dialer.keys == [request.idempotency_key] * 2
    recorded = await pool.fetch(
        "SELECT outcome FROM contact_attempts WHERE loan_id = $1", loan.loan_id
    )
    assert [r["outcome"] for r in recorded] == [Outcome.NO_ANSWER]
    status = await pool.fetchval(
        "SELECT status FROM contact_reservations WHERE reservation_key = $1", mine.reservation_key
    )
    assert status == "used"


async def test_a_call_whose_place_another_loan_took_is_deferred_unmade(pool: asyncpg.Pool) -> None:
    """Never confirmed, and the budget filled meanwhile: nothing is dialled or recorded."""
    loan, sibling = await borrower_with_loans(pool, 2)
    assert (await BudgetActivities(pool).reserve_contact(place(sibling, 1, AT, AT))).granted
    dialer = FlakyDialer()
    result = await ChannelActivities(pool, dialer).place_call(
        call_request(loan, place(loan, 1, AT + timedelta(minutes=30), AT, at_contact=True))
    )
    assert result.outcome == Outcome.DEFERRED
    assert result.deferred is not None and result.deferred.rule == "min_gap"
    assert dialer.keys == []
    assert not await pool.fetchval(
        "SELECT count(*) FROM contact_attempts WHERE loan_id = $1", loan.loan_id
    )


@pytest.mark.parametrize(
    "phone", ["+15550001000", "+1 (555) 000-1000", "13800138000", "+86 138-0013-8000", " +44 20"]
)
async def test_the_ledger_keys_a_number_as_the_workflow_does(
    pool: asyncpg.Pool, phone: str
) -> None:
    """The migration keys the attempts recorded before it with SQL: the same key as Python's."""
    assert await pool.fetchval("SELECT phone_number_key($1)", phone) == budget.number_key(phone)


async def test_a_closed_loans_place_stops_counting_at_once(pool: asyncpg.Pool) -> None:
    """A loan cured (closed in the ledger) before its planned contact blocks its siblings no
    longer, without waiting for its place to lapse."""
    cured, sibling = await borrower_with_loans(pool, 2)
    activities = BudgetActivities(pool)
    assert (await activities.reserve_contact(place(cured, 1, AT, AT - timedelta(hours=1)))).granted
    assert not (await activities.reserve_contact(place(sibling, 1, AT, AT))).granted
    await pool.execute("UPDATE loans SET closed_at = $2 WHERE loan_id = $1", cured.loan_id, AT)
    assert (await activities.reserve_contact(place(sibling, 2, AT, AT))).granted
