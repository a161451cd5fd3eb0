"""``overdue list``, bulk ``pause``/``resume --query`` and ``overdue signal``, end to end: the
dev server's own batch operations and PostgreSQL.

The loans run on a 10-minute collection day, so nothing moves on its own during the module; a
loan outside the query stays as it was.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from tests.integration.support import RUN, Cli, Loans, eventually, start_args
from workflows.types import CollectionStatus, workflow_id_for

pytestmark = pytest.mark.integration

PREFIX = f"it-{RUN}-bulk-"
QUERY = f'LoanId STARTS_WITH "{PREFIX}"'
# Outstanding amounts of the loans the query matches, by label: sorted, largest first, by list.
AMOUNTS = {"a": "120.00", "b": "905.50", "c": "40.00", "d": "310.25"}


async def hold_of(client: Client, loan_id: str) -> Any:
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    status = await handle.query("status", result_type=CollectionStatus)
    return status.hold


async def test_bulk_pause_list_and_resume(
    cli: Cli, loans: Loans, client: Client, pool: asyncpg.Pool
) -> None:
    matching = {label: loans.new_id(f"bulk-{label}") for label in AMOUNTS}
    other = loans.new_id("outside-bulk")
    for label, loan_id in matching.items():
        started = await cli(*start_args(loan_id, outstanding=AMOUNTS[label]))
        assert started.code == 0, started
    assert (await cli(*start_args(other, outstanding="999.00"))).code == 0

    # Visibility is eventually consistent: wait until it lists every loan with its balance.
    full_query = f'WorkflowType = "LoanCollection" AND {QUERY}'

    async def all_visible() -> bool:
        rows = [e async for e in client.list_workflows(full_query)]
        return len(rows) == len(AMOUNTS) and all(
            "OutstandingMinor" in {p.key.name for p in r.typed_search_attributes} for r in rows
        )

    await eventually(all_visible, what="the bulk loans in visibility with their balances")

    # --- list, sorted on the client --------------------------------------------------------
    listed = await cli("list", "--query", QUERY, "--sort", "-OutstandingMinor", "--json")
    assert listed.code == 0, listed
    rows = listed.json()
    by_amount = sorted(AMOUNTS, key=lambda label: float(AMOUNTS[label]), reverse=True)
    assert [r["LoanId"] for r in rows] == [matching[label] for label in by_amount]
    assert [r["OutstandingMinor"] for r in rows] == [
        round(float(AMOUNTS[label]) * 100) for label in by_amount
    ]
    assert all(r["status"] == "RUNNING" and r["CollectionStage"] == "early" for r in rows), rows
    assert isinstance(rows[0]["DaysPastDue"], int)

    wide = Cli({**cli.env, "COLUMNS": "200"})  # the table on one line a row, as on a wide terminal
    ascending = await wide("list", "--query", QUERY, "--sort", "OutstandingMinor", "--limit", "2")
    assert ascending.code == 0, ascending
    shown = [line for line in ascending.stdout.splitlines() if PREFIX in line]
    assert [line.split()[1] for line in shown] == [matching["c"], matching["a"]], ascending
    assert "2 of 4 collection(s) match" in ascending.stderr

    (await cli("list", "--query", "Bogus = 1")).assert_user_error("--query")
    refused = (await cli("list", "--sort", "-Balance")).assert_user_error("--sort")
    assert "OutstandingMinor" in refused and "StartTime" in refused

    # --- refusals before anything is sent ---------------------------------------------------
    (await cli("pause", other, "--query", QUERY, "--reason", "x")).assert_user_error("--query")
    (await cli("pause", "--reason", "x")).assert_user_error("loan_id")
    bad_input = await cli("signal", "pause", "--query", QUERY, "--input", '{"operator": "ops:a"}')
    assert "reason: is required" in bad_input.assert_user_error("--input")
    (await cli("signal", "payment_received", "--query", QUERY)).assert_user_error("NAME")
    # Above the threshold and not on a terminal: only --yes goes on.
    unconfirmed = await cli(
        "pause", "--query", QUERY, "--reason", "fraud sweep", "--confirm-above", "2"
    )
    assert "4 loans match" in unconfirmed.assert_user_error("--yes")
    nothing = await cli("pause", "--query", f'LoanId = "{PREFIX}nobody"', "--reason", "x", "--json")
    assert nothing.code == 0, nothing
    assert nothing.json()["matched"] == 0 and nothing.json()["job_id"] is None
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM bulk_operations WHERE query LIKE $1", f"%{PREFIX}%"
        )
        == 0
    )
    for loan_id in [*matching.values(), other]:
        assert await hold_of(client, loan_id) is None

    # --- bulk pause through the server's batch operation -----------------------------------
    paused = await cli(
        "pause", "--query", QUERY, "--reason", "fraud sweep", "--by", "ops:ann", "--yes", "--json"
    )
    assert paused.code == 0, paused
    job = paused.json()
    assert (job["state"], job["matched"], job["succeeded"], job["failed"]) == (
        "completed",
        4,
        4,
        0,
    )

    async def all_paused() -> bool:
        holds = [await hold_of(client, loan_id) for loan_id in matching.values()]
        return all(h is not None for h in holds)

    await eventually(all_paused, what="every matching loan paused")
    for loan_id in matching.values():
        hold = await hold_of(client, loan_id)
        assert (hold.operator, hold.reason) == ("ops:ann", "fraud sweep")
    assert await hold_of(client, other) is None

    shown_status = await cli("status", matching["b"])
    assert "paused by ops:ann" in shown_status.stdout, shown_status

    # Each loan audits its own pause, with the operator and the reason.
    audited = await pool.fetch(
        "SELECT loan_id, details FROM audit_log WHERE action = 'collection_paused'"
        " AND loan_id LIKE $1",
        f"{PREFIX}%",
    )
    assert sorted(r["loan_id"] for r in audited) == sorted(matching.values())
    for entry in audited:
        details = _json(entry["details"])
        assert (details["operator"], details["reason"]) == ("ops:ann", "fraud sweep")
    recorded = await pool.fetchrow("SELECT * FROM bulk_operations WHERE job_id = $1", job["job_id"])
    assert recorded is not None
    assert (recorded["signal"], recorded["operator"], recorded["reason"]) == (
        "pause",
        "ops:ann",
        "fraud sweep",
    )
    assert QUERY in recorded["query"] and recorded["matched"] == 4
    assert (recorded["state"], recorded["succeeded"], recorded["failed"]) == ("completed", 4, 0)

    # --- bulk resume with the generic signal command ---------------------------------------
    resumed = await cli(
        "signal",
        "resume",
        "--query",
        QUERY,
        "--input",
        '{"reason": "cleared", "operator": "ops:bo"}',
        "--by",
        "ops:bo",
        "--yes",
    )
    assert resumed.code == 0, resumed
    assert "4 matched, 4 signalled, 0 failed" in resumed.stdout

    async def all_resumed() -> bool:
        holds = [await hold_of(client, loan_id) for loan_id in matching.values()]
        return all(h is None for h in holds)

    await eventually(all_resumed, what="every matching loan resumed")
    resumes = await pool.fetch(
        "SELECT loan_id, details FROM audit_log WHERE action = 'collection_resumed'"
        " AND loan_id LIKE $1",
        f"{PREFIX}%",
    )
    assert sorted(r["loan_id"] for r in resumes) == sorted(matching.values())
    assert all(_json(r["details"])["operator"] == "ops:bo" for r in resumes)


def _json(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)
