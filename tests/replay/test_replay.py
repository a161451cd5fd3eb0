"""Replay the committed histories against the current workflow code.

A change to ``LoanCollection`` (or to anything it calls) that would make a running loan take a
different path on replay fails here with a non-determinism error. The histories are recorded by
``python -m tests.replay.record_histories``; every run of a continue-as-new chain is its own file.
No server is needed. The corpus is replayed on one replay worker, as ``overdue replay`` does: once
without a sandbox (its default: the command sequence), once in the sandbox the worker runs (the
pure workflow modules passed through), once in the strict sandbox (every workflow module
imported afresh, so a non-deterministic call anywhere fails here), and once over two worker
processes (``--jobs 2``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHistory

from overdue.replay import HistoryReplayer, ReplayResult, Sandbox, replay_in_processes
from tests.unit.test_sandbox import read_only_tables, snapshot_of_tables

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


TABLES_BEFORE = snapshot_of_tables()


@pytest_asyncio.fixture(scope="module")
async def corpus() -> dict[str, ReplayResult]:
    """The whole corpus replayed by one ``replay_files`` call (one replay worker), by file."""
    results = await HistoryReplayer().replay_files(HISTORIES)
    assert [r.source for r in results] == [str(p) for p in HISTORIES], "one result per file"
    return {r.source: r for r in results}


@pytest.mark.parametrize("sandbox", [Sandbox.WORKER, Sandbox.STRICT])
async def test_the_corpus_replays_in_a_sandbox(sandbox: Sandbox) -> None:
    """In the worker's sandbox, and with every workflow module imported afresh for each
    history: a call the sandbox forbids (``datetime.now()``, ``random.random()``, I/O) fails
    here, even in a module the worker passes through."""
    results = await HistoryReplayer(sandbox=sandbox).replay_files(HISTORIES)
    assert [(r.source, r.error) for r in results if not r.ok] == []
    assert len(results) == len(HISTORIES)


async def test_the_corpus_replays_on_two_worker_processes(
    corpus: dict[str, ReplayResult],
) -> None:
    """``overdue replay --jobs 2``: the same results, in the same order, as on one worker."""
    results = await replay_in_processes(HISTORIES, jobs=2)
    assert results == list(corpus.values())


async def test_replaying_changes_no_table_of_a_passed_through_module(
    corpus: dict[str, ReplayResult],
) -> None:
    """The passed-through modules are shared by every run of the process: after the corpus
    (and whatever else ran before in this process), their tables are as they were at import."""
    assert corpus
    assert read_only_tables() == TABLES_BEFORE


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_deterministically(
    path: Path, corpus: dict[str, ReplayResult]
) -> None:
    text = path.read_text()
    events = json.loads(text)["events"]
    assert events[0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"
    assert events[-1]["eventType"] in (
        "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED",
    ), "record complete runs only"

    result = corpus[str(path)]
    assert result.ok, f"{path.name}: {result.error}"
    assert (result.workflow_id, result.diverging) == (path.stem.partition("@")[0], None)


async def test_replay_files_gives_one_result_per_file_all_ok(
    corpus: dict[str, ReplayResult],
) -> None:
    assert len(corpus) == len(HISTORIES)
    assert [r for r in corpus.values() if not r.ok] == []
    # Recorded stories are not named <workflow id>@<run id>: the run id comes from the history.
    assert all(r.run_id for r in corpus.values())


async def test_one_history_replays_on_its_own() -> None:
    """``replay`` of a single history, as callers outside the corpus use it."""
    path = HISTORIES[0]
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await HistoryReplayer().replay(history, str(path))
    assert (result.ok, result.workflow_id, result.source) == (
        True,
        f"replay-{path.stem}",
        str(path),
    )


async def test_a_diverging_history_is_reported_at_its_first_diverging_event(
    tmp_path: Path,
) -> None:
    """What the code would do differently is found: here, a renamed activity in the history."""
    source = Path(__file__).parent / "histories" / "before-lean-history-operator-hold-run1.json"
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


async def test_a_tampered_file_among_good_ones_is_the_only_failure(tmp_path: Path) -> None:
    """On one replay worker, a failure neither spoils the histories after it nor is missed."""
    history, changed_event_id = tampered_operator_hold()
    tampered = tmp_path / "collection-L-y@run-2.json"
    tampered.write_text(json.dumps(history))
    middle = len(HISTORIES) // 2
    paths = [*HISTORIES[:middle], tampered, *HISTORIES[middle:]]

    results = await HistoryReplayer().replay_files(paths)
    assert [r.source for r in results] == [str(p) for p in paths]
    [failed] = [r for r in results if not r.ok]
    assert (failed.source, failed.workflow_id, failed.run_id) == (
        str(tampered),
        "collection-L-y",
        "run-2",
    )
    assert failed.error is not None and "something_else" in failed.error
    assert failed.diverging is not None
    assert (failed.diverging.event_id, failed.diverging.event_type) == (
        changed_event_id,
        "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    )
    assert all(r.diverging is None for r in results if r.ok)


def tampered_operator_hold() -> tuple[dict[str, Any], int]:
    """``before-lean-history-operator-hold-run1`` (a history whose ledger writes are activities) with the activity of its third scheduled event (the audit of the
    pause) renamed, and that event's id."""
    source = Path(__file__).parent / "histories" / "before-lean-history-operator-hold-run1.json"
    history: dict[str, Any] = json.loads(source.read_text())
    scheduled = [
        e for e in history["events"] if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]
    changed = scheduled[2]
    changed["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "something_else"
    return history, int(changed["eventId"])


async def test_a_tampered_history_fails_alone_on_two_worker_processes(tmp_path: Path) -> None:
    """Failures are found and bisected in the worker process, histories sent as well as files."""
    history, changed_event_id = tampered_operator_hold()
    tampered = tmp_path / "collection-L-w@run-4.json"
    tampered.write_text(json.dumps(history))
    sent = WorkflowHistory.from_json("collection-L-v", tampered.read_text())
    paths = [*HISTORIES[:3], tampered, HISTORIES[3]]
    results = await replay_in_processes([*paths, (sent, "sent", "run-5")], jobs=2)
    assert [r.source for r in results] == [*map(str, paths), "sent"]
    failed = [r for r in results if not r.ok]
    assert [(r.workflow_id, r.run_id) for r in failed] == [
        ("collection-L-w", "run-4"),
        ("collection-L-v", "run-5"),
    ]
    for r in failed:
        assert r.diverging is not None and r.diverging.event_id == changed_event_id
