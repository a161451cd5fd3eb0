"""The worker's sticky cache and workflow task slots, as the environment sets them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from overdue.config import Config
from overdue.tuning import (
    CACHE_VARIABLE,
    DEFAULT_MAX_CACHED_WORKFLOWS,
    DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
    TASKS_VARIABLE,
    TuningError,
    WorkerTuning,
)
from overdue.worker import run_worker


def test_unset_or_empty_variables_take_the_measured_defaults() -> None:
    for environ in ({}, {CACHE_VARIABLE: "", TASKS_VARIABLE: " "}):
        assert WorkerTuning.from_env(environ) == WorkerTuning(
            DEFAULT_MAX_CACHED_WORKFLOWS, DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS
        )


def test_the_variables_set_the_worker_options() -> None:
    tuning = WorkerTuning.from_env({CACHE_VARIABLE: " 250 ", TASKS_VARIABLE: "4"})
    assert tuning.worker_options() == {
        "max_cached_workflows": 250,
        "max_concurrent_workflow_tasks": 4,
    }
    # A cache of 0 is the SDK's "no sticky cache": every task replays its history.
    assert WorkerTuning.from_env({CACHE_VARIABLE: "0"}).max_cached_workflows == 0


def test_the_defaults_bound_how_long_a_workflow_task_can_be_held_up() -> None:
    """Tasks at once share the GIL, and a full garbage collection walks every cached workflow
    while every thread waits: both stretch a task's wall time towards the SDK's 2 s deadlock
    limit (docs/deployment.md, "Sizing the workers")."""
    assert 2 <= DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS <= 16
    assert 0 < DEFAULT_MAX_CACHED_WORKFLOWS <= 1000


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({CACHE_VARIABLE: "many"}, rf"^{CACHE_VARIABLE}: must be a whole number, not 'many'"),
        ({CACHE_VARIABLE: "1.5"}, rf"^{CACHE_VARIABLE}: must be a whole number"),
        ({CACHE_VARIABLE: "-1"}, rf"^{CACHE_VARIABLE}: must be 0 or more, not -1"),
        ({TASKS_VARIABLE: "1"}, rf"^{TASKS_VARIABLE}: must be at least 2, not 1"),
        ({TASKS_VARIABLE: "ten"}, rf"^{TASKS_VARIABLE}: must be a whole number"),
    ],
)
def test_a_bad_value_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(TuningError, match=message):
        WorkerTuning.from_env(environ)


def test_the_worker_refuses_a_bad_value_before_it_connects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An error naming the variable, and nothing started: the database and Temporal addresses
    below are never reached."""
    monkeypatch.setenv(TASKS_VARIABLE, "1")
    config = Config(home=tmp_path, temporal_address="127.0.0.1:1", database_url="postgresql://x")
    with pytest.raises(TuningError, match=rf"^{TASKS_VARIABLE}: must be at least 2, not 1$"):
        asyncio.run(run_worker(config))
