"""The ``overdue`` command line end to end, against the real dev server and PostgreSQL.

Every CLI command runs as a subprocess, the way an operator runs it, while the production worker
runs in this process on the dev server (real time, not time-skipping). Loans are started with a
compressed clock (``--day-seconds``) of at least 30 real seconds per collection day and a due date
of the borrower's yesterday, so every loan stays in the early stage for the whole module.
Borrowers are ``never_answers-*``: the simulator never pays for them, so every payment is ours.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from overdue import client as ops
from overdue.loans import CSV_COLUMNS
from tests.integration.support import (
    BUSY_DAY_SECONDS,
    DEADLINE,
    HISTORIES,
    QUIET_DAY_SECONDS,
    RUN,
    Cli,
    Loans,
    daytime_zone,
    eventually,
    past_due_loan,
    start_args,
    workflow_exists,
    yesterday,
)
from tests.phones import unique_phone
from workflows.collection import LoanCollection
from workflows.money import format_minor
from workflows.types import Contact, workflow_id_for

pytestmark = pytest.mark.integration


BUSY_PHONE_E164 = unique_phone()
BUSY_PHONE = f"+1 ({BUSY_PHONE_E164[2:5]}) {BUSY_PHONE_E164[5:8]}-{BUSY_PHONE_E164[8:]}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def busy_loan(cli: Cli, loans: Loans) -> tuple[str, str]:
    """A loan on a 30-second day whose borrower it is daytime for: outreach starts at once."""
    loan_id = loans.new_id("busy")
    zone = daytime_zone()
    started = await cli(
        *start_args(loan_id, phone=BUSY_PHONE, timezone=zone, day_seconds=BUSY_DAY_SECONDS)
    )
    assert started.code == 0, started
    assert started.json()["started"] is True
    return loan_id, zone


# --- 1. start is idempotent -----------------------------------------------------------------


async def test_start_twice_runs_one_collection(cli: Cli, client: Client, loans: Loans) -> None:
    loan_id = loans.new_id("twice")
    args = start_args(loan_id)

    first = await cli(*args)
    assert first.code == 0, first
    assert first.json() == {
        "loan_id": loan_id,
        "outcome": "started",
        "started": True,
        "already_running": False,
    }

    second = await cli(*args)
    assert second.code == 0, second
    assert second.json() == {
        "loan_id": loan_id,
        "outcome": "already_running",
        "started": False,
        "already_running": True,
    }

    async def executions() -> list[Any]:
        query = f'WorkflowId="{workflow_id_for(loan_id)}"'
        return [e async for e in client.list_workflows(query)]

    listed = await eventually(executions, what="the collection in visibility")
    assert len(listed) == 1, listed
    assert listed[0].status == WorkflowExecutionStatus.RUNNING
    described = await client.get_workflow_handle(workflow_id_for(loan_id)).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.run_id == listed[0].run_id


# --- 2. payments through the CLI ------------------------------------------------------------


async def test_payments_from_the_cli_until_cured(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = loans.new_id("pay")
    started = await cli(*start_args(loan_id, outstanding="500.00"))
    assert started.code == 0, started
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    first_id, rest_id = f"{loan_id}-p1", f"{loan_id}-p2"

    # `overdue pay` stores the payment in the outbox, then waits for the collection's answer
    # (the `apply_payment` update).
    paid = await cli("pay", loan_id, "120.50", "--payment-id", first_id, "--json")
    assert paid.code == 0, paid
    assert paid.json() == {
        "loan_id": loan_id,
        "payment_id": first_id,
        "amount_minor": 12050,
        "currency": "USD",
        "via": "update",
        "status": "applied",
        "replayed": False,
        "applied": True,
        "duplicate": False,
        "outstanding_minor": 37950,
        "outstanding": "379.50",
        "stage": "early",
    }
    # Answered means applied: the status shows it at once, from the collection and the ledger.
    shown = await cli("status", loan_id, "--json")
    assert shown.code == 0, shown
    view = shown.json()
    assert [p["payment_id"] for p in view["payments"]] == [first_id]
    assert view["stage"] == "early"
    assert view["workflow_status"] == "running"
    assert view["outstanding"] == "379.50"
    assert view["payments"][0]["amount_minor"] == 12050
    assert view["payments"][0]["outstanding_after"] == 37950
    assert view["payments"][0]["source"] == "cli"

    # The same payment id again answers as the first did, from the outbox, and changes nothing.
    again = await cli("pay", loan_id, "120.50", "--payment-id", first_id, "--json")
    assert again.code == 0, again
    assert (again.json()["status"], again.json()["replayed"]) == ("applied", True)
    assert (again.json()["applied"], again.json()["duplicate"]) == (False, True)
    assert again.json()["outstanding_minor"] == 37950
    # The same id with another amount is refused, naming the payment id, before it is stored.
    reused = await cli("pay", loan_id, "1.00", "--payment-id", first_id, "--json")
    assert "already recorded" in reused.assert_user_error("payment_id")
    history = await handle.fetch_history()
    updates = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(updates) == 1, "a payment is delivered once; its repeat is answered by the outbox"
    shown = await cli("status", loan_id, "--json")
    assert shown.code == 0, shown
    assert shown.json()["outstanding_minor"] == 37950
    assert shown.json()["applied_payment_ids"] == [first_id]
    assert [p["payment_id"] for p in shown.json()["payments"]] == [first_id]
    assert await pool.fetchval("SELECT count(*) FROM payments WHERE payment_id = $1", first_id) == 1

    # Paying the rest cures the loan and ends the collection.
    rest = await cli("pay", loan_id, "379.50", "--payment-id", rest_id, "--json")
    assert rest.code == 0, rest
    assert (rest.json()["outstanding_minor"], rest.json()["stage"]) == (0, "cured")
    summary = await asyncio.wait_for(handle.result(), DEADLINE)
    assert summary.final_stage == "cured"
    assert summary.resolved_in == "early"
    assert summary.outstanding_minor == 0
    assert summary.recovered_minor == 50000
    assert summary.payments == 2

    loan = await pool.fetchrow(
        "SELECT stage, outstanding_minor, closed_at FROM loans WHERE loan_id = $1", loan_id
    )
    assert loan is not None
    assert loan["stage"] == "cured"
    assert loan["outstanding_minor"] == 0
    assert loan["closed_at"] is not None
    applied = await pool.fetch(
        "SELECT details->>'payment_id' AS payment_id, (details->>'outstanding_after')::int AS after"
        " FROM audit_log WHERE loan_id = $1 AND action = 'payment_applied' ORDER BY seq",
        loan_id,
    )
    assert [(r["payment_id"], r["after"]) for r in applied] == [(first_id, 37950), (rest_id, 0)]
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE loan_id = $1 AND action = 'stage_changed'"
        " AND details->>'to' = 'cured'",
        loan_id,
    )

    # The ended loan still has a status, and refuses further payments clearly.
    ended = await cli("status", loan_id, "--json")
    assert ended.code == 0, ended
    final = ended.json()
    assert final["workflow_status"] == "completed"
    assert final["stage"] == "cured"
    assert final["outstanding"] == "0.00"
    assert final["recovered_minor"] == 50000
    assert [p["payment_id"] for p in final["payments"]] == [first_id, rest_id]
    # A payment after the end is recorded in the ledger, as the HTTP API's is: a credit.
    late_id = f"{loan_id}-p3"
    late = await cli("pay", loan_id, "1", "--payment-id", late_id, "--json")
    assert late.code == 0, late
    assert late.json() == {
        "loan_id": loan_id,
        "payment_id": late_id,
        "amount_minor": 100,
        "currency": "USD",
        "via": "update",
        "status": "applied",
        "replayed": False,
        "applied": True,
        "duplicate": False,
        "outstanding_minor": 0,
        "outstanding": "0.00",
        "stage": "cured",
    }
    assert (
        await pool.fetchval("SELECT overpaid_minor FROM payments WHERE payment_id = $1", late_id)
        == 100
    )
    # A signal cannot reach an ended collection: the payment, stored, is recorded in the ledger.
    signalled = await cli(
        "pay", loan_id, "1", "--payment-id", f"{loan_id}-p4", "--signal", "--json"
    )
    assert signalled.code == 0, signalled
    assert (
        signalled.json()["status"],
        signalled.json()["signalled"],
        signalled.json()["outstanding_minor"],
    ) == ("applied", False, 0)
    assert await pool.fetchval(
        "SELECT overpaid_minor FROM payments WHERE payment_id = $1", f"{loan_id}-p4"
    )

    # A cured loan is not collected again.
    again = await cli(*start_args(loan_id))
    assert again.code == 0, again
    assert again.json()["outcome"] == "already_ended"


# --- 3. bad input ---------------------------------------------------------------------------


async def test_bad_input_is_one_line_naming_the_field(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan_id = loans.new_id("bad")
    started = await cli(*start_args(loan_id, outstanding="500.00", currency="USD"))
    assert started.code == 0, started
    unknown = f"it-{RUN}-NOPE"
    bad_zone, bad_currency, bad_date = (loans.new_id(f"bad-start-{n}") for n in range(3))
    cases: list[tuple[str, list[str]]] = [
        ("amount", ["pay", loan_id, "-5", "--payment-id", "neg", "--json"]),
        ("amount", ["pay", loan_id, "abc", "--payment-id", "abc", "--json"]),
        ("amount", ["pay", loan_id, "1.001", "--payment-id", "dec", "--json"]),
        ("currency", ["pay", loan_id, "5", "--payment-id", "eur", "--currency", "EUR", "--json"]),
        ("loan_id", ["pay", unknown, "1", "--payment-id", "x", "--json"]),
        ("loan_id", ["status", unknown, "--json"]),
        ("loan_id", ["status", unknown]),
        ("timezone", [*start_args(bad_zone), "--timezone", "Mars/Olympus_Mons"]),
        ("currency", [*start_args(bad_currency), "--currency", "XYZ"]),
        ("due_date", [*start_args(bad_date), "--due-date", "2026-02-30"]),
    ]
    results = await asyncio.gather(*(cli(*args) for _, args in cases))
    for (field_name, _), result in zip(cases, results, strict=True):
        result.assert_user_error(field_name)
    assert "-5" in results[0].stderr
    assert "EUR" in results[3].stderr and "USD" in results[3].stderr

    for never_started in (bad_zone, bad_currency, bad_date, unknown):
        assert not await workflow_exists(client, never_started)
    assert not await pool.fetchval(
        "SELECT count(*) FROM loans WHERE loan_id = ANY($1::text[])",
        [bad_zone, bad_currency, bad_date],
    )
    # Nothing bad reached the workflow: the loan is as it started.
    shown = await cli("status", loan_id, "--json")
    assert shown.code == 0, shown
    assert shown.json()["outstanding_minor"] == 50000
    assert shown.json()["payments"] == []
    assert shown.json()["applied_payment_ids"] == []


# --- 4. importing a loan book ---------------------------------------------------------------


def loan_book(rows: list[dict[str, str]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def book_row(loan_id: str, **changes: str) -> dict[str, str]:
    zone = changes.get("timezone", "America/Chicago")
    row = {
        "loan_id": loan_id,
        "borrower_id": f"never_answers-{loan_id}",
        "borrower_name": "Dee Ray",
        "phone": "+15550004000",
        "timezone": zone,
        "product": "personal",
        "principal": "800.00",
        "outstanding": "250.00",
        "currency": "USD",
        "due_date": yesterday(zone),
        "jurisdiction": "us",
        "contacts": f"{loan_id}-c1|Eve Fox|+15550005000|friend;{loan_id}-c2|Gus Ho|+15550006000|sibling",
    }
    row.update(changes)
    return row


async def test_import_starts_good_rows_and_rejects_bad_ones(
    cli: Cli, client: Client, loans: Loans, tmp_path: Path
) -> None:
    good = [loans.new_id(f"book-good-{n}") for n in range(3)]
    bad_amount, bad_jurisdiction, no_borrower = (
        loans.new_id(f"book-bad-{n}") for n in ("amount", "jurisdiction", "borrower")
    )
    rows = [
        book_row(good[0]),  # line 2
        book_row(bad_amount, outstanding="12,50"),  # line 3
        book_row(good[1], timezone="Asia/Shanghai", currency="CNY", jurisdiction="cn"),  # line 4
        book_row(bad_jurisdiction, jurisdiction="zz"),  # line 5
        book_row(good[2], contacts=""),  # line 6
        book_row(no_borrower, borrower_id=""),  # line 7
    ]
    book = tmp_path / "loans.csv"
    book.write_text(loan_book(rows))

    first = await cli("import", str(book), "--day-seconds", QUIET_DAY_SECONDS, "--json")
    assert first.code == 1, first
    assert "Traceback" not in first.stderr
    report = first.json()
    assert report["started"] == good
    assert report["already_running"] == []
    rejected = {(r["line"], r["field"]) for r in report["rejected"]}
    assert rejected == {(3, "outstanding"), (5, "jurisdiction"), (7, "borrower_id")}, report
    assert all(r["error"] for r in report["rejected"])

    for loan_id in good:
        assert await workflow_exists(client, loan_id)
    for loan_id in (bad_amount, bad_jurisdiction, no_borrower):
        assert not await workflow_exists(client, loan_id)
        listed = [
            e async for e in client.list_workflows(f'WorkflowId="{workflow_id_for(loan_id)}"')
        ]
        assert listed == []

    again = await cli("import", str(book), "--day-seconds", QUIET_DAY_SECONDS, "--json")
    assert again.code == 1, again
    assert again.json()["started"] == []
    assert again.json()["already_running"] == good
    assert again.json()["rejected"] == report["rejected"]


async def test_import_of_garbage_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    prose = tmp_path / "prose.csv"
    prose.write_text("Dear collector,\nplease find attached nothing at all.\n")
    huge = tmp_path / "huge.csv"
    # A right header, then a cell over the csv module's size limit.
    huge.write_text(",".join(CSV_COLUMNS) + "\n" + "x" * 200_000 + "\n")
    missing = tmp_path / "missing.csv"

    unreadable = await asyncio.gather(
        cli("import", str(binary), "--json"),
        cli("import", str(missing), "--json"),
        cli("import", str(tmp_path), "--json"),
    )
    for result in unreadable:
        assert "path:" in result.assert_user_error("path")
    # A line the csv module cannot read is one bad line of a loan book, not an unreadable file.
    over_limit = await cli("import", str(huge), "--json")
    assert over_limit.code == 1, over_limit
    assert [(r["line"], r["field"]) for r in over_limit.json()["rejected"]] == [(2, "line")]

    not_books = await asyncio.gather(
        cli("import", str(empty), "--json"),
        cli("import", str(prose), "--json"),
        cli("import", str(empty)),
    )
    for result in not_books[:2]:
        assert result.code == 1, result
        assert "Traceback" not in result.stderr + result.stdout
        report = result.json()
        assert report["started"] == [] and report["already_running"] == []
        assert {r["field"] for r in report["rejected"]} >= {"loan_id", "outstanding", "due_date"}
        assert all(r["line"] == 1 and "header" in r["error"] for r in report["rejected"])
    plain = not_books[2]
    assert plain.code == 1, plain
    assert "Traceback" not in plain.stderr + plain.stdout
    assert "started 0" in plain.stdout
    assert "line 1: loan_id: column is missing from the header" in plain.stderr


# --- 5. the ledger, written by the workflow on the dev server -------------------------------


async def test_ledger_rows_and_the_first_reminder(
    busy_loan: tuple[str, str], pool: asyncpg.Pool
) -> None:
    loan_id, zone = busy_loan

    async def opened() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT stage, outstanding_minor, principal_minor, trim(currency) AS currency,"
            " jurisdiction, borrower_id FROM loans WHERE loan_id = $1",
            loan_id,
        )

    loan = await eventually(opened, what="the loan in the ledger")
    assert dict(loan) == {
        "stage": "early",
        "outstanding_minor": 50000,
        "principal_minor": 100000,
        "currency": "USD",
        "jurisdiction": "us",
        "borrower_id": f"never_answers-{loan_id}",
    }
    borrower = await pool.fetchrow(
        "SELECT name, phone, timezone FROM borrowers WHERE borrower_id = $1",
        f"never_answers-{loan_id}",
    )
    assert borrower is not None and dict(borrower) == {
        "name": "Ann Lee",
        "phone": BUSY_PHONE_E164,  # stored as E.164, however it was written
        "timezone": zone,
    }
    contacts = await pool.fetch(
        "SELECT contact_id, relation FROM contacts WHERE loan_id = $1 ORDER BY contact_id", loan_id
    )
    assert [tuple(r) for r in contacts] == [
        (f"{loan_id}-c1", "sibling"),
        (f"{loan_id}-c2", "workplace"),
    ]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE loan_id = $1 AND action = 'loan_opened'", loan_id
        )
        == 1
    )

    async def reminder() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT channel, target, purpose, at_local, outcome, message FROM contact_attempts"
            " WHERE loan_id = $1 AND channel = 'sms' ORDER BY attempt_no LIMIT 1",
            loan_id,
        )

    sms = await eventually(reminder, what="the early reminder SMS")
    assert sms["target"] == "borrower"
    assert sms["purpose"] == "early_reminder"
    assert sms["outcome"] == "delivered"
    assert sms["at_local"].strip()
    local_hour = int(sms["at_local"].split()[1].split(":")[0])
    assert 8 <= local_hour < 21, f"sent outside the contact window: {sms['at_local']} ({zone})"
    assert "Ann" in sms["message"] and loan_id in sms["message"]
    assert await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE loan_id = $1 AND action = 'contact_attempt'", loan_id
    )


async def test_audit_log_is_append_only(busy_loan: tuple[str, str], pool: asyncpg.Pool) -> None:
    loan_id, _ = busy_loan

    async def entries() -> int:
        return int(
            await pool.fetchval("SELECT count(*) FROM audit_log WHERE loan_id = $1", loan_id)
        )

    await eventually(entries, what="audit entries")
    async with pool.acquire() as conn:
        before = await conn.fetch("SELECT seq, actor FROM audit_log WHERE loan_id = $1", loan_id)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("UPDATE audit_log SET actor = 'tamper' WHERE loan_id = $1", loan_id)
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM audit_log WHERE loan_id = $1", loan_id)
        after = await conn.fetch(
            "SELECT seq, actor FROM audit_log WHERE loan_id = $1 AND seq <= $2",
            loan_id,
            max(r["seq"] for r in before),
        )
    assert [tuple(r) for r in after] == [tuple(r) for r in before]


# --- 6. replay ------------------------------------------------------------------------------


async def test_replay_histories_and_a_workflow_from_this_module(
    cli: Cli, client: Client, busy_loan: tuple[str, str], tmp_path: Path
) -> None:
    """Replay the committed histories (if any) and the busy loan's whole life, once cured."""
    loan_id, _ = busy_loan
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    status = await handle.query(LoanCollection.status)
    assert status.stage == "early"
    paid = await cli(
        "pay",
        loan_id,
        format_minor(status.outstanding_minor, status.currency),
        "--payment-id",
        f"{loan_id}-all",
    )
    assert paid.code == 0, paid
    summary = await asyncio.wait_for(handle.result(), DEADLINE)
    assert summary.final_stage == "cured"

    workflow_id = workflow_id_for(loan_id)
    run_id = (await handle.describe()).run_id
    replayed = await cli("replay", *map(str, HISTORIES), "--workflow-id", workflow_id, "--json")
    assert replayed.code == 0, replayed
    report = replayed.json()
    assert report["failed"] == 0, report
    assert report["replayed"] == len(HISTORIES) + 1
    from_server = [r for r in report["results"] if r["workflow_id"] == workflow_id]
    assert [(r["ok"], r["run_id"], r["diverging"]) for r in from_server] == [(True, run_id, None)]

    # By visibility query, and exported for the corpus: the export replays like the server's.
    query = f'LoanId = "{loan_id}" AND ExecutionStatus = "Completed"'
    by_query = await cli("replay", "--query", query, "--json")
    assert by_query.code == 0, by_query
    assert [r["workflow_id"] for r in by_query.json()["results"]] == [workflow_id]
    exported = await cli("history", "export", "--query", query, "--out", str(tmp_path), "--json")
    assert exported.code == 0, exported
    [path] = exported.json()["written"]
    assert path.endswith(f"{workflow_id}@{run_id}.json")
    again = await cli("replay", path, "--json")
    assert again.json()["results"][0]["ok"] is True

    # A history the code no longer reproduces fails, with the workflow and the event named:
    # here its first patch marker names a change this code does not know.
    history = json.loads(Path(path).read_text())
    marker = next(
        e
        for e in history["events"]
        if e.get("markerRecordedEventAttributes", {}).get("markerName") == "core_patch"
    )
    payload = marker["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"][0]
    patch = json.loads(base64.b64decode(payload["data"]))
    payload["data"] = base64.b64encode(json.dumps({**patch, "id": "renamed"}).encode()).decode()
    Path(path).write_text(json.dumps(history))
    diverged = await cli("replay", path)
    assert diverged.code == 1, diverged
    assert f"FAIL {workflow_id}" in diverged.stdout
    assert f"first diverging event {marker['eventId']}" in diverged.stdout

    (await cli("replay", "--query", "LoanId = ")).assert_user_error("query")
    (await cli("history", "export", "--query", 'LoanId = "none"')).assert_user_error("query")


# --- a query right after start ----------------------------------------------------------------


async def test_status_and_pay_right_after_start(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    """Before its first activities finish a collection has no state yet; queries must still work."""
    loan_id = loans.new_id("early-query")
    loan = past_due_loan(
        loan_id,
        zone="Europe/Paris",
        principal_minor=90000,
        outstanding_minor=30000,
        currency="EUR",
        contacts=[Contact(f"{loan_id}-c1", "Bo Chen", "+15550002000", "sibling")],
    )
    assert await ops.start_collection(client, loan, day_seconds=float(QUIET_DAY_SECONDS))
    view = await ops.loan_status(client, pool, loan_id)  # at once: the loan is still opening
    assert view["workflow_status"] == "running"
    assert view["stage"] == "early"
    assert view["outstanding_minor"] == 30000
    assert view["currency"] == "EUR"
    payment = await ops.send_payment(client, loan_id, "100", payment_id=f"{loan_id}-p1")
    assert payment.amount_minor == 10000 and payment.currency == "EUR"

    async def applied() -> int | None:
        status = await client.get_workflow_handle(workflow_id_for(loan_id)).query(
            LoanCollection.status
        )
        return status.outstanding_minor if status.applied_payment_ids else None

    assert await eventually(applied, what="the payment applied") == 20000
