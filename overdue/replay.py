"""Replaying workflow histories with the current code, to prove a change is deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from workflows.loan_collection import LoanCollection
from workflows.sandbox import workflow_runner


def replayer() -> Replayer:
    return Replayer(workflows=[LoanCollection], workflow_runner=workflow_runner())


async def replay_history(history: WorkflowHistory, source: str) -> dict[str, Any]:
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    error = str(result.replay_failure) if result.replay_failure else None
    return {
        "workflow_id": history.workflow_id,
        "source": source,
        "ok": error is None,
        "error": error,
    }


async def replay_files(paths: list[Path]) -> list[dict[str, Any]]:
    results = []
    for path in paths:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        results.append(await replay_history(history, str(path)))
    return results


async def replay_workflow(client: Client, workflow_id: str) -> dict[str, Any]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return await replay_history(history, "server")
