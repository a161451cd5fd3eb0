"""``overdue pause`` and ``overdue resume`` end to end, on the dev server and PostgreSQL.

The commands run as subprocesses while the production worker runs in this process; each loan
has a 10-minute collection day, so nothing moves on its own during the module.
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.integration.support import Cli, Loans, start_args

pytestmark = pytest.mark.integration


async def test_pause_and_resume_answer_with_the_new_state(
    cli: Cli, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan_id = loans.new_id("hold")
    assert (await cli(*start_args(loan_id, outstanding="500.00"))).code == 0

    paused = await cli("pause", loan_id, "--reason", "fraud check", "--by", "ops:ann", "--json")
    assert paused.code == 0, paused
    view = paused.json()
    assert view["hold"]["operator"] == "ops:ann"
    assert view["hold"]["reason"] == "fraud check"
    assert view["next_action"]["kind"] == "on_hold"

    shown = await cli("status", loan_id)
    assert "paused by ops:ann" in shown.stdout, shown

    resumed = await cli("resume", loan_id, "--by", "ops:bo", "--json")
    assert resumed.code == 0, resumed
    assert resumed.json()["hold"] is None

    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE loan_id = $1 AND action LIKE 'collection_%'"
        " ORDER BY seq",
        loan_id,
    )
    assert [a["action"] for a in actions] == ["collection_paused", "collection_resumed"]


async def test_bad_holds_are_one_line_errors(cli: Cli, loans: Loans) -> None:
    loan_id = loans.new_id("hold-bad")
    assert (await cli(*start_args(loan_id, outstanding="500.00"))).code == 0

    (await cli("pause", loan_id, "--reason", "  ")).assert_user_error("reason")
    (await cli("pause", loans.new_id("nobody"), "--reason", "x")).assert_user_error("loan_id")
    (await cli("resume", loans.new_id("nobody"))).assert_user_error("loan_id")
