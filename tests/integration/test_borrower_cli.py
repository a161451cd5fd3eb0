"""``overdue borrower`` end to end: one borrower's two loans on the dev server and PostgreSQL.

As in ``test_cli.py``, the command runs as a subprocess while the production worker runs in
this process. Both loans belong to one ``never_answers`` borrower on one phone, in a zone where
it is daytime, on a 10-minute collection day: the first reminder goes out at once and the next
contacts are planned minutes of real time ahead, so the ledger holds still while it is read.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.client import Client

from overdue.borrowers import CONTACT_KINDS
from tests.integration.support import (
    QUIET_DAY_SECONDS,
    RUN,
    Cli,
    CliResult,
    Loans,
    daytime_zone,
    eventually,
    start_args,
)
from tests.phones import unique_phone
from workflows.budget import number_key
from workflows.types import CollectionStatus, workflow_id_for

pytestmark = pytest.mark.integration

BORROWER = f"never_answers-it-{RUN}-borrower"
NAME = "Ann Lee"


async def start_two_loans(cli: Cli, loans: Loans, phone: str, zone: str) -> list[str]:
    ids = [loans.new_id("borrower-a"), loans.new_id("borrower-b")]
    for loan_id, outstanding in zip(ids, ("500.00", "250.00"), strict=True):
        args = start_args(
            loan_id,
            name=NAME,
            phone=phone,
            timezone=zone,
            outstanding=outstanding,
            day_seconds=QUIET_DAY_SECONDS,
        )
        args[args.index("--borrower-id") + 1] = BORROWER  # one borrower, two loans
        started = await cli(*args)
        assert started.code == 0, started
    return ids


async def next_actions(client: Client, loan_ids: list[str]) -> dict[str, dict[str, Any]]:
    actions = {}
    for loan_id in loan_ids:
        handle = client.get_workflow_handle(workflow_id_for(loan_id))
        status = await handle.query("status", result_type=CollectionStatus)
        action = status.next_action
        actions[loan_id] = {"kind": action.kind, "at_utc": action.at_utc}
    return actions


async def fingerprint(pool: asyncpg.Pool, number: str) -> Any:
    """What the view reads, in short: it has not changed when this has not."""
    return await pool.fetchrow(
        "SELECT (SELECT count(*) FROM contact_attempts WHERE borrower_id = $1 OR number_key = $2)"
        " AS attempts,"
        " (SELECT count(*) FROM contact_outcomes o JOIN loans l USING (loan_id)"
        "  WHERE l.borrower_id = $1) AS outcomes,"
        " (SELECT string_agg(reservation_key || status || at::text, ',' ORDER BY reservation_key)"
        "  FROM contact_reservations WHERE borrower_id = $1) AS reservations",
        BORROWER,
        number,
    )


async def ledger_budget(
    pool: asyncpg.Pool, number: str, zone: str, as_of: datetime
) -> dict[str, tuple[int, int]]:
    """Each measure (today, last 7 days), counted in SQL straight from the ledger."""
    day = as_of.astimezone(ZoneInfo(zone)).date()
    day_start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo(zone))
    row = await pool.fetchrow(
        "WITH a AS (SELECT *, at_utc >= $3 AND at_utc < $4 AS today FROM contact_attempts"
        "  WHERE (borrower_id = $1 OR number_key = $2) AND at_utc > $5),"
        " calls AS (SELECT * FROM a WHERE channel = 'call' AND target = 'borrower'"
        "  AND borrower_id = $1),"
        " unanswered AS (SELECT * FROM a WHERE channel = 'call' AND number_key = $2"
        "  AND outcome IN ('no_answer', 'busy')),"
        " sms AS (SELECT * FROM a WHERE channel = 'sms' AND target = 'borrower'"
        "  AND borrower_id = $1),"
        " talks AS (SELECT today FROM calls WHERE outcome = 'answered' UNION ALL"
        "  SELECT o.at >= $3 AND o.at < $4 FROM contact_outcomes o JOIN loans l USING (loan_id)"
        "  WHERE l.borrower_id = $1 AND o.conversation AND o.at > $5)"
        " SELECT (SELECT count(*) FILTER (WHERE today) FROM calls) AS calls_today,"
        " (SELECT count(*) FROM calls) AS calls_week,"
        " (SELECT count(*) FILTER (WHERE today) FROM unanswered) AS unanswered_today,"
        " (SELECT count(*) FROM unanswered) AS unanswered_week,"
        " (SELECT count(*) FILTER (WHERE today) FROM talks) AS talks_today,"
        " (SELECT count(*) FROM talks) AS talks_week,"
        " (SELECT count(*) FILTER (WHERE today) FROM sms) AS sms_today,"
        " (SELECT count(*) FROM sms) AS sms_week",
        BORROWER,
        number,
        day_start,
        day_end,
        as_of - timedelta(days=7),
    )
    assert row is not None
    return {
        "calls": (row["calls_today"], row["calls_week"]),
        "unanswered_calls_to_number": (row["unanswered_today"], row["unanswered_week"]),
        "conversations": (row["talks_today"], row["talks_week"]),
        "sms": (row["sms_today"], row["sms_week"]),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_one_borrower_two_loans_one_budget(
    cli: Cli, client: Client, pool: asyncpg.Pool, loans: Loans
) -> None:
    zone, phone = daytime_zone(), unique_phone()
    number = number_key(phone)
    loan_ids = await start_two_loans(cli, loans, phone, zone)

    async def planned() -> dict[str, dict[str, Any]] | None:
        actions = await next_actions(client, loan_ids)
        sent = await pool.fetchval(
            "SELECT count(*) FROM contact_attempts WHERE borrower_id = $1", BORROWER
        )
        both = all(a["kind"] in CONTACT_KINDS and a["at_utc"] for a in actions.values())
        return actions if both and sent else None

    await eventually(planned, timeout=60, what="a first reminder and both loans' next contacts")

    # The ledger must hold still while the command reads it and the test checks it.
    async def consistent() -> tuple[CliResult, dict[str, dict[str, Any]]] | None:
        before = await fingerprint(pool, number)
        shown = await cli("borrower", BORROWER, "--json")
        actions = await next_actions(client, loan_ids)
        return (shown, actions) if await fingerprint(pool, number) == before else None

    shown, actions = await eventually(consistent, timeout=60, what="a still ledger")
    assert shown.code == 0, shown
    assert shown.stderr == ""
    view = shown.json()
    # No PII: neither the number nor the name.
    assert phone not in shown.stdout and phone[1:] not in shown.stdout
    assert NAME not in shown.stdout and number not in shown.stdout

    assert view["borrower_id"] == BORROWER and view["timezone"] == zone
    assert [(v["loan_id"], v["outstanding"], v["currency"]) for v in view["loans"]] == [
        (loan_ids[0], "500.00", "USD"),
        (loan_ids[1], "250.00", "USD"),
    ]
    for entry in view["loans"]:
        assert (entry["product"], entry["stage"], entry["jurisdiction"]) == (
            "personal",
            "early",
            "us",
        )
        assert entry["closed_at"] is None and entry["opened_at"]
        assert entry["workflow_status"] == "running"
        action = actions[entry["loan_id"]]
        assert entry["next_contact"]["kind"] == action["kind"]
        assert datetime.fromisoformat(entry["next_contact"]["at_utc"]) == action["at_utc"]
    assert view["plans"] == {"available": True, "problem": None}
    assert view["cease_requested"] is False and view["cease_requested_on"] == []

    budget = view["budget"]
    as_of = datetime.fromisoformat(budget["as_of"])
    assert budget["clock"] == "collection"  # a compressed clock runs ahead of the wall's
    expected = await ledger_budget(pool, number, zone, as_of)
    for measure, (today, week) in expected.items():
        assert (budget[measure]["today"], budget[measure]["week"]) == (today, week), measure
    assert budget["sms"]["today"] >= 1  # the first reminder
    assert (budget["calls"]["today_limit"], budget["calls"]["today_rule"]) == (3, "daily_calls")
    assert (budget["calls"]["week_limit"], budget["calls"]["week_rule"]) == (7, "calls_per_week")
    assert budget["unanswered_calls_to_number"]["today_limit"] is None  # us: no such cap

    held = await pool.fetch(
        "SELECT loan_id, channel FROM contact_reservations"
        " WHERE borrower_id = $1 AND status = 'held' AND expires_at > $2 ORDER BY at, loan_id",
        BORROWER,
        as_of,
    )
    assert [(r["loan_id"], r["channel"]) for r in view["reservations"]] == [
        (r["loan_id"], r["channel"]) for r in held
    ]

    table = await cli("borrower", BORROWER)
    assert table.code == 0, table
    for text in (*loan_ids, "Contact budget", "calls to borrower", "cease request: none"):
        assert text in table.stdout, table.stdout
    assert phone not in table.stdout and NAME not in table.stdout

    # Temporal down: the ledger's part all the same, and the plans said to be unavailable.
    down = Cli({**cli.env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
    offline = await down("borrower", BORROWER, "--json")
    assert offline.code == 0, offline
    without = offline.json()
    assert without["plans"]["available"] is False
    assert without["plans"]["problem"].startswith("temporal: cannot reach")
    assert [v["loan_id"] for v in without["loans"]] == loan_ids
    assert [v["next_contact"] for v in without["loans"]] == [None, None]
    assert without["budget"]["clock"] == "wall"
    in_words = await down("borrower", BORROWER)
    assert in_words.code == 0 and "plans unavailable" in in_words.stdout, in_words


async def test_an_unknown_or_malformed_borrower_is_one_line_naming_borrower_id(cli: Cli) -> None:
    unknown = await cli("borrower", f"nobody-{RUN}", "--json")
    assert "no borrower" in unknown.assert_user_error("borrower_id")
    unknown.assert_user_error("borrower_id")
    (await cli("borrower", "has space")).assert_user_error("borrower_id")
