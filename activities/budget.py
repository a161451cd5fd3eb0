"""The borrower-level contact budget in the ledger: reservations taken atomically.

A loan that has planned a contact asks for a place in its borrower's budget (``reserve_contact``,
a local activity: one marker event in the loan's history). The ledger checks the plan against
every attempt and held reservation of the borrower's loans, and of every loan that reaches the
same number, with the same pure rules the workflow plans with (``workflows.planner.check``).

Atomicity: the check and the insert run in one transaction under advisory locks on the borrower
and on the number, taken in a fixed order, so two loans can never both take the last place of a
budget. The channel activity checks the place again, under the same locks, just before it dials
(``confirm``), and marks it used in the transaction that records the attempt.

Expiry: a held place that is never used (a crashed worker, a loan cured meanwhile) stops
counting at its ``expires_at``, in collection time, or at once when its loan is closed in the
ledger. A place confirmed at the contact counts until its contact is recorded (a day at most).
Nothing has to clean it up.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from overdue.ledger import Executor
from workflows import planner, profiles, rotation
from workflows.commands import ContactReservation, ReservationResult, SiblingsQuery
from workflows.types import AttemptRecord, ContactHistory, SharedContacts
from workflows.vocabulary import Channel, Outcome, Target

LOOK_BACK = rotation.KEEP_ATTEMPTS_FOR


class BudgetActivities:
    """The ``reserve_contact`` and ``open_siblings`` activities. Holds the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name="reserve_contact")
    async def reserve_contact(self, request: ContactReservation) -> ReservationResult:
        """Hold a place in the borrower's budget for a planned contact, if the rules allow it.

        Idempotent by ``reservation_key``: a retry finds its place held and answers the same. The
        loan's other held places are released: a loan holds one place at a time.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_budget(conn, request)
            await conn.execute(
                "UPDATE contact_reservations SET status = 'released'"
                " WHERE loan_id = $1 AND status = 'held' AND reservation_key <> $2",
                request.loan_id,
                request.reservation_key,
            )
            return await hold(conn, request)

    @activity.defn(name="open_siblings")
    async def open_siblings(self, query: SiblingsQuery) -> list[str]:
        """The borrower's other loans that are still being collected, oldest first."""
        rows = await self._pool.fetch(
            "SELECT loan_id FROM loans WHERE borrower_id = $1 AND loan_id <> $2"
            " AND closed_at IS NULL ORDER BY opened_at, loan_id",
            query.borrower_id,
            query.loan_id,
        )
        return [row["loan_id"] for row in rows]


async def lock_budget(conn: Executor, request: ContactReservation) -> None:
    """Serialise every check of one borrower's and one number's budget until the transaction
    ends. Locks are taken in sorted order, so two transactions never wait on each other."""
    keys = sorted({f"borrower:{request.borrower_id}", f"number:{request.number}"})
    for key in keys:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def hold(conn: Executor, request: ContactReservation) -> ReservationResult:
    """Check ``request`` against the budget and hold its place, in the caller's transaction and
    under its locks (``lock_budget``). A place already used stays used."""
    history = await budget_history(conn, request)
    decision = planner.check(
        profiles.profile_for(request.terms.jurisdiction),
        history,
        planner.Proposal(
            request.at,
            request.channel,
            request.target,
            request.target_id,
            request.number,
            request.borrower_id,
            at_contact=request.at_contact,
        ),
        ZoneInfo(request.terms.timezone),
        request.terms,
    )
    if not decision.allowed:
        await conn.execute(
            "UPDATE contact_reservations SET status = 'released'"
            " WHERE reservation_key = $1 AND status = 'held'",
            request.reservation_key,
        )
        return ReservationResult(
            reservation_key=request.reservation_key,
            granted=False,
            shared=history.shared,
            rule=decision.rule,
            not_before=decision.not_before,
            across_loans=decision.across_loans,
        )
    await conn.execute(
        "INSERT INTO contact_reservations (reservation_key, loan_id, borrower_id, number_key,"
        " channel, target, target_id, at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (reservation_key) DO UPDATE SET at = EXCLUDED.at,"
        " expires_at = EXCLUDED.expires_at,"
        " status = CASE WHEN contact_reservations.status = 'used' THEN 'used' ELSE 'held' END",
        request.reservation_key,
        request.loan_id,
        request.borrower_id,
        request.number,
        request.channel,
        request.target,
        request.target_id,
        request.at,
        max(request.expires_at, request.at),
    )
    return ReservationResult(
        reservation_key=request.reservation_key, granted=True, shared=history.shared
    )


async def budget_history(conn: Executor, request: ContactReservation) -> ContactHistory:
    """The loan's own recent attempts and what its borrower's other loans use of the budget.

    Others are: every loan of the borrower, and every loan that reaches the number of the
    request (another borrower on a shared household phone, or the same reference).
    """
    since = request.now - LOOK_BACK
    rows = await conn.fetch(
        "SELECT loan_id, borrower_id, number_key, channel, target, target_id, slot, outcome,"
        " at_utc AS at FROM contact_attempts"
        " WHERE (borrower_id = $1 OR number_key = $2 OR loan_id = $3) AND at_utc > $4"
        " UNION ALL"
        " SELECT o.loan_id, l.borrower_id, '' AS number_key, 'call', 'borrower', l.borrower_id,"
        " 'reported', 'answered', o.at FROM contact_outcomes o JOIN loans l USING (loan_id)"
        " WHERE o.conversation AND l.borrower_id = $1 AND o.at > $4"
        " UNION ALL"
        " SELECT r.loan_id, r.borrower_id, r.number_key, r.channel, r.target, r.target_id,"
        " 'reserved', 'reserved', r.at FROM contact_reservations r JOIN loans l USING (loan_id)"
        " WHERE r.status = 'held' AND (r.borrower_id = $1 OR r.number_key = $2)"
        " AND r.loan_id <> $3 AND l.closed_at IS NULL"
        # A place confirmed at the contact counts until its contact is recorded, whatever its
        # grace: the call may be under way, or its activity retrying.
        " AND (r.expires_at > $5 OR (r.confirmed_at IS NOT NULL AND r.at > $5 - interval '1 day'))",
        request.borrower_id,
        request.number,
        request.loan_id,
        since,
        request.now,
    )
    own: list[AttemptRecord] = []
    others: list[AttemptRecord] = []
    for row in rows:
        attempt = AttemptRecord(
            at=row["at"],
            channel=row["channel"],
            target=row["target"],
            target_id=row["target_id"],
            slot=row["slot"],
            outcome=row["outcome"],
            number=row["number_key"] or "",
            borrower_id=row["borrower_id"] or "",
            loan_id=row["loan_id"],
        )
        (own if row["loan_id"] == request.loan_id else others).append(attempt)
    history = ContactHistory(
        attempts=own,
        shared=await shared_facts(conn, request, others),
        cross_loan=request.terms.cross_loan,
        unanswered_streak=request.unanswered_streak,
    )
    history.contacted_third_parties = [
        a.target_id for a in own if a.target == Target.CONTACT and a.channel == Channel.CALL
    ]
    return history


async def shared_facts(
    conn: Executor, request: ContactReservation, attempts: list[AttemptRecord]
) -> SharedContacts:
    """The borrower's lasting facts, whichever loan learnt them, beside the others' attempts."""
    facts = await conn.fetchrow(
        "SELECT"
        " EXISTS (SELECT 1 FROM audit_log a JOIN loans l USING (loan_id)"
        "   WHERE l.borrower_id = $1 AND a.action = 'cease_requested') AS ceased,"
        " (SELECT a.action FROM audit_log a JOIN loans l USING (loan_id)"
        "   WHERE l.borrower_id = $1 AND a.action IN"
        "   ('death_reported', 'death_verified', 'death_not_verified')"
        "   ORDER BY a.seq DESC LIMIT 1) AS death",
        request.borrower_id,
    )
    assert facts is not None  # a SELECT without FROM returns one row
    references = await conn.fetch(
        "SELECT DISTINCT number_key, outcome = $3 AS objected FROM contact_attempts"
        " WHERE target = 'contact' AND number_key IS NOT NULL"
        " AND (borrower_id = $1 OR (number_key = $2 AND outcome = $3))",
        request.borrower_id,
        request.number,
        Outcome.OBJECTED,
    )
    return SharedContacts(
        attempts=sorted(attempts, key=lambda a: a.at),
        cease_requested=bool(facts["ceased"]),
        borrower_deceased=facts["death"] in ("death_reported", "death_verified"),
        objected_numbers=sorted({r["number_key"] for r in references if r["objected"]}),
        contacted_numbers=sorted({r["number_key"] for r in references}),
    )
