"""``overdue outcome`` and ``overdue dispute-resolved`` end to end, on the dev server and PostgreSQL.

As in ``test_cli.py``: the commands run as subprocesses while the production worker runs in this
process, and every loan has a 10-minute collection day, so nothing moves on its own during the
module. Each bad report must exit with code 2 and one line naming the field, and signal nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle

from overdue.outcomes import LoanView
from tests.integration.support import Cli, Loans, daytime_zone, eventually, start_args
from workflows.types import CollectionStatus, workflow_id_for

pytestmark = pytest.mark.integration


async def start_loan(cli: Cli, loans: Loans, label: str) -> str:
    """A loan whose borrower it is daytime for: on the 10-minute collection day the borrower's
    midnight is minutes of real time away, so "the borrower's today" holds during the test."""
    loan_id = loans.new_id(f"outcome-{label}")
    started = await cli(*start_args(loan_id, outstanding="500.00", timezone=daytime_zone()))
    assert started.code == 0, started
    assert started.json()["started"] is True
    return loan_id


async def borrowers_today(client: Client, loan_id: str) -> date:
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    status = await handle.query("status", result_type=CollectionStatus)
    return LoanView.from_status(status).today


async def signals(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]


# --- bad reports ------------------------------------------------------------------------------


async def test_bad_outcomes_are_one_line_errors_and_signal_nothing(
    cli: Cli, client: Client, loans: Loans
) -> None:
    loan_id = await start_loan(cli, loans, "bad")
    today = await borrowers_today(client, loan_id)
    future, past = (today + timedelta(days=5)).isoformat(), (today - timedelta(days=3)).isoformat()

    def outcome(*extra: str) -> list[str]:
        return ["outcome", loan_id, "--outcome-id", f"{loan_id}-o", *extra]

    cases: list[tuple[str, list[str]]] = [
        ("outcome", outcome()),
        ("outcome", outcome("--no-answer")),
        ("outcome", outcome("--json")),
        ("outcome_id", ["outcome", loan_id, "--outcome-id", "has space", "--note", "x"]),
        ("source", outcome("--source", "ann", "--note", "x")),
        ("situation", outcome("--situation", "bankrupt")),
        ("promise_amount", outcome("--promise-amount", "-5", "--promise-date", future)),
        ("promise_amount", outcome("--promise-amount", "12.345", "--promise-date", future)),
        ("promise_amount", outcome("--promise-amount", "ten", "--promise-date", future)),
        ("promise_amount", outcome("--promise-amount", "500.01", "--promise-date", future)),
        ("promise_amount", outcome("--promise-date", future)),
        ("promise_date", outcome("--promise-amount", "10")),
        ("promise_date", outcome("--promise-amount", "10", "--promise-date", past)),
        ("promise_date", outcome("--promise-amount", "10", "--promise-date", "soon")),
        ("complaint", outcome("--complaint", "rudeness")),
        ("hardship", outcome("--hardship", "medium", "--hardship-reason", "ill")),
        ("hardship_reason", outcome("--hardship", "short")),
        ("hardship_reason", outcome("--hardship-reason", "ill")),
        ("deceased_reported_by", outcome("--deceased-reported-by", "")),
        ("note", outcome("--note", "")),
        ("channel", outcome("--channel", "fax", "--note", "x")),
        ("dispute", outcome("--no-answer", "--dispute")),
        ("promise_amount", outcome("--no-answer", "--promise-amount", "1", "--promise-date", future)),
        ("loan_id", ["outcome", f"{loan_id}-nope", "--outcome-id", "o-1", "--note", "x"]),
        ("resolution", ["dispute-resolved", loan_id, "--resolution-id", "r-1"]),
        ("resolution", ["dispute-resolved", loan_id, "--resolution-id", "r-1", "--upheld", "--rejected"]),
        ("resolution_id", ["dispute-resolved", loan_id, "--resolution-id", "", "--upheld"]),
        ("loan_id", ["dispute-resolved", f"{loan_id}-nope", "--resolution-id", "r-1", "--upheld"]),
    ]  # fmt: skip
    results = await asyncio.gather(*(cli(*args) for _, args in cases))
    for (field_name, _), result in zip(cases, results, strict=True):
        result.assert_user_error(field_name)

    line = results[12].stderr.strip()
    assert f"is in the past; the borrower's today is {today}" in line, line
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    assert await signals(handle) == []


async def test_an_ended_collection_takes_no_outcome(cli: Cli, client: Client, loans: Loans) -> None:
    loan_id = await start_loan(cli, loans, "ended")
    await client.get_workflow_handle(workflow_id_for(loan_id)).terminate(reason="test")
    reported = await cli("outcome", loan_id, "--outcome-id", f"{loan_id}-o", "--note", "x")
    assert "has ended (terminated)" in reported.assert_user_error("loan_id")
    resolved = await cli("dispute-resolved", loan_id, "--resolution-id", "r", "--upheld")
    resolved.assert_user_error("loan_id")


# --- good reports -----------------------------------------------------------------------------


async def test_outcomes_and_a_resolution_are_signalled(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = await start_loan(cli, loans, "good")
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    today = await borrowers_today(client, loan_id)
    promised_for = (today + timedelta(days=5)).isoformat()
    note_id, promise_id = f"{loan_id}-note", f"{loan_id}-promise"

    noted = await cli("outcome", loan_id, "--outcome-id", note_id, "--note", "called back")
    assert noted.code == 0, noted
    assert noted.stdout.strip() == f"outcome {note_id} sent to collection-{loan_id}"

    promised = await cli(
        "outcome",
        loan_id,
        "--outcome-id",
        promise_id,
        "--source",
        "collector:ann",
        "--situation",
        "hardship",
        "--promise-amount",
        "120.50",
        "--promise-date",
        promised_for,
        "--channel",
        "inbound_call",
        "--json",
    )
    assert promised.code == 0, promised
    report = promised.json()
    assert {k: v for k, v in report.items() if k != "at"} == {
        "loan_id": loan_id,
        "outcome_id": promise_id,
        "source": "collector:ann",
        "channel": "inbound_call",
        "right_party": True,
        "facts": {
            "situation": "hardship",
            "promise": {"amount_minor": 12050, "due_date": promised_for},
        },
        "signalled": True,
    }

    resolved = await cli(
        "dispute-resolved", loan_id, "--resolution-id", f"{loan_id}-r", "--rejected", "--json"
    )
    assert resolved.code == 0, resolved
    assert resolved.json()["upheld"] is False and resolved.json()["signalled"] is True

    assert await signals(handle) == ["contact_outcome", "contact_outcome", "dispute_resolved"]
    events = (await handle.fetch_history()).events
    payloads = [
        json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data)
        for e in events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert payloads[0]["outcome_id"] == note_id
    assert payloads[0]["note"] == "called back"
    assert payloads[0]["source"] == "collector:cli"
    assert payloads[0]["right_party"] is True
    assert payloads[0]["channel"] == "call"
    assert payloads[1]["promise"] == {"amount_minor": 12050, "due_date": promised_for}
    assert payloads[1]["channel"] == "inbound_call"
    assert payloads[2]["resolution_id"] == f"{loan_id}-r"

    # The workflow records each outcome in the ledger, as reported.
    async def recorded() -> list[asyncpg.Record]:
        rows = await pool.fetch(
            "SELECT outcome_id, source, right_party, details, channel, conversation"
            " FROM contact_outcomes WHERE loan_id = $1 ORDER BY at, recorded_at",
            loan_id,
        )
        return rows if len(rows) == 2 else []

    rows = await eventually(recorded, what="both outcomes in the ledger")
    by_id = {r["outcome_id"]: r for r in rows}
    assert json.loads(by_id[note_id]["details"]) == {"note": "called back"}
    assert by_id[note_id]["source"] == "collector:cli"
    # Right-party phone conversations, by the collector's call and by the borrower's: both
    # count for the borrower's conversation rules.
    assert [(r["channel"], r["conversation"]) for r in rows] == [
        ("call", True),
        ("inbound_call", True),
    ]
    assert json.loads(by_id[promise_id]["details"])["promise"] == {
        "amount_minor": 12050,
        "due_date": promised_for,
    }

    # The same outcome id again is signalled, and recorded once.
    again = await cli("outcome", loan_id, "--outcome-id", note_id, "--note", "called back")
    assert again.code == 0, again
    await handle.query("status", result_type=CollectionStatus)  # the signal is processed first
    count = await pool.fetchval(
        "SELECT count(*) FROM contact_outcomes WHERE outcome_id = $1", note_id
    )
    assert count == 1

    # An outcome id the ledger holds for this loan is refused for another one.
    other = await start_loan(cli, loans, "other")
    reused = await cli("outcome", other, "--outcome-id", note_id, "--note", "x")
    assert "another loan" in reused.assert_user_error("outcome_id")
    assert await signals(client.get_workflow_handle(workflow_id_for(other))) == []


async def test_complaint_and_review_decision_from_the_cli_show_in_status(
    cli: Cli, client: Client, loans: Loans
) -> None:
    loan_id = await start_loan(cli, loans, "review")
    complained = await cli(
        "outcome", loan_id, "--outcome-id", f"{loan_id}-c", "--complaint", "sale", "--json"
    )
    assert complained.code == 0, complained
    hardship = await cli(
        "outcome",
        loan_id,
        "--outcome-id",
        f"{loan_id}-h",
        "--hardship",
        "long",
        "--hardship-reason",
        "long-term illness",
    )
    assert hardship.code == 0, hardship

    async def in_review() -> dict[str, Any] | None:
        shown = (await cli("status", loan_id, "--json")).json()
        return (
            shown
            if shown.get("situation") == "hardship_review" and shown["complaint_cases"]
            else None
        )

    shown = await eventually(in_review, what="the hardship review and the complaint case")
    assert [(c["category"], c["route"]) for c in shown["complaint_cases"]] == [
        ("sale", "sales_quality")
    ]
    assert {o["outcome_id"] for o in shown["outcomes"]} == {f"{loan_id}-c", f"{loan_id}-h"}

    wrong = await cli(
        "decide", loan_id, "--review", "hardship", "--outcome", "verified", "--decision-id", "d0"
    )
    assert wrong.code == 2 and "outcome:" in wrong.stderr and "Traceback" not in wrong.stderr
    decided = await cli(
        "decide",
        loan_id,
        "--review",
        "hardship",
        "--outcome",
        "approved",
        "--decision-id",
        f"{loan_id}-d",
        "--by",
        "ops:ann",
        "--json",
    )
    assert decided.code == 0, decided

    async def in_forbearance() -> dict[str, Any] | None:
        shown = (await cli("status", loan_id, "--json")).json()
        plan = shown.get("arrangement")
        return shown if plan and plan["kind"] == "forbearance" else None

    shown = await eventually(in_forbearance, what="forbearance after the approval")
    assert len(shown["arrangement"]["instalments"]) == 6
    assert len(shown["promises"]) == 6
