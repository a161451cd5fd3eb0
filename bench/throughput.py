"""How collection throughput scales with worker processes, on the embedded stack.

    .venv/bin/python bench/throughput.py [--loans 100] [--day-seconds 0.5] [--workers 1,2,4]

For each worker count it starts that many `overdue worker` processes (separate interpreters, so
they can use separate cores), collects the demo's simulated portfolio (every persona, the
simulated back office deciding disputes and reviews) in compressed time, and reports:

- loans completed per minute, from the first start to the last completion;
- workflow and activity tasks per second over the same window, counted afterwards from the
  histories of every run (continue-as-new included).

A collection day lasts ``--day-seconds``; the calendar of the slowest loan (about 40 days) sets a
floor on each round's time, so the portfolio must be large enough for the workers, not the
calendar, to be the bottleneck. Temporal, PostgreSQL, the starter and the back office run on
the same machine as the workers and compete with them for its cores: read the figures as a
comparison between rounds on one machine, not as a cluster's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from overdue.config import Config
from overdue.connection import connect
from overdue.demo import portfolio, run_portfolio
from overdue.stack import EmbeddedStack, free_port
from workflows.types import TASK_QUEUE, workflow_id_for

OVERDUE = str(Path(sys.executable).parent / "overdue")


@dataclass
class Round:
    workers: int
    loans: int
    elapsed_seconds: float
    loans_per_minute: float
    workflow_tasks_per_second: float
    activity_tasks_per_second: float
    final_states: dict[str, int]


def worker_env(config: Config, seed: int) -> dict[str, str]:
    """This process's environment without Temporal or overdue settings, then the stack's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "OVERDUE_"))}
    assert config.temporal_address and config.database_url
    env.update(
        TEMPORAL_ADDRESS=config.temporal_address,
        DATABASE_URL=config.database_url,
        OVERDUE_HOME=str(config.home),
        OVERDUE_SIM_SEED=str(seed),
    )
    return env


def start_workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [OVERDUE, "worker"],
            # Each worker serves its metrics on a port of its own: they share the machine.
            env={**env, "OVERDUE_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_for_pollers(client: Client, workers: list[subprocess.Popen[bytes]]) -> None:
    """Until every new worker polls the workflow task queue (identities are ``pid@host``)."""
    pids = {str(process.pid) for process in workers}
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=TASK_QUEUE),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for _ in range(600):
        if any(process.poll() is not None for process in workers):
            raise SystemExit("a worker exited at start; run `overdue worker` alone to see why")
        described = await client.workflow_service.describe_task_queue(request)
        polling = {poller.identity.split("@", 1)[0] for poller in described.pollers}
        if pids <= polling:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the workers did not start polling within a minute")


async def count_tasks(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """Workflow and activity tasks completed by every run of these workflows."""
    tasks: Counter[str] = Counter()
    limit = asyncio.Semaphore(8)

    async def count(workflow_id: str) -> None:
        async with limit:
            async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
                handle = client.get_workflow_handle(workflow_id, run_id=run.run_id)
                async for event in handle.fetch_history_events():
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                        tasks["workflow"] += 1
                    elif event.event_type in (
                        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
                    ):
                        tasks["activity"] += 1

    await asyncio.gather(*(count(workflow_id) for workflow_id in workflow_ids))
    return tasks


async def measure(
    client: Client, config: Config, workers: int, loans: int, day_seconds: float, seed: int
) -> Round:
    processes = start_workers(workers, worker_env(config, seed))
    try:
        await wait_for_pollers(client, processes)
        tag = f"B{workers}{datetime.now(UTC):%H%M%S}"
        book = portfolio(loans, seed, tag, datetime.now(UTC))
        result = await run_portfolio(client, book, day_seconds=day_seconds, seed=seed)
    finally:
        stop_workers(processes)
    tasks = await count_tasks(client, [workflow_id_for(loan.loan_id) for loan in book])
    elapsed = result.elapsed_seconds
    return Round(
        workers=workers,
        loans=loans,
        elapsed_seconds=round(elapsed, 1),
        loans_per_minute=round(loans / elapsed * 60, 1),
        workflow_tasks_per_second=round(tasks["workflow"] / elapsed, 1),
        activity_tasks_per_second=round(tasks["activity"] / elapsed, 1),
        final_states=dict(Counter(s.final_stage for s in result.summaries)),
    )


async def main(args: argparse.Namespace) -> list[Round]:
    with tempfile.TemporaryDirectory(prefix="overdue-bench-") as home:
        stack = EmbeddedStack(
            Config(home=Path(home)), temporal_port=free_port(), ui_port=free_port()
        )
        await stack.start()
        try:
            config = replace(stack.running_config, simulation_seed=args.seed)
            client = await connect(config)
            rounds = []
            for workers in args.workers:
                started = time.monotonic()
                done = await measure(
                    client, config, workers, args.loans, args.day_seconds, args.seed
                )
                rounds.append(done)
                print(
                    f"{workers} worker(s): {done.loans_per_minute} loans/min, "
                    f"{done.workflow_tasks_per_second} workflow tasks/s, "
                    f"{done.activity_tasks_per_second} activity tasks/s "
                    f"({done.elapsed_seconds} s collecting, "
                    f"{time.monotonic() - started:.0f} s with counting)",
                    file=sys.stderr,
                    flush=True,
                )
            return rounds
        finally:
            await stack.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=100, help="loans per round (default 100)")
    parser.add_argument(
        "--day-seconds", type=float, default=0.5, help="real seconds per collection day (0.5)"
    )
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 4],
        help="worker process counts, one round each (default 1,2,4)",
    )
    parser.add_argument("--seed", type=int, default=7, help="portfolio and simulation seed (7)")
    parser.add_argument("--json", action="store_true", help="print the rounds as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    rounds = asyncio.run(main(arguments))
    if arguments.json:
        print(json.dumps([asdict(r) for r in rounds], indent=2))
    else:
        print(
            f"cores: {os.cpu_count()}; loans per round: {arguments.loans}; "
            f"day: {arguments.day_seconds} s"
        )
        print("| worker processes | loans/min | workflow tasks/s | activity tasks/s | seconds |")
        print("|---|---|---|---|---|")
        for r in rounds:
            print(
                f"| {r.workers} | {r.loans_per_minute} | {r.workflow_tasks_per_second} "
                f"| {r.activity_tasks_per_second} | {r.elapsed_seconds} |"
            )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the Temporal SDK can abort at interpreter exit (sdk-python#300)
