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
from temporalio.worker import Replayer

from workflows.loan_collection import LoanCollection
from workflows.sandbox import workflow_runner

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

    replayer = Replayer(workflows=[LoanCollection], workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json(f"replay-{path.stem}", text), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
