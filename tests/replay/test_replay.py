"""Replay the committed histories against the current workflow code.

A change to ``LoanCollection`` (or to anything it calls) that would make a running loan take a
different path on replay fails here with a non-determinism error. The histories are recorded by
``python -m tests.replay.record_histories``; every run of a continue-as-new chain is its own file.
No server is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from overdue.replay import HistoryReplayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    assert HISTORIES, (
        "no histories in tests/replay/histories: run python -m tests.replay.record_histories"
    )
    names = {path.stem for path in HISTORIES}
    # The referral story crosses every stage boundary, each one a continue-as-new.
    assert {"cured-run1", "cured-run2", "referred-run1", "referred-run4"} <= names
    for path in HISTORIES:
        assert path.stat().st_size < 1_000_000, f"{path.name} is too large to commit"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    text = path.read_text()
    events = json.loads(text)["events"]
    assert events[0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert events[-1]["eventType"] in (
        "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ), "record complete runs only"

    history = WorkflowHistory.from_json(f"replay-{path.stem}", text)
    result = await HistoryReplayer().replay(history, str(path))
    assert result.ok, f"{path.name}: {result.error}"


async def test_a_diverging_history_is_reported_at_its_first_diverging_event(
    tmp_path: Path,
) -> None:
    """What the code would do differently is found: here, a renamed activity in the history."""
    source = Path(__file__).parent / "histories" / "operator-hold-run1.json"
    history = json.loads(source.read_text())
    scheduled = [
        e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]
    changed = scheduled[2]  # the audit of the pause
    changed["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "something_else"
    tampered = tmp_path / "collection-L-x@run-1.json"
    tampered.write_text(json.dumps(history))

    [result] = await HistoryReplayer().replay_files([tampered])
    assert (result.workflow_id, result.run_id, result.ok) == ("collection-L-x", "run-1", False)
    assert result.error is not None and "Nondeterminism" in result.error
    assert "something_else" in result.error
    assert result.diverging is not None
    assert result.diverging.event_id == int(changed["eventId"])
    assert result.diverging.event_type == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
