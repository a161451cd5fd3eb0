"""Replaying workflow histories with the current code, to prove a change is deterministic.

Histories come from files (exported by ``overdue history export``, the Temporal CLI or the Web
UI), from one workflow id, or from every workflow a visibility query matches. A history that no
longer replays is reported with the first event at which it diverges: the shortest prefix of the
history that fails to replay ends with that event.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from workflows.loan_collection import LoanCollection
from workflows.sandbox import workflow_runner

RUN_SEPARATOR = "@"  # exported files are named <workflow id>@<run id>.json


@dataclass
class DivergingEvent:
    """The first event of a history that the current code does not reproduce."""

    event_id: int
    event_type: str


@dataclass
class ReplayResult:
    workflow_id: str
    run_id: str | None
    source: str
    error: str | None = None
    diverging: DivergingEvent | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class HistoryReplayer:
    """Replays histories against ``LoanCollection`` as the worker runs it."""

    def __init__(self, data_converter: DataConverter | None = None) -> None:
        options = {"data_converter": data_converter} if data_converter is not None else {}
        self._replayer = Replayer(
            workflows=[LoanCollection], workflow_runner=workflow_runner(), **options
        )

    async def replay(
        self, history: WorkflowHistory, source: str, run_id: str | None = None
    ) -> ReplayResult:
        failure = await self._failure(history)
        result = ReplayResult(history.workflow_id, run_id or _run_id(history), source, failure)
        if failure is not None:
            result.diverging = await self._first_diverging_event(history)
        return result

    async def _failure(self, history: WorkflowHistory) -> str | None:
        replayed = await self._replayer.replay_workflow(history, raise_on_replay_failure=False)
        return _readable(str(replayed.replay_failure)) if replayed.replay_failure else None

    async def _first_diverging_event(self, history: WorkflowHistory) -> DivergingEvent | None:
        """Bisect for the shortest failing prefix; its last event is where replay diverges.

        A prefix of a history is a history the workflow was once at, and one that replays
        cleanly up to some event keeps doing so for every shorter prefix, so the search is sound.
        """
        events = history.events
        low, high = 1, len(events)
        while low < high:
            middle = (low + high) // 2
            if await self._failure(WorkflowHistory(history.workflow_id, events[:middle])):
                high = middle
            else:
                low = middle + 1
        if not await self._failure(WorkflowHistory(history.workflow_id, events[:low])):
            return None  # the failure needs the whole history (e.g. it ends mid-task)
        event = events[low - 1]
        return DivergingEvent(event.event_id, EventType.Name(event.event_type))

    async def replay_files(self, paths: list[Path]) -> list[ReplayResult]:
        results = []
        for path in paths:
            workflow_id, _, run_id = path.stem.partition(RUN_SEPARATOR)
            history = WorkflowHistory.from_json(workflow_id, path.read_text())
            results.append(await self.replay(history, str(path), run_id or None))
        return results

    async def replay_query(self, client: Client, query: str) -> list[ReplayResult]:
        """Every run of every workflow the visibility query matches, running or closed."""
        return [
            await self.replay(history, f"query {query!r}", run_id)
            async for history, run_id in histories(client, query)
        ]

    async def replay_workflow(self, client: Client, workflow_id: str) -> list[ReplayResult]:
        """Every run of one workflow id (a continue-as-new chain has several)."""
        return await self.replay_query(client, f"WorkflowId = {quoted(workflow_id)}")


async def export_histories(client: Client, query: str, folder: Path) -> list[Path]:
    """Write each matching run's history as ``<workflow id>@<run id>.json`` in ``folder``.

    The files are in the Temporal CLI's JSON form, so ``overdue replay`` and the test corpus
    (``tests/replay/histories``) read them like the CLI's and the Web UI's exports.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    async for history, run_id in histories(client, query):
        path = folder / f"{history.workflow_id}{RUN_SEPARATOR}{run_id}.json"
        path.write_text(history.to_json())
        written.append(path)
    return written


async def histories(client: Client, query: str) -> AsyncIterator[tuple[WorkflowHistory, str]]:
    """The history of each run the visibility query matches, with its run id."""
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        yield await handle.fetch_history(), execution.run_id


def quoted(value: str) -> str:
    """A string literal for a visibility query."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run_id(history: WorkflowHistory) -> str | None:
    if not history.events:
        return None
    started = history.events[0].workflow_execution_started_event_attributes
    return started.original_execution_run_id or None


def _readable(failure: str) -> str:
    """The SDK's failure wraps the core's message in a debug dump; keep the message."""
    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', failure)
    return found.group(1).replace("\\'", "'") if found else failure
