"""The work queue end to end: ``overdue queue``, ``assign`` and ``complaint resolve`` against
loans collected on the dev server, with the ledger on PostgreSQL.

A dispute opens a case that the queue lists with its deadline; a person takes it; past its
deadline it goes to the supervisor, and the dispute's decision closes it. A complaint is a case
of its own, resolved by hand, even after its loan is cured.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from activities.scan import ScanActivities
from overdue.starts import StartOutcome, start_collection
from tests.integration.support import (
    QUIET_DAY_SECONDS,
    RUN,
    Cli,
    Loans,
    eventually,
    start_args,
    yesterday,
)
from tests.phones import unique_phone
from workflows import search_attributes as sa
from workflows.types import Borrower, Loan, workflow_id_for

pytestmark = pytest.mark.integration


async def report(cli: Cli, loan_id: str, outcome_id: str, *extra: str) -> None:
    reported = await cli("outcome", loan_id, "--outcome-id", outcome_id, *extra)
    assert reported.code == 0, reported


async def case_row(pool: asyncpg.Pool, loan_id: str, kind: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT * FROM cases WHERE loan_id = $1 AND kind = $2 ORDER BY opened_at DESC LIMIT 1",
        loan_id,
        kind,
    )
    return None if row is None else dict(row)


async def audited(pool: asyncpg.Pool, loan_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT action FROM audit_log WHERE loan_id = $1 AND action LIKE 'case_%' ORDER BY seq",
        loan_id,
    )
    return [r["action"] for r in rows]


async def attributes(client: Client, loan_id: str) -> dict[str, Any]:
    described = await client.get_workflow_handle(workflow_id_for(loan_id)).describe()
    return {p.key.name: p.value for p in described.typed_search_attributes}


async def test_a_dispute_waits_in_the_queue_is_taken_escalated_and_closed(
    cli: Cli, client: Client, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan_id = loans.new_id("queue-dispute")
    # One collection day a second: the dispute's 5 working days pass in about 8 s.
    assert (await cli(*start_args(loan_id, day_seconds="1"))).code == 0
    await report(cli, loan_id, f"{loan_id}-o1", "--dispute", "--note", "not my loan")

    case = await eventually(lambda: case_row(pool, loan_id, "dispute"), what="dispute case")
    listed = await cli("queue", "--kind", "dispute", "--json")
    assert listed.code == 0, listed
    mine = [r for r in listed.json() if r["loan_id"] == loan_id]
    assert len(mine) == 1
    assert mine[0]["case_id"] == case["case_id"]
    assert mine[0]["deadline"] > mine[0]["opened_at"]
    assert "uphold or reject" in mine[0]["asked"]

    taken = await cli("assign", case["case_id"], "--to", "ops:ann", "--by", "ops:lead", "--json")
    assert taken.code == 0, taken

    async def assigned() -> dict[str, Any] | None:
        found = await attributes(client, loan_id)
        return found if found.get(sa.ASSIGNEE.name) == "ops:ann" else None

    found = await eventually(assigned, what="Assignee ops:ann")
    assert found[sa.WAITING_FOR.name] == "dispute"

    async def escalated() -> dict[str, Any] | None:
        row = await case_row(pool, loan_id, "dispute")
        return row if row and row["escalated_at"] is not None else None

    row = await eventually(escalated, timeout=120, what="the dispute case escalated")
    assert row["assignee"] == "supervisor"
    assert row["escalated_at"] >= row["deadline"]
    supervisor = (await cli("queue", "--assignee", "supervisor", "--json")).json()
    assert case["case_id"] in [r["case_id"] for r in supervisor]
    assert all(r["past_deadline"] for r in supervisor if r["case_id"] == case["case_id"])

    resolved = await cli(
        "dispute-resolved", loan_id, "--resolution-id", f"{loan_id}-r", "--rejected"
    )
    assert resolved.code == 0, resolved

    async def closed() -> dict[str, Any] | None:
        row = await case_row(pool, loan_id, "dispute")
        return row if row and row["closed_at"] is not None else None

    row = await eventually(closed, what="the dispute case closed")
    assert row["outcome"] == "normal"
    assert await audited(pool, loan_id) == [
        "case_opened",
        "case_assigned",
        "case_escalated",
        "case_closed",
    ]
    escalation = await pool.fetchval(
        "SELECT details->>'note' FROM audit_log WHERE loan_id = $1 AND action = 'case_escalated'",
        loan_id,
    )
    assert escalation == "from ops:ann"
    left = (await cli("queue", "--json")).json()
    assert loan_id not in [r["loan_id"] for r in left]

    async def unassigned() -> dict[str, Any] | None:
        found = await attributes(client, loan_id)
        return found if sa.WAITING_FOR.name not in found else None

    found = await eventually(unassigned, what="WaitingFor unset")
    assert sa.ASSIGNEE.name not in found
    shown = (await cli("status", loan_id, "--json")).json()
    assert [(c["kind"], c["assignee"], c["outcome"]) for c in shown["cases"]] == [
        ("dispute", "supervisor", "normal")
    ]


async def test_a_complaint_is_resolved_by_hand_even_after_the_loan_is_cured(
    cli: Cli, client: Client, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan_id = loans.new_id("queue-complaint")
    assert (await cli(*start_args(loan_id, outstanding="300.00"))).code == 0
    await report(
        cli, loan_id, f"{loan_id}-o1", "--complaint", "collector_conduct", "--note", "rude"
    )
    case = await eventually(lambda: case_row(pool, loan_id, "complaint"), what="complaint case")
    assert case["team"] == "compliance"  # the category's route in the strategy

    # Not by hand: a dispute's case ends with its decision. Nor an unknown case or outcome.
    (await cli("complaint", "resolve", "nope:1", "--outcome", "upheld")).assert_user_error(
        "case_id"
    )
    (await cli("complaint", "resolve", case["case_id"], "--outcome", "maybe")).assert_user_error(
        "resolve_with"
    )
    (await cli("assign", case["case_id"], "--to", "")).assert_user_error("assign_to")

    paid = await cli("pay", loan_id, "300.00", "--payment-id", f"{loan_id}-p1")
    assert paid.code == 0, paid
    status = await cli("status", loan_id, "--json")
    assert status.json()["stage"] == "cured"
    still = (await cli("queue", "--kind", "complaint", "--json")).json()
    assert case["case_id"] in [r["case_id"] for r in still]

    # No workflow watches its deadline now: the daily scan's sweep escalates it once past it.
    sweep = ScanActivities(pool, client).escalate_ended_cases
    assert await sweep(case["deadline"] - timedelta(seconds=1)) == 0
    assert await sweep(case["deadline"] + timedelta(minutes=1)) == 1
    assert await sweep(case["deadline"] + timedelta(days=1)) == 0  # once
    escalated = await case_row(pool, loan_id, "complaint")
    assert escalated is not None and escalated["assignee"] == "supervisor"

    resolved = await cli(
        "complaint", "resolve", case["case_id"], "--outcome", "upheld", "--note", "apologised"
    )
    assert resolved.code == 0, resolved
    row = await case_row(pool, loan_id, "complaint")
    assert row is not None
    assert row["outcome"] == "upheld"
    assert row["closed_at"] is not None
    complaint = await pool.fetchrow(
        "SELECT status, outcome FROM complaint_cases WHERE case_id = $1", case["case_id"]
    )
    assert dict(complaint) == {"status": "resolved", "outcome": "upheld"}
    assert await audited(pool, loan_id) == ["case_opened", "case_escalated", "case_resolved"]
    again = await cli("complaint", "resolve", case["case_id"], "--outcome", "upheld")
    again.assert_user_error("case_id")


async def test_a_complaint_from_an_earlier_collection_is_the_ledgers_to_work(
    cli: Cli, client: Client, loans: Loans, pool: asyncpg.Pool
) -> None:
    """The loan falls overdue again while a complaint from its first collection is open: the
    second collection does not hold it, so the scan escalates it and operators work it in the
    ledger, as for a closed loan."""
    loan_id = loans.new_id("queue-again")
    assert (await cli(*start_args(loan_id, outstanding="300.00"))).code == 0
    await report(cli, loan_id, f"{loan_id}-o1", "--complaint", "company")
    case = await eventually(lambda: case_row(pool, loan_id, "complaint"), what="complaint case")
    assert case["collection"] == 1
    assert (await cli("pay", loan_id, "300.00", "--payment-id", f"{loan_id}-p1")).code == 0
    assert (await cli("status", loan_id, "--json")).json()["stage"] == "cured"

    # Overdue again, as the delinquency scan would start it: the loan's second collection.
    again = Loan(
        loan_id=loan_id,
        borrower=Borrower(f"never_answers-{loan_id}", "Ann Lee", unique_phone(), "UTC"),
        product="personal",
        principal_minor=100_000,
        outstanding_minor=20_000,
        currency="USD",
        due_date=yesterday("UTC"),
        jurisdiction="us",
    )
    started = await start_collection(client, again, day_seconds=float(QUIET_DAY_SECONDS), number=2)
    assert started == StartOutcome.STARTED

    async def reopened() -> bool:
        closed = await pool.fetchval("SELECT closed_at FROM loans WHERE loan_id = $1", loan_id)
        return closed is None

    await eventually(reopened, what="the loan open again in the ledger")
    # Other tests' ended cases may be swept too: this case's row and audit tell what it did.
    await ScanActivities(pool, client).escalate_ended_cases(case["deadline"] + timedelta(minutes=1))
    assert (await case_row(pool, loan_id, "complaint") or {})["assignee"] == "supervisor"

    # The running (second) collection does not hold the case: the ledger is written directly.
    assigned = await cli("assign", case["case_id"], "--to", "ops:cy", "--by", "ops:lead")
    assert assigned.code == 0, assigned
    resolved = await cli("complaint", "resolve", case["case_id"], "--outcome", "not_upheld")
    assert resolved.code == 0, resolved
    row = await case_row(pool, loan_id, "complaint")
    assert row is not None and (row["assignee"], row["outcome"]) == ("ops:cy", "not_upheld")
    assert await audited(pool, loan_id) == [
        "case_opened",
        "case_escalated",
        "case_assigned",
        "case_resolved",
    ]
    # The loan's status lists its cases from all its collections.
    status = (await cli("status", loan_id, "--json")).json()
    assert status["stage"] == "early"
    assert [(c["collection"], c["kind"], c["outcome"]) for c in status["cases"]] == [
        (1, "complaint", "not_upheld")
    ]


async def test_one_persons_cases_are_handed_over_in_one_batch(
    cli: Cli, client: Client, loans: Loans, pool: asyncpg.Pool
) -> None:
    leaving, taking = f"ops:ann-{RUN}", f"ops:bo-{RUN}"
    disputed = [loans.new_id(f"queue-handover-{n}") for n in (1, 2)]
    for loan_id in disputed:
        assert (await cli(*start_args(loan_id))).code == 0
        await report(cli, loan_id, f"{loan_id}-o1", "--dispute")
        case = await eventually(partial(case_row, pool, loan_id, "dispute"), what="dispute case")
        assert (await cli("assign", case["case_id"], "--to", leaving)).code == 0
    query = f'Assignee="{leaving}" AND ExecutionStatus="Running"'

    async def both_listed() -> bool:
        return len([w async for w in client.list_workflows(query)]) == 2

    await eventually(both_listed, what="both loans listed under the leaving person")
    handover = {
        "action_id": f"handover-{RUN}",
        "case_id": "*",
        "operator": "ops:lead",
        "assign_to": taking,
    }
    sent = await cli(
        "signal", "case_action", "--query", query, "--input", json.dumps(handover), "--by",
        "ops:lead", "--yes",
    )  # fmt: skip
    assert sent.code == 0, sent

    async def handed_over() -> bool:
        rows = [await case_row(pool, loan_id, "dispute") for loan_id in disputed]
        return all(r is not None and r["assignee"] == taking for r in rows)

    await eventually(handed_over, what="both cases with the person taking them")
    for loan_id in disputed:
        assert await audited(pool, loan_id) == ["case_opened", "case_assigned", "case_assigned"]
    mine = (await cli("queue", "--assignee", taking, "--json")).json()
    assert sorted(r["loan_id"] for r in mine) == sorted(disputed)
