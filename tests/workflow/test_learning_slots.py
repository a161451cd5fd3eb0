"""Learning slots on the real worker: a borrower who answers only in the evening is called there
once reached, the state carries what was learnt across continue-as-new, and every call's audit
entry says why its slot was chosen.

The borrower is simulated: ``night_owl-`` borrowers answer in the evening slot (85 %), almost
never at other times, and never pay, so the collection keeps calling them. The blind rotation
starts again from the morning after every conversation (a quarter to a third of its calls would
be evening calls); learning should aim most calls after the first conversation at the evening.
Outcomes are drawn per attempt and the workflow's random source per run, so the figures vary from
run to run: the bound below leaves a wide margin.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import (
    advance_to_dpd,
    audit,
    collecting,
    poll_status,
    settled_by,
)
from workflows.vocabulary import Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

SLOTS = {"morning", "midday", "afternoon", "evening"}
DAYS = 12  # collection days the loan runs: past the middle stage's continue-as-new (DPD 6)


async def test_an_evening_only_borrower_is_called_in_the_evening_once_reached(
    time_env: WorkflowEnvironment, loans: Loans, pool: asyncpg.Pool
) -> None:
    loan, handle = await loans.start_new(
        persona="night_owl", timezone="Asia/Shanghai", jurisdiction="cn", currency="CNY"
    )
    await collecting(handle)
    moment = await advance_to_dpd(time_env, loan, 1 + DAYS)
    status = await poll_status(handle, settled_by(moment - timedelta(minutes=1)))
    assert status.stage == Stage.MIDDLE, "the loan continued as new into the middle stage"

    calls = await pool.fetch(
        "SELECT attempt_no, slot, outcome FROM contact_attempts WHERE loan_id = $1"
        " AND channel = 'call' AND target = 'borrower' ORDER BY attempt_no",
        loan.loan_id,
    )
    answered = [i for i, call in enumerate(calls) if call["outcome"] == "answered"]
    assert answered, f"the borrower was never reached: {[c['slot'] for c in calls]}"
    after = [call["slot"] for call in calls[answered[0] + 1 :]]
    evening_share = after.count("evening") / len(after) if after else 0.0
    print(
        f"{len(calls)} borrower calls, first answer at call {answered[0] + 1};"
        f" after it {len(after)} calls, {evening_share:.0%} in the evening: {after}"
    )
    assert len(after) >= 5, f"too few calls after the first conversation: {after}"
    assert evening_share >= 0.6, f"learning did not aim at the evening: {after}"
    # Before the first answer, no slot was called twice while another was still untried.
    before = [call["slot"] for call in calls[: answered[0]]]
    assert len(set(before[: len(SLOTS)])) == len(before[: len(SLOTS)]), before

    entries = [
        e for e in await audit(pool, loan.loan_id, "contact_attempt") if e["target"] == "borrower"
    ]
    calls_audited = [e for e in entries if e["channel"] == "call"]
    assert len(calls_audited) == len(calls)
    for entry in calls_audited:
        why = entry["slot_choice"]
        assert set(why) == SLOTS, entry
        # A call whose timer fired late may fall between slots (``off_slot``); none falls in a
        # slot the sampler kept waiting.
        if entry["slot"] in why:
            assert why[entry["slot"]].startswith("#"), f"called in a slot not ranked: {entry}"
