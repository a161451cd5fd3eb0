"""How fast histories replay, against the product's goal of 30 histories/s.

    .venv/bin/python bench/replay.py [--rounds 3] [--histories tests/replay/histories] [--jobs 2]

Replays the committed corpus (every ``*.json`` in ``--histories``) ``--rounds`` times each way and
prints histories per second, milliseconds per history (the median round, with the range) and,
in process, the CPU time per history of all the process's threads (less sensitive to other jobs
on the machine than the wall clock):

- ``corpus, in process``: ``HistoryReplayer.replay_all`` on the histories read beforehand, as
  ``overdue replay`` replays them by default: one replay worker, no sandbox (the command
  sequence is what a replay checks; ``overdue/replay.py`` says why);
- ``corpus, worker's sandbox``: the same in the sandbox a worker runs (``--sandbox worker``: the
  pure workflow modules passed through);
- ``corpus, strict sandbox``: the same in the sandbox that imports every workflow module afresh
  for each history (``--sandbox strict``, as the tests replay the corpus too);
- ``overdue replay FILES``: the command as an engineer runs it, in its own process, from start
  to exit (interpreter, imports, reading the files, replay, report): the default path;
- ``overdue replay FILES --jobs N``: the same over N worker processes.

It ends with PASS or FAIL against 30 histories/s for the corpus in process and for the default
command. Every replay must succeed; a failure stops the bench. The first line says whether the
workflow modules' bytecode is cached on disk (``PYTHONDONTWRITEBYTECODE`` or ``-B`` keep it from
being written); the sandbox compiles them once per process either way.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from overdue.replay import HistoryReplayer, Replayable, Sandbox, file_histories
from workflows import sandbox

CORPUS = Path(__file__).parents[1] / "tests" / "replay" / "histories"
OVERDUE = str(Path(sys.executable).parent / "overdue")
GOAL = 30.0  # histories per second (product issue)


class Way:
    def __init__(self, name: str, count: int) -> None:
        self.name, self.count = name, count
        self.walls: list[float] = []
        self.cpus: list[float] = []

    @property
    def rate(self) -> float:
        return self.count / statistics.median(self.walls)

    def line(self) -> str:
        median, low, high = statistics.median(self.walls), min(self.walls), max(self.walls)
        text = (
            f"{self.name:<34} {self.count / median:6.1f} histories/s"
            f" ({self.count / high:.1f} to {self.count / low:.1f})"
            f"  {median / self.count * 1000:6.1f} ms/history"
        )
        if self.cpus:
            text += f"  cpu {statistics.median(self.cpus) / self.count * 1000:5.1f} ms/history"
        return text


async def in_process(way: Way, replay: Callable[[], Awaitable[int]]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    replayed = await replay()
    way.walls.append(time.perf_counter() - wall)
    way.cpus.append(time.process_time() - cpu)
    assert replayed == way.count


def command(way: Way, paths: list[Path], home: Path, *options: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERDUE_", "TEMPORAL_"))}
    started = time.perf_counter()
    done = subprocess.run(
        [OVERDUE, "replay", *map(str, paths), "--json", *options],
        env=env | {"OVERDUE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    way.walls.append(time.perf_counter() - started)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["replayed"], report["failed"]) == (way.count, 0), report


def replayer_of(corpus: list[Replayable], mode: Sandbox) -> Callable[[], Awaitable[int]]:
    async def replay() -> int:
        results = await HistoryReplayer(sandbox=mode).replay_all(corpus)
        failed = [(r.source, r.error) for r in results if not r.ok]
        assert not failed, failed
        return len(results)

    return replay


def bytecode_state() -> str:
    cached = []
    for name in sandbox.workflow_modules() + sandbox.passthrough_modules():
        spec = importlib.util.find_spec(name)
        if spec and spec.origin and spec.origin.endswith(".py"):
            cached.append(Path(importlib.util.cache_from_source(spec.origin)).exists())
    writes = "not written" if sys.dont_write_bytecode else "written"
    return f"workflow bytecode cached on disk for {sum(cached)}/{len(cached)} modules ({writes})"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main(folder: Path, rounds: int, jobs: int) -> bool:
    paths = sorted(folder.glob("*.json"))
    started = time.perf_counter()
    corpus = list(file_histories(paths))
    reading = (time.perf_counter() - started) / len(corpus) * 1000
    events = sum(len(history.events) for history, _, _ in corpus)
    print(
        f"{len(corpus)} histories, {events} events, from {folder}; {rounds} rounds each way;"
        f" Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {bytecode_state()}"
    )
    print(f"load average at start: {load()}")
    for mode in Sandbox:  # imports and the runtime, outside the rounds
        await replayer_of(corpus[:2], mode)()
    count = len(corpus)
    fast = Way("corpus, in process", count)
    worker = Way("corpus, worker's sandbox", count)
    strict = Way("corpus, strict sandbox", count)
    default = Way("overdue replay FILES", count)
    parallel = Way(f"overdue replay FILES --jobs {jobs}", count)
    with tempfile.TemporaryDirectory() as home:
        for _ in range(rounds):
            await in_process(fast, replayer_of(corpus, Sandbox.OFF))
            await in_process(worker, replayer_of(corpus, Sandbox.WORKER))
            await in_process(strict, replayer_of(corpus, Sandbox.STRICT))
            command(default, paths, Path(home))
            command(parallel, paths, Path(home), "--jobs", str(jobs))
    for way in (fast, worker, strict, default, parallel):
        print(way.line())
    print(f"reading and parsing the files: {reading:.1f} ms/history (in the commands' times)")
    print(f"load average at end: {load()}")
    ok = True
    for way in (fast, default):
        verdict = "PASS" if way.rate >= GOAL else "FAIL"
        ok = ok and verdict == "PASS"
        print(f"goal >= {GOAL:.0f} histories/s, {way.name}: {way.rate:.1f}  {verdict}")
    return ok


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="replays of the corpus, each way")
    parser.add_argument("--histories", type=Path, default=CORPUS, help="folder of *.json")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the last way")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    passed = asyncio.run(main(arguments.histories, max(1, arguments.rounds), arguments.jobs))
    sys.stdout.flush()
    os._exit(0 if passed else 1)
