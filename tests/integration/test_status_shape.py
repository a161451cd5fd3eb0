"""``overdue status --json`` has one shape, a malformed signal shows in it, and a second pause
says it changed nothing: end to end, on the dev server and PostgreSQL.

The commands run as subprocesses while the production worker runs in this process. The
shape is the published JSON Schema (docs/status.schema.json): the output of a running loan
(paused, with a refused signal) and of the same loan once cured are both held to it, and have
the same keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import pytest
from temporalio.client import Client

from overdue.client import STATUS_KEYS
from tests.integration.support import Cli, Loans, eventually, start_args
from workflows.collection import LoanCollection
from workflows.collection.rules import OUTREACH_LABELS
from workflows.types import workflow_id_for

pytestmark = pytest.mark.integration

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "status.schema.json").read_text(encoding="utf-8")
)


def held_to_schema(view: dict[str, Any]) -> None:
    jsonschema.validate(view, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert tuple(view) == STATUS_KEYS


async def test_running_and_closed_loans_share_one_shape(
    cli: Cli, client: Client, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan_id = loans.new_id("shape")
    assert (await cli(*start_args(loan_id, outstanding="500.00"))).code == 0
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))

    paused = await cli("pause", loan_id, "--reason", "fraud check", "--by", "ops:ann", "--json")
    assert paused.code == 0, paused
    # A second pause changes nothing, and says whose pause holds the loan and why.
    again = await cli("pause", loan_id, "--reason", "second look", "--by", "ops:bo")
    message = again.assert_user_error("loan")
    assert "already paused by ops:ann since" in message
    assert "(fraud check)" in message and "changes nothing" in message

    # The Web UI's signal form with only the payment id typed in.
    await handle.signal("payment_received", {"payment_id": f"{loan_id}-p1"})

    async def refused() -> dict[str, Any] | None:
        shown = await cli("status", loan_id, "--json")
        assert shown.code == 0, shown
        view: dict[str, Any] = shown.json()
        return view if view["refusals"] else None

    running = await eventually(refused, what="the refusal in status")
    held_to_schema(running)
    assert running["workflow_status"] == "running"
    assert running["hold"]["reason"] == "fraud check"
    assert [(r["message"], r["problem"]) for r in running["refusals"]] == [
        ("payment_received", "amount_minor: is required")
    ]
    assert running["resolved_in"] is None and running["ended_at"] is None
    # One vocabulary: the machine's situation state, and what outreach revealed beside it.
    assert (running["situation"], running["outreach"]) == ("normal", "none")
    problems = await pool.fetch(
        "SELECT details->>'problem' AS problem FROM audit_log"
        " WHERE loan_id = $1 AND action = 'message_refused'",
        loan_id,
    )
    assert [p["problem"] for p in problems] == ["payment_received: amount_minor: is required"]

    paid = await cli("pay", loan_id, "500.00", "--payment-id", f"{loan_id}-p2", "--json")
    assert paid.code == 0, paid
    await handle.result()
    ended = await cli("status", loan_id, "--json")
    assert ended.code == 0, ended
    closed = ended.json()
    held_to_schema(closed)
    assert closed["workflow_status"] == "completed"
    assert (closed["stage"], closed["resolved_in"]) == ("cured", "early")
    assert closed["situation"] == "normal" and closed["broken_promises"] == 0
    assert closed["outreach"] in OUTREACH_LABELS
    assert closed["hold"] is None and closed["timezone"] is None
    assert closed["next_action"]["kind"] == "none"
