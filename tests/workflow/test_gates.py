"""A collection opened on the current code asks one gate for its whole life (``gates-at-open``).

On the time-skipping server with the real worker and PostgreSQL. Older collections, which ask
gate by gate, are the replay corpus's ``before-gates-at-open-…`` stories.
"""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import advance_to_dpd, collecting, follow, poll_status, run_ids
from workflows.collection import patches
from workflows.vocabulary import Stage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_a_new_collection_asks_one_gate_in_all_its_runs(
    time_env: WorkflowEnvironment, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    # Into the middle stage: the first run continues as new, and the middle stage's first
    # contacts ask what a gate decides (the stage change's activity among them).
    await advance_to_dpd(time_env, loan, 7)
    status = await poll_status(follow(time_env, loan), lambda s: s.stage == Stage.MIDDLE)
    assert status.attempt_count > 0
    assert handle.first_execution_run_id is not None
    runs = await run_ids(time_env, loan, handle.first_execution_run_id)
    assert len(runs) >= 2
    asked, scheduled = [], []
    for run_id in runs:
        history = await time_env.client.get_workflow_handle(
            handle.id, run_id=run_id
        ).fetch_history()
        asked += [
            json.loads(
                event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
            )["id"]
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == "core_patch"
        ]
        scheduled += [
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
    assert asked == [patches.GATES_AT_OPEN]
    # The gates hold all the same: the stage change was written by its activity.
    assert "record_stage_change" in scheduled
