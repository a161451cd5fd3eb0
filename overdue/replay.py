"""Replaying workflow histories with the current code, to prove a change is deterministic.

Histories come from files (exported by ``overdue history export``, the Temporal CLI or the Web
UI), from one workflow id, or from every workflow a visibility query matches. A history that no
longer replays is reported with the first event at which it diverges: the shortest prefix of the
history that fails to replay ends with that event.

All the histories of one call go through one replay worker (the SDK's
``Replayer.workflow_replay_iterator``), set up once rather than once per history; the failed ones
are then bisected on the same worker. ``replay_in_processes`` spreads the histories over worker
processes, one replay worker each, for large sets on several cores.

**The sandbox** (``Sandbox``). What a replay proves is that the code issues the commands each
history recorded; that needs no sandbox, and without one a history replays about twice as fast
(``bench/replay.py``), so ``Sandbox.OFF`` is the default. The sandbox's own check, that workflow
code calls nothing non-deterministic, is made where that code runs: every worker runs it in its
sandbox (a bad call fails the workflow task), and CI replays the whole corpus in the strict
sandbox (``tests/replay``). ``Sandbox.WORKER`` replays in the worker's sandbox (the pure workflow
modules passed through, ``workflows/sandbox.py``); ``Sandbox.STRICT`` in one that imports every
workflow module afresh for each history, so a non-deterministic call anywhere is caught.

The SDK core's log lines (its warnings about a failing workflow task, an old server, ...) go to
Python's logging (``core_logs_to_python``), which ``overdue`` writes to stderr, never to stdout,
where ``--json`` prints its one document.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import multiprocessing
import os
import re
import sys
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner

from workflows.collection import LoanCollection
from workflows.sandbox import strict_workflow_runner, workflow_runner


class Sandbox(StrEnum):
    """How replayed workflow code runs (see the module's docstring)."""

    OFF = "off"  # no sandbox: the command sequence alone is checked, fastest
    WORKER = "worker"  # the worker's sandbox, its pure modules passed through
    STRICT = "strict"  # every workflow module imported afresh for each history

    def runner(self) -> WorkflowRunner:
        if self is Sandbox.OFF:
            return UnsandboxedWorkflowRunner()
        return workflow_runner() if self is Sandbox.WORKER else strict_workflow_runner()


RUN_SEPARATOR = "@"  # exported files are named <workflow id>@<run id>.json
CORE_LOGGER = logging.getLogger("overdue.temporal_core")

Replayable = tuple[WorkflowHistory, str, str | None]
"""A history to replay, where it came from (a file, a query) and its run id, when known."""


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
    """Replays histories against ``LoanCollection`` as the worker runs it (same sandbox)."""

    def __init__(
        self,
        data_converter: DataConverter | None = None,
        *,
        runtime: Runtime | None = None,
        sandbox: Sandbox = Sandbox.OFF,
    ) -> None:
        self._replayer = Replayer(
            workflows=[LoanCollection],
            workflow_runner=sandbox.runner(),
            data_converter=data_converter or DataConverter.default,
            runtime=runtime or core_logs_to_python(),
        )

    async def replay_all(
        self, histories: Iterable[Replayable] | AsyncIterable[Replayable]
    ) -> list[ReplayResult]:
        """Replay every history on one worker, then find where each failed one diverges.

        The histories are read from ``histories`` as they are replayed, so a listing from the
        server is not held in memory; only the failed ones are kept, for the bisection.
        """
        results: list[ReplayResult] = []
        failed: list[tuple[ReplayResult, WorkflowHistory]] = []
        async with _replay_worker(self._replayer) as failure_of:
            async for history, source, run_id in _each(histories):
                failure = await failure_of(history)
                result = ReplayResult(
                    history.workflow_id, run_id or _run_id(history), source, failure
                )
                results.append(result)
                if failure is not None:
                    failed.append((result, history))
            for result, history in failed:
                result.diverging = await _first_diverging_event(failure_of, history)
        return results

    async def replay(
        self, history: WorkflowHistory, source: str, run_id: str | None = None
    ) -> ReplayResult:
        """One history (a worker is set up for it: prefer ``replay_all`` for several)."""
        [result] = await self.replay_all([(history, source, run_id)])
        return result

    async def replay_files(self, paths: Iterable[Path]) -> list[ReplayResult]:
        return await self.replay_all(file_histories(paths))

    async def replay_query(self, client: Client, query: str) -> list[ReplayResult]:
        """Every run of every workflow the visibility query matches, running or closed."""
        return await self.replay_all(server_histories(client, query))

    async def replay_workflow(self, client: Client, workflow_id: str) -> list[ReplayResult]:
        """Every run of one workflow id (a continue-as-new chain has several)."""
        return await self.replay_query(client, workflow_query(workflow_id))


ConverterFactory = Callable[[], DataConverter]
"""Makes the data converter in each worker process: a module-level function, or a
``functools.partial`` of one with picklable arguments (``partial(codec.data_converter, config)``)."""

Shippable = Path | Replayable
"""What ``replay_in_processes`` takes: a history file (read in the worker process) or a history."""

BATCH = 32  # histories per task of a worker process, when how many there are is not known


async def replay_in_processes(
    histories: Iterable[Shippable] | AsyncIterable[Shippable],
    *,
    jobs: int,
    converter: ConverterFactory | None = None,
    sandbox: Sandbox = Sandbox.OFF,
) -> list[ReplayResult]:
    """Replay the histories on ``jobs`` worker processes, each with one replay worker; results
    in the order of ``histories``.

    Histories go in batches (a list is split evenly, a stream in batches of ``BATCH``, at most
    two per process waiting), and each batch is one ``HistoryReplayer.replay_all`` in a worker:
    its failures are bisected there. Files are read and parsed by the workers. The workers are
    forked from a fresh server process (multiprocessing's ``forkserver``), never from this one,
    which may already run the Temporal core's threads; whatever they print goes to stderr.
    """
    jobs = max(1, jobs)
    size = BATCH
    if isinstance(histories, Sequence):
        size = max(1, min(BATCH, math.ceil(len(histories) / (2 * jobs))))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__])
    loop = asyncio.get_running_loop()
    results: list[ReplayResult] = []
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_start_worker_process,
        initargs=(converter, sandbox),
    ) as pool:
        waiting: deque[asyncio.Future[list[ReplayResult]]] = deque()
        batch: list[_Shipped] = []

        async def drain(keep: int) -> None:
            while len(waiting) > keep:
                results.extend(await waiting.popleft())

        async for item in _each(histories):
            batch.append(_shipped(item))
            if len(batch) >= size:
                waiting.append(loop.run_in_executor(pool, _replay_batch, batch))
                batch = []
                await drain(2 * jobs)
        if batch:
            waiting.append(loop.run_in_executor(pool, _replay_batch, batch))
        await drain(0)
    return results


@dataclass(frozen=True)
class _Serialized:
    """A history on its way to a worker process: protobuf bytes travel faster than objects."""

    workflow_id: str
    events: bytes
    source: str
    run_id: str | None


_Shipped = Path | _Serialized


def _shipped(item: Shippable) -> _Shipped:
    if isinstance(item, Path):
        return item
    history, source, run_id = item
    events = History(events=history.events).SerializeToString()
    return _Serialized(history.workflow_id, events, source, run_id)


def _received(items: list[_Shipped]) -> Iterator[Replayable]:
    for item in items:
        if isinstance(item, Path):
            yield from file_histories([item])
        else:
            events = History.FromString(item.events).events
            yield WorkflowHistory(item.workflow_id, list(events)), item.source, item.run_id


_process_replayer: HistoryReplayer | None = None


def _start_worker_process(converter: ConverterFactory | None, sandbox: Sandbox) -> None:
    """A worker process's set-up: its stdout is stderr (the parent's stdout carries the report),
    the core's logs go there too, and one replayer serves all its batches."""
    global _process_replayer
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if not CORE_LOGGER.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("temporal core %(levelname)s: %(message)s"))
        CORE_LOGGER.addHandler(handler)
        CORE_LOGGER.propagate = False
    _process_replayer = HistoryReplayer(converter() if converter else None, sandbox=sandbox)


def _replay_batch(items: list[_Shipped]) -> list[ReplayResult]:
    assert _process_replayer is not None, "not a replay worker process"
    return asyncio.run(_process_replayer.replay_all(_received(items)))


FailureOf = Callable[[WorkflowHistory], Awaitable[str | None]]


@asynccontextmanager
async def _replay_worker(replayer: Replayer) -> AsyncIterator[FailureOf]:
    """One replay worker, and a function that replays a history on it: its failure, or None.

    The SDK's iterator takes its histories from an async iterator; this one is fed a history at
    a time, so that what to replay next (a bisection's prefix) can depend on the last result.
    """
    fed: asyncio.Queue[WorkflowHistory] = asyncio.Queue(maxsize=1)

    async def feed() -> AsyncIterator[WorkflowHistory]:
        while True:
            yield await fed.get()

    async with replayer.workflow_replay_iterator(feed()) as replayed:

        async def failure_of(history: WorkflowHistory) -> str | None:
            await fed.put(history)
            result = await anext(replayed)
            failure = result.replay_failure
            return _readable(str(failure)) if failure is not None else None

        yield failure_of


async def _first_diverging_event(
    failure_of: FailureOf, history: WorkflowHistory
) -> DivergingEvent | None:
    """Bisect for the shortest failing prefix; its last event is where replay diverges.

    A prefix of a history is a history the workflow was once at, and one that replays cleanly up
    to some event keeps doing so for every shorter prefix, so the search is sound.
    """
    events = history.events
    low, high = 1, len(events)
    while low < high:
        middle = (low + high) // 2
        if await failure_of(WorkflowHistory(history.workflow_id, events[:middle])):
            high = middle
        else:
            low = middle + 1
    if not await failure_of(WorkflowHistory(history.workflow_id, events[:low])):
        return None  # the failure needs the whole history (e.g. it ends mid-task)
    event = events[low - 1]
    return DivergingEvent(event.event_id, EventType.Name(event.event_type))


async def _each(
    histories: Iterable[Replayable] | AsyncIterable[Replayable],
) -> AsyncIterator[Replayable]:
    if isinstance(histories, AsyncIterable):
        async for item in histories:
            yield item
    else:
        for item in histories:
            yield item


def file_histories(paths: Iterable[Path]) -> Iterator[Replayable]:
    """The history in each file, read when it is its turn; a file named ``<id>@<run>.json``
    gives the workflow and run ids, any other file its name as the workflow id."""
    for path in paths:
        workflow_id, _, run_id = path.stem.partition(RUN_SEPARATOR)
        yield WorkflowHistory.from_json(workflow_id, path.read_text()), str(path), run_id or None


async def server_histories(client: Client, query: str) -> AsyncIterator[Replayable]:
    """The history of each run the visibility query matches, as it is fetched."""
    async for history, run_id in histories(client, query):
        yield history, f"query {query!r}", run_id


def workflow_query(workflow_id: str) -> str:
    """The visibility query for every run of one workflow id."""
    return f"WorkflowId = {quoted(workflow_id)}"


@functools.cache
def core_logs_to_python() -> Runtime:
    """A Temporal runtime whose core log lines go to Python's logging, never to stdout.

    The default runtime has the Rust core print its log lines on stdout ("Failing workflow
    task ...", "Temporal Server 1.16.0 or newer is required ..."), where they would corrupt a
    command's ``--json`` document. This one forwards them, at the SDK's default levels, to the
    ``overdue.temporal_core`` logger: on stderr when nothing else handles it (Python's last
    resort), and in pytest's log capture in the tests. One per process: a runtime owns a thread
    pool.
    """
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=CORE_LOGGER),
            )
        )
    )


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
