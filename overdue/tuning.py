"""How much one worker process takes on at once: its sticky cache and its workflow task slots.

Both are read from the environment by ``overdue worker`` (and ``overdue up``) and default to
figures measured with ``bench/scale.py`` on a 2-core machine; docs/deployment.md ("Sizing the
workers") has the measurements and the reasoning. In short:

- ``OVERDUE_MAX_CACHED_WORKFLOWS``: how many running loans a worker keeps in memory between
  their workflow tasks (the SDK's sticky cache). A cached loan's next task needs no history and
  no replay; a loan outside it is replayed from its history (continue-as-new keeps that short).
  Memory grows with the cache, not with the loans a worker serves (about 0.2 MB a loan), and so
  does the pause of each full garbage collection: CPython's collector walks every object the
  process tracks while holding the GIL, so every thread of the worker stops meanwhile.
- ``OVERDUE_MAX_CONCURRENT_WORKFLOW_TASKS``: how many workflow tasks a worker runs at once, one
  thread each. Workflow code is Python and holds the GIL: tasks run at once share one core, so
  each takes as many times longer as there are tasks beside it. More slots than the process can
  run add no throughput, only that wall-clock time.

The SDK fails a workflow task whose code has not yielded within 2 s of wall-clock time
("Potential deadlock detected"), and gives an eviction as long ("Timed out running eviction
job"): too many slots, or a full collection over too large a cache, reaches it on a busy
machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CACHE_VARIABLE = "OVERDUE_MAX_CACHED_WORKFLOWS"
TASKS_VARIABLE = "OVERDUE_MAX_CONCURRENT_WORKFLOW_TASKS"

DEFAULT_MAX_CACHED_WORKFLOWS = 500
DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS = 8
# The SDK's own floor for both when the cache is on: a sticky worker polls two queues at once.
MIN_CONCURRENT_WORKFLOW_TASKS = 2


class TuningError(ValueError):
    """A tuning variable holds a value the worker cannot run with; the message names it."""


@dataclass(frozen=True)
class WorkerTuning:
    """The worker's sticky cache size and workflow task concurrency.

    Attributes:
        max_cached_workflows: Running loans kept in memory between tasks; 0 turns the cache off
            (every task replays its loan's history).
        max_concurrent_workflow_tasks: Workflow tasks run at once, each in its own thread.
    """

    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS
    max_concurrent_workflow_tasks: int = DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS

    def __post_init__(self) -> None:
        if self.max_cached_workflows < 0:
            raise TuningError(
                f"{CACHE_VARIABLE}: must be 0 or more, not {self.max_cached_workflows}"
            )
        if self.max_concurrent_workflow_tasks < MIN_CONCURRENT_WORKFLOW_TASKS:
            raise TuningError(
                f"{TASKS_VARIABLE}: must be at least {MIN_CONCURRENT_WORKFLOW_TASKS}, "
                f"not {self.max_concurrent_workflow_tasks}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerTuning:
        """The tuning the environment sets; the defaults for what it leaves unset or empty.

        Raises:
            TuningError: A variable is not a whole number in its range.
        """
        return cls(
            max_cached_workflows=_whole(environ, CACHE_VARIABLE, DEFAULT_MAX_CACHED_WORKFLOWS),
            max_concurrent_workflow_tasks=_whole(
                environ, TASKS_VARIABLE, DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS
            ),
        )

    def worker_options(self) -> dict[str, Any]:
        """``temporalio.worker.Worker`` keyword arguments.

        The SDK sizes the workflow tasks' thread pool from ``max_concurrent_workflow_tasks``
        when it is given (500 threads when it is not), so the pool follows the slots.
        """
        return {
            "max_cached_workflows": self.max_cached_workflows,
            "max_concurrent_workflow_tasks": self.max_concurrent_workflow_tasks,
        }


def _whole(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise TuningError(f"{name}: must be a whole number, not {text!r}") from None
