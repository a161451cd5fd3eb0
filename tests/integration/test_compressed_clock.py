"""A compressed clock on the dev server: its contacts take place at their planned moments.

The dev server fires timers on a tick of most of a real second when busy, hours of a two-second
collection day. A loan on such a clock must still rotate its unanswered calls through every slot
of the day, and its history, which takes the ``compressed-clock-on-plan`` gate, must replay.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from overdue.borrowers import default_strategy
from overdue.replay import HistoryReplayer
from tests.integration.support import Loans, eventually, past_due_loan, start_until_opened
from workflows.collection import patches
from workflows.types import workflow_id_for

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

DAY_SECONDS = 2.0  # the demo's


async def _unanswered_slots(pool: asyncpg.Pool, loan_id: str, count: int) -> list[str] | None:
    slots: list[str] = await pool.fetchval(
        "SELECT array_agg(slot ORDER BY attempt_no) FROM contact_attempts"
        " WHERE loan_id = $1 AND channel = 'call' AND target = 'borrower'"
        " AND outcome IN ('no_answer', 'busy', 'wrong_party')",  # what rotates (rotation.py)
        loan_id,
    )
    return slots[:count] if slots and len(slots) >= count else None


async def test_unanswered_calls_rotate_on_a_compressed_clock_and_the_history_replays(
    client: Client, pool: asyncpg.Pool, worker: Worker, loans: Loans
) -> None:
    loan = past_due_loan(loans.new_id("compressed-rotation"), persona="never_answers")
    await start_until_opened(client, pool, loan, day_seconds=DAY_SECONDS)
    slots_a_day = len(default_strategy().slots)

    async def first_rotation() -> list[str] | None:
        return await _unanswered_slots(pool, loan.loan_id, slots_a_day)

    slots = await eventually(first_rotation, timeout=120, what="a rotation of unanswered calls")
    if sorted(slots) != sorted(slot.name for slot in default_strategy().slots):
        # Every contact of the loan, to tell a broken rotation from a new one.
        contacts = await pool.fetch(
            "SELECT attempt_no, channel, target, slot, outcome, at_local FROM contact_attempts"
            " WHERE loan_id = $1 ORDER BY attempt_no",
            loan.loan_id,
        )
        raise AssertionError(f"first rotation {slots}; contacts: {[tuple(c) for c in contacts]}")

    runs = await _every_run(client, workflow_id_for(loan.loan_id))
    patch_ids = {
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for history in runs
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    }
    # A collection opened on this code takes the compressed clock's gate with every other.
    assert patches.GATES_AT_OPEN in patch_ids, patch_ids
    results = await HistoryReplayer().replay_all((history, "server", None) for history in runs)
    assert [r.error for r in results if not r.ok] == []


async def _every_run(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Each run of the workflow, first to current, following continue-as-new (visibility
    listings lag; the chain itself does not)."""
    description = await client.get_workflow_handle(workflow_id).describe()
    run_id = description.raw_description.workflow_execution_info.first_run_id
    runs = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            else ""
        )
    return runs
