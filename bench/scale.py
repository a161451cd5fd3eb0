"""What one worker process costs per 1,000 live loans, and whether it keeps up as they grow.

    .venv/bin/python bench/scale.py [--loans 5000] [--step 1000] [--payments 200]
        [--round NAME:CACHE:TASKS ...] [--json]

Each ``--round`` (default: one, ``current``, with ``overdue.tuning``'s defaults) runs on a fresh
embedded stack (Temporal dev server and PostgreSQL in a temporary data dir) with one
``overdue worker`` process (through ``bench/gc_worker.py``, which logs its full garbage
collections), started with ``OVERDUE_MAX_CACHED_WORKFLOWS=CACHE`` and
``OVERDUE_MAX_CONCURRENT_WORKFLOW_TASKS=TASKS``. Rounds run one after the other in the same
invocation, so they compare on the same machine under the same load. In each round:

1. **Intake.** ``--step`` loans at a time (persona ``never_answers``, one loan per borrower, in
   real time, in a zone where the contact window opens three hours later), 64 starts in flight
   at once (a bulk intake), until ``--loans`` are live. Each loan opens in the ledger, reserves
   its first call's place for the window's opening, and sleeps. After each step, once the
   ledger holds every loan and the worker has been idle for 3 s, it samples the worker's
   resident memory.
2. **Payments.** Once ``--loans`` are live, ``--payments`` payments each way (the
   ``payment_received`` signal, and ``POST /v1/payments``'s outbox and ``apply_payment`` update),
   one at a time, alternating, each to a random live loan (``bench/live_payments.py``): the time
   until each is applied to the ledger's ``payments`` row and to the collection's state; p50,
   p99 and the slowest. Each is small: no loan is cured. ``--payments 0`` skips the phase.
3. **Sweep.** Every live loan is signalled once (``borrower_changed``, 64 at once): each one
   wakes, asks the ledger again for its contact's place and sleeps. A loan outside the worker's
   sticky cache is replayed from its history first, as after a restart or an eviction.

For each phase it reports the worker's RSS (at the end and the peak), the load average
(``uptime``'s first figure) when the phase ended, its wall time, and from the worker's
Prometheus page: sticky cache size and forced evictions, workflow tasks failed, workflow task
execution and schedule-to-start latency (p50 and p99 from the histogram buckets: the bucket's
upper bound); and from its log: the SDK's deadlock-detector failures ("Potential deadlock
detected", TMPRL1101), evictions that timed out ("Timed out running eviction job"), and the
garbage collector's full collections (how many, the longest in wall-clock and CPU time).

Everything shares the machine's cores: read the figures as a comparison between rounds.
``--loans 300 --step 100`` runs in about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psutil
from budget import book, gather_limited, morning_zone
from live_payments import Latencies
from live_payments import measure as measure_payments
from temporalio.client import Client
from throughput import wait_for_pollers, worker_env

from overdue import db
from overdue.client import start_collection
from overdue.config import Config
from overdue.connection import connect
from overdue.stack import EmbeddedStack, free_port
from overdue.tuning import (
    CACHE_VARIABLE,
    DEFAULT_MAX_CACHED_WORKFLOWS,
    DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
    TASKS_VARIABLE,
)
from workflows.types import BorrowerChange, workflow_id_for

AT_ONCE = 64  # starts in flight at once, as bench/budget.py's: a bulk intake through the API
QUIET = timedelta(hours=3)
IDLE_SECONDS = 3.0
SETTLE_LIMIT = 900.0
DEADLOCK = "Potential deadlock detected"
GC_WORKER = Path(__file__).with_name("gc_worker.py")
_GC_FULL = re.compile(r"^gc-full (\S+) (\S+)$", re.MULTILINE)
EVICTION_TIMEOUT = "Timed out running eviction job"


@dataclass(frozen=True)
class RoundSpec:
    name: str
    cache: int
    tasks: int


@dataclass
class Sample:
    """One phase of a round, as the worker saw it."""

    phase: str
    live_loans: int
    seconds: float
    load_average: float
    rss_mb: float
    peak_rss_mb: float
    cache_size: int
    forced_evictions: int
    task_failures: int
    deadlocks: int
    eviction_timeouts: int
    full_collections: int  # the garbage collector's, in this phase
    full_collection_max_ms: float  # the longest, wall-clock
    full_collection_max_cpu_ms: float
    tasks: int
    tasks_over_1s: int
    cache_hits: int
    task_ms_p50: float | None
    task_ms_p99: float | None
    schedule_to_start_ms_p99: float | None


@dataclass
class RoundResult:
    spec: RoundSpec
    idle_rss_mb: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    payments: list[Latencies] = field(default_factory=list)


# --- the worker's Prometheus page -------------------------------------------------------------

_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")
_LE = re.compile(r'le="([^"]+)"')


@dataclass
class Metrics:
    """The page's figures summed over their labels; histograms by bucket bound."""

    values: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)

    def histogram(self, name: str) -> dict[float, float]:
        return self.buckets.get(name + "_bucket", {})


def read_metrics(url: str) -> Metrics:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    metrics = Metrics()
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        if name.endswith("_bucket") and labels:
            bound = _LE.search(labels)
            if bound:
                le = float(bound.group(1))
                metrics.buckets[name][le] = metrics.buckets[name].get(le, 0.0) + float(value)
                continue
        metrics.values[name] += float(value)
    return metrics


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of what was observed between two
    scrapes of a cumulative histogram; None for no observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound
    return bounds[-1]


# Core's names for the SDK's worker metrics (milliseconds). Task execution latency has buckets up
# to 1,000 ms: a p50 or p99 above it reads "inf", and the tasks over 1 s are counted apart.
TASK_LATENCY = "temporal_workflow_task_execution_latency"
SCHEDULE_TO_START = "temporal_workflow_task_schedule_to_start_latency"
CACHE_SIZE = "temporal_sticky_cache_size"
CACHE_HITS = "temporal_sticky_cache_hit"
EVICTIONS = "temporal_sticky_cache_total_forced_eviction"
TASK_FAILED = "temporal_workflow_task_execution_failed"


# --- a round ----------------------------------------------------------------------------------


class WorkerProcess:
    """One ``overdue worker`` with its own metrics port and its log in a file."""

    def __init__(self, env: dict[str, str], spec: RoundSpec, log_path: Path) -> None:
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self._gc_seen = 0
        self.process = subprocess.Popen(
            [sys.executable, str(GC_WORKER)],
            env={
                **env,
                "OVERDUE_METRICS_ADDRESS": f"127.0.0.1:{port}",
                CACHE_VARIABLE: str(spec.cache),
                TASKS_VARIABLE: str(spec.tasks),
            },
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.ps = psutil.Process(self.process.pid)
        self.peak_rss = 0

    def rss(self) -> int:
        rss = int(self.ps.memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def log_counts(self) -> tuple[int, int, list[tuple[float, float]]]:
        """Deadlocks and eviction time-outs so far; full collections since the last call."""
        text = self.log_path.read_text(errors="replace")
        pauses = [(float(wall), float(cpu)) for wall, cpu in _GC_FULL.findall(text)]
        fresh, self._gc_seen = pauses[self._gc_seen :], len(pauses)
        return text.count(DEADLOCK), text.count(EVICTION_TIMEOUT), fresh

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


async def settle(worker: WorkerProcess, ledger: asyncpg.Pool, expected: int) -> None:
    """Until the ledger holds ``expected`` loans and the worker ran no workflow task for
    ``IDLE_SECONDS`` (or ``SETTLE_LIMIT`` passed); samples the RSS meanwhile."""
    started = time.monotonic()
    last_count, quiet_since = -1.0, time.monotonic()
    while time.monotonic() - started < SETTLE_LIMIT:
        worker.rss()
        if worker.process.poll() is not None:
            raise SystemExit(f"the worker exited; its log: {worker.log_path}")
        opened = await ledger.fetchval("SELECT count(*) FROM loans")
        count = (await asyncio.to_thread(read_metrics, worker.metrics_url)).get(
            TASK_LATENCY + "_count"
        )
        if count != last_count:
            last_count, quiet_since = count, time.monotonic()
        elif opened >= expected and time.monotonic() - quiet_since >= IDLE_SECONDS:
            return
        await asyncio.sleep(0.5)
    log(f"not idle after {SETTLE_LIMIT:.0f} s: sampled anyway")


def sample(phase: str, live: int, seconds: float, worker: WorkerProcess, before: Metrics) -> Sample:
    after = read_metrics(worker.metrics_url)
    deadlocks, eviction_timeouts, pauses = worker.log_counts()
    p50 = quantile(before.histogram(TASK_LATENCY), after.histogram(TASK_LATENCY), 0.50)
    p99 = quantile(before.histogram(TASK_LATENCY), after.histogram(TASK_LATENCY), 0.99)
    tasks = after.get(TASK_LATENCY + "_count") - before.get(TASK_LATENCY + "_count")
    within_1s, earlier_1s = after.histogram(TASK_LATENCY), before.histogram(TASK_LATENCY)
    s2s = quantile(before.histogram(SCHEDULE_TO_START), after.histogram(SCHEDULE_TO_START), 0.99)
    return Sample(
        phase=phase,
        live_loans=live,
        seconds=round(seconds, 1),
        load_average=round(os.getloadavg()[0], 2),
        rss_mb=round(worker.rss() / 2**20, 1),
        peak_rss_mb=round(worker.peak_rss / 2**20, 1),
        cache_size=int(after.get(CACHE_SIZE)),
        forced_evictions=int(after.get(EVICTIONS)),
        task_failures=int(after.get(TASK_FAILED)),
        deadlocks=deadlocks,
        eviction_timeouts=eviction_timeouts,
        full_collections=len(pauses),
        full_collection_max_ms=max((wall for wall, _ in pauses), default=0.0),
        full_collection_max_cpu_ms=max((cpu for _, cpu in pauses), default=0.0),
        tasks=int(tasks),
        tasks_over_1s=int(tasks - (within_1s.get(1000.0, 0.0) - earlier_1s.get(1000.0, 0.0))),
        cache_hits=int(after.get(CACHE_HITS) - before.get(CACHE_HITS)),
        task_ms_p50=p50,
        task_ms_p99=p99,
        schedule_to_start_ms_p99=s2s,
    )


async def run_round(spec: RoundSpec, args: argparse.Namespace) -> RoundResult:
    result = RoundResult(spec)
    with tempfile.TemporaryDirectory(prefix="overdue-bench-scale-") as home:
        stack = EmbeddedStack(
            Config(home=Path(home)), temporal_port=free_port(), ui_port=free_port()
        )
        await stack.start()
        worker: WorkerProcess | None = None
        # The settling, the payment phase's outbox and its polls: one at a time.
        ledger = await db.create_pool(stack.database_url, min_size=1, max_size=4)
        try:
            config = replace(stack.running_config, simulation_seed=args.seed)
            client = await connect(config)
            worker = WorkerProcess(worker_env(config, args.seed), spec, Path(home) / "worker.log")
            await wait_for_pollers(client, [worker.process])
            result.idle_rss_mb = round(worker.rss() / 2**20, 1)
            log(
                f"{spec.name}: cache {spec.cache}, tasks {spec.tasks}; idle {result.idle_rss_mb} MB"
            )
            ids: list[str] = []  # loan ids
            while len(ids) < args.loans:
                result.samples.append(await intake(client, ledger, worker, args, ids))
                log(f"{spec.name}: {result.samples[-1]}")
            if args.payments > 0:
                phase, result.payments = await payments(client, ledger, worker, args, ids)
                result.samples.append(phase)
                log(f"{spec.name}: {phase}")
                for way in result.payments:
                    log(f"{spec.name}: {_latency_line(way)}")
            result.samples.append(await sweep(client, ledger, worker, ids))
            log(f"{spec.name}: {result.samples[-1]}")
        finally:
            if worker is not None:
                worker.stop()
            await ledger.close()
            await stack.stop()
    return result


async def intake(
    client: Client,
    ledger: asyncpg.Pool,
    worker: WorkerProcess,
    args: argparse.Namespace,
    ids: list[str],
) -> Sample:
    """Start the next ``--step`` loans and wait until the worker is done with them."""
    now = datetime.now(UTC)
    # The contact window opens hours later: every loan plans its first call for then and sleeps,
    # so the worker's only work is the intake (and, later, the sweep).
    zone, _ = morning_zone(now, QUIET)
    loans = book(min(args.step, args.loans - len(ids)), 1, zone, now)
    before = await asyncio.to_thread(read_metrics, worker.metrics_url)
    worker.peak_rss = 0
    started = time.monotonic()
    await gather_limited(
        AT_ONCE, [lambda loan=loan: start_collection(client, loan) for loan in loans]
    )
    ids += [loan.loan_id for loan in loans]
    await settle(worker, ledger, len(ids))
    return await asyncio.to_thread(
        sample, "intake", len(ids), time.monotonic() - started, worker, before
    )


async def payments(
    client: Client,
    ledger: asyncpg.Pool,
    worker: WorkerProcess,
    args: argparse.Namespace,
    ids: list[str],
) -> tuple[Sample, list[Latencies]]:
    """Pay random live loans one at a time, each way, and time each payment until applied."""
    before = await asyncio.to_thread(read_metrics, worker.metrics_url)
    worker.peak_rss = 0
    started = time.monotonic()
    latencies = await measure_payments(client, ledger, ids, args.payments, args.seed)
    # A payment's workflow task may still run its follow-up (a re-plan) after the answer.
    await settle(worker, ledger, len(ids))
    phase = await asyncio.to_thread(
        sample, "payments", len(ids), time.monotonic() - started, worker, before
    )
    return phase, latencies


async def sweep(
    client: Client, ledger: asyncpg.Pool, worker: WorkerProcess, ids: list[str]
) -> Sample:
    """Wake every live loan once with a ``borrower_changed`` signal."""
    before = await asyncio.to_thread(read_metrics, worker.metrics_url)
    worker.peak_rss = 0
    started = time.monotonic()
    # The loans run in real time: collection time is now.
    change = BorrowerChange(reason="conversation", by_loan="bench", at=datetime.now(UTC))

    async def wake(loan_id: str) -> None:
        handle = client.get_workflow_handle(workflow_id_for(loan_id))
        await handle.signal("borrower_changed", change)

    await gather_limited(AT_ONCE, [lambda i=i: wake(i) for i in ids])
    await settle(worker, ledger, len(ids))
    return await asyncio.to_thread(
        sample, "sweep", len(ids), time.monotonic() - started, worker, before
    )


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the report -------------------------------------------------------------------------------


def table(results: list[RoundResult]) -> str:
    rows = [
        "| round (cache, tasks) | phase | live loans | RSS MB (peak) | MB per 1,000 live "
        "| cache (hits) | evictions | deadlocks | eviction time-outs | task failures "
        "| full GCs (longest ms, its CPU ms) "
        "| tasks (over 1 s) | task ms p50 / p99 | schedule-to-start p99 ms | seconds | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for s in r.samples:
            per_thousand = (s.rss_mb - r.idle_rss_mb) / (s.live_loans / 1000)
            rows.append(
                f"| {r.spec.name} ({r.spec.cache}, {r.spec.tasks}) | {s.phase} | {s.live_loans} "
                f"| {s.rss_mb:.0f} ({s.peak_rss_mb:.0f}) | {per_thousand:.0f} "
                f"| {s.cache_size} ({s.cache_hits}) | {s.forced_evictions} | {s.deadlocks} "
                f"| {s.eviction_timeouts} | {s.task_failures} | {s.full_collections} "
                f"({s.full_collection_max_ms:.0f}, {s.full_collection_max_cpu_ms:.0f}) "
                f"| {s.tasks} ({s.tasks_over_1s}) "
                f"| {_ms(s.task_ms_p50)} / {_ms(s.task_ms_p99)} "
                f"| {_ms(s.schedule_to_start_ms_p99)} | {s.seconds:.0f} | {s.load_average} |"
            )
    return "\n".join(rows)


def payment_table(results: list[RoundResult]) -> str:
    rows = [
        "| round (cache, tasks) | way | payments | p50 ms | p99 ms | max ms | lost "
        "| not delivered in time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for way in r.payments:
            rows.append(
                f"| {r.spec.name} ({r.spec.cache}, {r.spec.tasks}) | {way.way} | {len(way.ms)} "
                f"| {_ms(way.percentile(0.50))} | {_ms(way.percentile(0.99))} | {_ms(way.max)} "
                f"| {way.lost} | {way.not_delivered} |"
            )
    return "\n".join(rows)


def _latency_line(way: Latencies) -> str:
    return (
        f"payments by {way.way}: {len(way.ms)} applied, p50 {_ms(way.percentile(0.50))} ms,"
        f" p99 {_ms(way.percentile(0.99))} ms, max {_ms(way.max)} ms; {way.lost} lost,"
        f" {way.not_delivered} not delivered in time"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def round_spec(text: str) -> RoundSpec:
    try:
        name, cache, tasks = text.split(":")
        return RoundSpec(name, int(cache), int(tasks))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--round: NAME:CACHE:TASKS, not {text!r}") from None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loans", type=int, default=5000, help="live loans at the end (5000)")
    parser.add_argument("--step", type=int, default=1000, help="loans per intake step (1000)")
    parser.add_argument(
        "--payments",
        type=int,
        default=200,
        help="payments each way once --loans are live; 0 skips the phase (200)",
    )
    parser.add_argument(
        "--round",
        type=round_spec,
        action="append",
        dest="rounds",
        help="NAME:CACHE:TASKS, repeatable (default: current tuning defaults)",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (7)")
    parser.add_argument("--json", action="store_true", help="print the rounds as JSON")
    args = parser.parse_args()
    args.rounds = args.rounds or [
        RoundSpec("current", DEFAULT_MAX_CACHED_WORKFLOWS, DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS)
    ]
    return args


async def main(args: argparse.Namespace) -> list[RoundResult]:
    return [await run_round(spec, args) for spec in args.rounds]


if __name__ == "__main__":
    arguments = parse_args()
    results = asyncio.run(main(arguments))
    if arguments.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"cores: {os.cpu_count()}; loans: {arguments.loans}, {arguments.step} per step")
        print(table(results))
        if arguments.payments > 0:
            print()
            print(payment_table(results))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the Temporal SDK can abort at interpreter exit (sdk-python#300)
