"""The report's SQL: the rows of the loans open at some moment of a period, read at once.

Each query reads one table for the loans found first, so the figures see one consistent set of
loans; the computation is ``overdue.report.figures``'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from overdue.report.figures import ENDS_WAIT, HOLDS, WAITS
from overdue.report.rows import (
    AttemptRow,
    EventRow,
    Ledger,
    LoanRow,
    PaymentRow,
    Period,
    PromiseRow,
)

# The audit entries the figures read: openings, stage changes, situation events, holds.
ACTIONS = ["loan_opened", "stage_changed", *WAITS, *ENDS_WAIT, *HOLDS]

# A loan is read when one of its collections opened before the period's end and it was not
# closed before the period began (``closed_at`` is its latest collection's, NULL once reopened).
LOANS = """
SELECT l.loan_id, l.product, l.jurisdiction, l.strategy, l.strategy_version, l.currency,
       l.due_date, b.timezone, l.opened_at, l.closed_at
FROM loans l JOIN borrowers b USING (borrower_id)
WHERE (l.opened_at < $2
       OR EXISTS (SELECT 1 FROM collections c WHERE c.loan_id = l.loan_id AND c.opened_at < $2))
  AND (l.closed_at IS NULL OR l.closed_at >= $1)
  AND ($3::text[] IS NULL OR l.loan_id = ANY($3))
ORDER BY l.loan_id
"""
EVENTS = """
SELECT seq, loan_id, at, action, details->>'to' AS to_stage, details->>'operator' AS operator,
       CASE WHEN action = 'loan_opened' THEN (details->>'outstanding_minor')::bigint END
           AS outstanding_minor
FROM audit_log
WHERE loan_id = ANY($1) AND at < $2 AND action = ANY($3)
ORDER BY seq
"""
PAYMENTS = """
SELECT loan_id, paid_at, amount_minor, overpaid_minor FROM payments
WHERE loan_id = ANY($1) AND paid_at < $2
"""
ATTEMPTS = """
SELECT loan_id, at_utc, at_local, slot, channel, target, outcome FROM contact_attempts
WHERE loan_id = ANY($1) AND at_utc >= $2 AND at_utc < $3
"""
PROMISES = """
SELECT loan_id, status, made_at, settled_at FROM promises
WHERE loan_id = ANY($1) AND (made_at >= $2 AND made_at < $3
                             OR settled_at >= $2 AND settled_at < $3)
"""


async def read_ledger(
    pool: asyncpg.Pool, period: Period, loan_ids: Sequence[str] | None = None
) -> Ledger:
    """Read what the figures need for the period, for every loan or only these ones."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        wanted = list(loan_ids) if loan_ids is not None else None
        loans = [
            LoanRow(**dict(r)) for r in await conn.fetch(LOANS, period.since, period.until, wanted)
        ]
        ids = [loan.loan_id for loan in loans]
        events = await conn.fetch(EVENTS, ids, period.until, ACTIONS)
        payments = await conn.fetch(PAYMENTS, ids, period.until)
        attempts = await conn.fetch(ATTEMPTS, ids, period.since, period.until)
        promises = await conn.fetch(PROMISES, ids, period.since, period.until)
    return Ledger(
        loans=loans,
        events=[EventRow(**dict(r)) for r in events],
        payments=[PaymentRow(**dict(r)) for r in payments],
        attempts=[AttemptRow(**dict(r)) for r in attempts],
        promises=[PromiseRow(**dict(r)) for r in promises],
    )


# Each loan whose row does not stand where its audit log says: the last of its openings and stage
# changes names the stage (``early`` for an opening, the change's ``to``). The report reads the
# audit log alone, so a loan that disagrees is counted where the log, not the row, puts it.
STAGE_DISAGREEMENTS = """
SELECT loan_id, stage, closed_at, audited_stage FROM (
    SELECT l.loan_id, l.stage, l.closed_at,
           COALESCE(CASE WHEN last.action = 'loan_opened' THEN 'early'
                         ELSE last.details->>'to' END, 'early') AS audited_stage
    FROM loans l
    LEFT JOIN LATERAL (
        SELECT a.action, a.details FROM audit_log a
        WHERE a.loan_id = l.loan_id AND a.action IN ('loan_opened', 'stage_changed')
        ORDER BY a.seq DESC LIMIT 1
    ) last ON true
    WHERE l.loan_id = ANY($1)
) told
WHERE stage IS DISTINCT FROM audited_stage
ORDER BY loan_id
"""


async def stage_disagreements(pool: asyncpg.Pool, loan_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The loans whose ledger row stands in another stage than their audit log says, each with
    both stages (``stage``, ``audited_stage``) and ``closed_at``: none, in a sound ledger.

    A collection that closed (``closed_at`` set) without its closing change in the audit log is
    one: ``overdue report`` would count it as still open where the log left it.
    """
    rows = await pool.fetch(STAGE_DISAGREEMENTS, list(loan_ids))
    return [
        {
            "loan_id": row["loan_id"],
            "stage": row["stage"],
            "audited_stage": row["audited_stage"],
            "closed_at": row["closed_at"].isoformat() if row["closed_at"] else None,
        }
        for row in rows
    ]


SPAN = """
SELECT (SELECT min(opened_at) FROM collections WHERE loan_id = ANY($1)) AS since,
       (SELECT max(at) FROM audit_log WHERE loan_id = ANY($1)) AS last_entry
"""


async def span_of(pool: asyncpg.Pool, loan_ids: Sequence[str]) -> Period | None:
    """The period from these loans' first opening to just past their last audit entry (a
    compressed collection clock stamps entries ahead of the wall clock), or None when the
    ledger holds none of them."""
    row = await pool.fetchrow(SPAN, list(loan_ids))
    if row is None or row["since"] is None:
        return None
    until = max(row["since"], row["last_entry"] or row["since"]) + timedelta(seconds=1)
    return Period(row["since"], until)
