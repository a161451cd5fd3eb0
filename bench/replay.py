"""How fast histories replay: one replay worker for them all, against one worker per history.

    .venv/bin/python bench/replay.py [--rounds 3] [--histories tests/replay/histories]

Replays the committed corpus (every ``*.json`` in ``--histories``) ``--rounds`` times in one
process, each round in two ways, and prints histories per second and milliseconds per history:

- ``one worker``: ``HistoryReplayer.replay_all``, as ``overdue replay`` and the tests do now: the
  SDK's ``Replayer.workflow_replay_iterator`` sets one replay worker up for the whole corpus;
- ``a worker per history``: ``Replayer.replay_workflow`` for each history, as ``overdue replay``
  did before: a replay worker set up and shut down for every history.

The files are read and parsed once, before the rounds (how long that takes per history is
printed too: ``overdue replay FILES`` pays it on top). Both ways use the worker's sandbox, so
every history imports the workflow modules afresh; where Python writes no bytecode
(``PYTHONDONTWRITEBYTECODE``, ``-B``) that also compiles them each time, which the first line says.
Every replay must succeed; a failure stops the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from temporalio.worker import Replayer

from overdue.replay import (
    HistoryReplayer,
    Replayable,
    core_logs_to_python,
    file_histories,
)
from workflows.collection import LoanCollection
from workflows.sandbox import workflow_runner

CORPUS = Path(__file__).parents[1] / "tests" / "replay" / "histories"


async def one_worker(corpus: list[Replayable]) -> float:
    started = time.perf_counter()
    results = await HistoryReplayer().replay_all(corpus)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    assert len(results) == len(corpus) and not failed, failed
    return elapsed


async def worker_per_history(corpus: list[Replayable]) -> float:
    replayer = Replayer(
        workflows=[LoanCollection], workflow_runner=workflow_runner(), runtime=core_logs_to_python()
    )
    started = time.perf_counter()
    for history, source, _ in corpus:
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, f"{source}: {replayed.replay_failure}"
    return time.perf_counter() - started


def line(name: str, count: int, seconds: list[float]) -> str:
    best, median = min(seconds), statistics.median(seconds)
    return (
        f"{name:<22} {count / median:6.1f} histories/s  {median / count * 1000:6.1f} ms/history"
        f"  (median of {len(seconds)}; best {count / best:.1f}/s)"
    )


async def main(folder: Path, rounds: int) -> None:
    paths = sorted(folder.glob("*.json"))
    started = time.perf_counter()
    corpus = list(file_histories(paths))
    reading = time.perf_counter() - started
    events = sum(len(history.events) for history, _, _ in corpus)
    print(
        f"{len(corpus)} histories, {events} events, from {folder};"
        f" {rounds} rounds of each way in one process (Python {sys.version.split()[0]},"
        f" bytecode {'NOT cached' if sys.dont_write_bytecode else 'cached'})"
    )
    await one_worker(corpus[:2])  # imports and the runtime, outside the measurement
    one: list[float] = []
    per: list[float] = []
    for round_ in range(rounds):
        # Alternate the order, so that neither way always runs on a warmer process.
        if round_ % 2 == 0:
            one.append(await one_worker(corpus))
            per.append(await worker_per_history(corpus))
        else:
            per.append(await worker_per_history(corpus))
            one.append(await one_worker(corpus))
    count = len(corpus)
    print(line("one worker", count, one))
    print(line("a worker per history", count, per))
    print(
        f"speed-up {statistics.median(per) / statistics.median(one):.2f}x;"
        f" reading and parsing the files: {reading / count * 1000:.1f} ms/history (once)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="replays of the corpus, each way")
    parser.add_argument("--histories", type=Path, default=CORPUS, help="folder of *.json")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(main(arguments.histories, max(1, arguments.rounds)))
