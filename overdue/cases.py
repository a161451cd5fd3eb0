"""The work queue in the ledger: cases as they stand, each change audited once.

The loan's collection writes every change of a running loan's cases (``activities.cases``). A
complaint outlives its collection: once the loan is closed, or collected again, operators'
actions on it are written by the same function (``overdue.case_actions``), and the daily scan
escalates it, so the row and the audit entry are the same whoever writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from overdue.ledger import Executor, append_audit
from workflows.commands import CaseChange
from workflows.queue import SUPERVISOR, CaseKind, PersonCase

# A case whose collection has ended: the loan has closed, or a later collection of it runs. No
# workflow holds such a case (only a complaint outlives its collection), so the ledger is
# written directly. ``c`` is the case's row.
COLLECTION_ENDED = (
    "(SELECT l.closed_at IS NOT NULL OR c.collection < (SELECT max(k.number) FROM collections k"
    " WHERE k.loan_id = c.loan_id) FROM loans l WHERE l.loan_id = c.loan_id)"
)


async def record_change(conn: Executor, change: CaseChange) -> bool:
    """Write the case as ``change`` leaves it and audit the change, in ``conn``'s transaction.

    Returns whether this call audited it (False: a retry, or the change was written before).
    """
    case = change.case
    closed_at = change.at if change.action in ("case_resolved", "case_closed") else None
    # A case is opened by the loan's newest collection: the one running, which opened itself
    # in the ledger before anything else.
    await conn.execute(
        "INSERT INTO cases (case_id, loan_id, kind, asked, team, opened_at, deadline, assignee,"
        " escalated_at, closed_at, outcome, note, collection)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " (SELECT coalesce(max(number), 1) FROM collections WHERE loan_id = $2))"
        " ON CONFLICT (case_id) DO UPDATE SET assignee = EXCLUDED.assignee,"
        " collection = coalesce(cases.collection, EXCLUDED.collection),"
        " escalated_at = EXCLUDED.escalated_at,"
        " closed_at = coalesce(cases.closed_at, EXCLUDED.closed_at),"
        " outcome = coalesce(cases.outcome, EXCLUDED.outcome),"
        " note = CASE WHEN EXCLUDED.note = '' THEN cases.note ELSE EXCLUDED.note END",
        case.case_id,
        change.loan_id,
        str(case.kind),
        case.asked,
        case.team,
        case.opened_at,
        case.deadline,
        case.assignee,
        case.escalated_at,
        closed_at,
        change.outcome,
        change.note,
    )
    if change.action == "case_resolved" and case.kind == CaseKind.COMPLAINT:
        await conn.execute(
            "UPDATE complaint_cases SET status = 'resolved', outcome = $2, resolved_at = $3"
            " WHERE case_id = $1 AND resolved_at IS NULL",
            case.case_id,
            change.outcome,
            change.at,
        )
    details: dict[str, Any] = {
        "case_id": case.case_id,
        "kind": str(case.kind),
        "assignee": case.assignee,
        "deadline": case.deadline.isoformat(),
    }
    if change.outcome is not None:
        details["outcome"] = change.outcome
    if change.note:
        details["note"] = change.note
    return await append_audit(
        conn,
        event_key=change.change_key,
        loan_id=change.loan_id,
        at=change.at,
        action=change.action,
        details=details,
        actor=change.operator,
    )


@dataclass
class QueueRow:
    """One open case, as ``overdue queue`` lists it."""

    case_id: str
    loan_id: str
    kind: str
    asked: str
    team: str
    opened_at: datetime
    deadline: datetime
    assignee: str | None
    escalated_at: datetime | None
    past_deadline: bool


async def open_cases(
    pool: asyncpg.Pool,
    *,
    kind: str | None = None,
    assignee: str | None = None,
    now: datetime,
    limit: int = 500,
) -> list[QueueRow]:
    """Open cases, oldest first; ``assignee`` ``-`` lists the unassigned ones."""
    conditions: list[str] = ["closed_at IS NULL"]
    args: list[Any] = []
    if kind is not None:
        args.append(kind)
        conditions.append(f"kind = ${len(args)}")
    if assignee == "-":
        conditions.append("assignee IS NULL")
    elif assignee is not None:
        args.append(assignee)
        conditions.append(f"assignee = ${len(args)}")
    args.append(limit)
    rows = await pool.fetch(
        "SELECT case_id, loan_id, kind, asked, team, opened_at, deadline, assignee, escalated_at"
        f" FROM cases WHERE {' AND '.join(conditions)} ORDER BY opened_at, case_id"
        f" LIMIT ${len(args)}",
        *args,
    )
    # Escalated means past its deadline, whatever the clock: a demo's compressed collection
    # time runs ahead of the wall clock ``now`` reads.
    return [
        QueueRow(**dict(r), past_deadline=r["escalated_at"] is not None or r["deadline"] <= now)
        for r in rows
    ]


async def find_open_case(pool: asyncpg.Pool, case_id: str) -> dict[str, Any] | None:
    """The open case ``case_id`` as the ledger holds it, with ``collection_ended`` (no
    workflow holds it any more), or None."""
    row = await pool.fetchrow(
        f"SELECT c.*, {COLLECTION_ENDED} AS collection_ended FROM cases c"
        " WHERE c.case_id = $1 AND c.closed_at IS NULL",
        case_id,
    )
    return None if row is None else dict(row)


async def escalate_ended(pool: asyncpg.Pool, as_of: datetime) -> int:
    """Escalate the open cases past their deadline whose collection has ended (a complaint
    outliving a cured loan, or one from the loan's earlier collection): what the loan's own
    workflow does for the cases of a running one.

    The change is the one the collection would have written (its key ``<case>:escalated``), so
    a second sweep, or a collection that escalated the case itself, writes nothing again.

    Returns:
        How many cases this call escalated.
    """
    escalated = 0
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.* FROM cases c"
            " WHERE c.closed_at IS NULL AND c.escalated_at IS NULL AND c.deadline <= $1"
            f" AND {COLLECTION_ENDED} ORDER BY c.opened_at, c.case_id",
            as_of,
        )
        for row in rows:
            case = case_of(row)
            note = f"from {case.assignee or '-'}"
            case.escalated_at, case.assignee = as_of, SUPERVISOR
            change = CaseChange.of(
                "case_escalated", case, row["loan_id"], as_of, operator="scan", note=note
            )
            async with conn.transaction():
                escalated += await record_change(conn, change)
    return escalated


def case_of(row: Any) -> PersonCase:
    """A case as the ledger holds it (a ``cases`` row)."""
    return PersonCase(
        case_id=row["case_id"],
        kind=CaseKind(row["kind"]),
        asked=row["asked"],
        opened_at=row["opened_at"],
        deadline=row["deadline"],
        team=row["team"],
        assignee=row["assignee"],
        escalated_at=row["escalated_at"],
    )
