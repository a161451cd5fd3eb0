"""What the borrower-level contact budget costs when all of a borrower's loans plan at once.

    .venv/bin/python bench/budget.py [--borrowers 1000] [--loans-per-borrower 3]
        [--day-seconds 120] [--lead 60] [--window 480] [--actions 2] [--max-seconds 900] [--json]

On a throwaway embedded stack (Temporal dev server and PostgreSQL in a temporary data dir) with
the production worker in this process (simulated provider), it starts ``--borrowers`` times
``--loans-per-borrower`` collections at once: persona ``never_answers``, due yesterday, every
loan of a borrower on the borrower's one phone number. All loans share one compressed collection
clock (``CollectionInput.clock_origin``), in a time zone where the borrowers' contact window
opens (08:00) ``--lead`` collection minutes after the start: every loan plans its first contact
as it opens, for the same morning, and the loans of a borrower compete for one budget. It runs
until ``--window`` collection minutes after the window opened, or until every loan has made
``--actions`` outreach actions, or for ``--max-seconds`` at most; then it terminates the
collections, reads every history and reports:

- ``reserve_contact`` latency: the activity itself, timed by a wrapper registered under the same
  name; p50, p99, max, count; and, apart, its waits for a pool connection and for the advisory
  locks;
- workflow task time, WorkflowTaskStarted to WorkflowTaskCompleted over all histories: p50, p99,
  max; the same over the tasks with a reservation in them, and over those after the window
  opened; and the tasks that timed out;
- the history events the reservation adds to each outreach action: ``reserve_contact`` markers
  and ``borrower-contact-budget`` patch markers over the actions (place_call and send_sms
  scheduled); the same counting the plans still held at the stop as actions to come (a short
  run plans ahead of what it makes); and all events per action;
- throughput: loans planned (a first place granted) per second, and wall times;
- how late the loans woke up (a timer's due moment to the workflow task after it fired), in
  real seconds and collection minutes: a compressed clock turns a worker's backlog into late
  contacts, late contacts into denials at the gate, and denials into more plans (more events);
  a slower day keeps it small.

The product's goals: at most 2 added history events per action, no workflow task over 1 s.
Everything (server, database, worker, this starter) shares the machine's cores, and the load
average is printed: read the figures as this machine's, not a cluster's. ``--borrowers 50`` runs
in about a minute. For the whole scale, a slower day (less lateness) and a lead that lets every
loan open and plan before the window opens, e.g. (about 10 minutes on 2 cores)
``--borrowers 1000 --day-seconds 3600 --lead 150 --window 60``.

Without ``CollectionInput.clock_origin`` (each loan's compressed clock would start at its own
start), it runs in real time, in a zone where the window has just opened, until ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Worker

import activities.budget as budget_module
from activities.budget import BudgetActivities
from overdue import db
from overdue.client import start_collection
from overdue.config import Config
from overdue.connection import connect
from overdue.institutions import SimulatedDeathRegistry
from overdue.simulator import SimulatedCreditBureau
from overdue.stack import EmbeddedStack, free_port
from overdue.tuning import WorkerTuning
from overdue.worker import activities_for, simulated_provider
from workflows import profiles
from workflows.collection import LoanCollection
from workflows.collection.patches import BORROWER_CONTACT_BUDGET
from workflows.commands import ContactReservation, ReservationResult
from workflows.sandbox import workflow_runner
from workflows.types import TASK_QUEUE, Borrower, CollectionInput, Contact, Loan, workflow_id_for

# Whether loans can share one collection clock. Without it each loan's compressed clock starts
# at its own start, and cross-loan budgets would compare moments of different clocks: the bench
# then runs in real time (and stops at --max-seconds).
SHARED_CLOCK = "clock_origin" in {f.name for f in dataclasses.fields(CollectionInput)}
JURISDICTION = "us"
WINDOW_OPENS = profiles.profile_for(JURISDICTION).window_start
OUTREACH = ("place_call", "send_sms")
BALANCE_MINOR = 50_000
POOL_SIZE = 10  # as `overdue worker`'s (overdue.worker.run_worker)
STARTS_AT_ONCE = 64
# The SDK's history markers: a local activity's result, and a patch (``workflow.patched``).
MARKER_LOCAL_ACTIVITY = "core_local_activity"
MARKER_PATCH = "core_patch"


# --- timing the reservation -------------------------------------------------------------------


@dataclass
class Reservations:
    """What the timed ``reserve_contact`` saw, in this process's monotonic seconds."""

    seconds: list[float] = field(default_factory=list)
    pool_wait: list[float] = field(default_factory=list)
    lock_wait: list[float] = field(default_factory=list)  # the advisory locks on borrower, number
    granted: int = 0
    refused: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    first_granted: dict[str, float] = field(default_factory=dict)  # loan id -> moment


class _TimedAcquire:
    """``pool.acquire()`` that records how long the connection took to come."""

    def __init__(self, inner: Any, waits: list[float]) -> None:
        self._inner, self._waits = inner, waits

    async def __aenter__(self) -> asyncpg.Connection:
        started = time.perf_counter()
        conn = await self._inner.__aenter__()
        self._waits.append(time.perf_counter() - started)
        return conn  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.__aexit__(*exc)


class _TimedPool:
    """The worker's pool as ``BudgetActivities`` uses it (``acquire`` only), timed."""

    def __init__(self, pool: asyncpg.Pool, waits: list[float]) -> None:
        self._pool, self._waits = pool, waits

    def acquire(self) -> _TimedAcquire:
        return _TimedAcquire(self._pool.acquire(), self._waits)


class TimedBudgetActivities(BudgetActivities):
    """The production ``reserve_contact``, timed; registered under the same activity name."""

    def __init__(self, pool: asyncpg.Pool, seen: Reservations) -> None:
        super().__init__(_TimedPool(pool, seen.pool_wait))  # type: ignore[arg-type]
        self._seen = seen

    @activity.defn(name="reserve_contact")
    async def reserve_contact(self, request: ContactReservation) -> ReservationResult:
        started = time.perf_counter()
        result = await super().reserve_contact(request)
        done = time.perf_counter()
        self._seen.seconds.append(done - started)
        if result.granted:
            self._seen.granted += 1
            self._seen.first_granted.setdefault(request.loan_id, done)
        else:
            self._seen.refused += 1
            self._seen.refusals[result.rule or "?"] += 1
        return result


def time_lock_waits(seen: Reservations) -> None:
    """Time ``reserve_contact``'s wait for its advisory locks: the module function it calls is
    replaced, in this process only, by a timed one (the channel activities import their own)."""
    locks = budget_module.lock_budget

    async def timed(conn: Any, request: ContactReservation) -> None:
        started = time.perf_counter()
        await locks(conn, request)
        seen.lock_wait.append(time.perf_counter() - started)

    budget_module.lock_budget = timed  # type: ignore[assignment]


def bench_worker(client: Client, pool: asyncpg.Pool, config: Config, seen: Reservations) -> Worker:
    """``overdue.worker.build_worker``'s worker, with the timed ``reserve_contact``."""
    timed = TimedBudgetActivities(pool, seen)
    time_lock_waits(seen)
    activities = [
        timed.reserve_contact
        if getattr(fn, "__func__", None) is BudgetActivities.reserve_contact
        else fn
        for fn in activities_for(
            pool,
            simulated_provider(client, config.simulation_seed, pool),
            config.notices_dir,
            SimulatedCreditBureau(),
            SimulatedDeathRegistry(),
        )
    ]
    assert timed.reserve_contact in activities, "reserve_contact is no longer in activities_for"
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[LoanCollection],
        activities=activities,
        workflow_runner=workflow_runner(),
        **WorkerTuning().worker_options(),  # the production worker's cache and slots
    )


# --- the portfolio ----------------------------------------------------------------------------


def morning_zone(now: datetime, lead: timedelta) -> tuple[ZoneInfo, datetime]:
    """A whole-hour zone in which the contact window opens at least ``lead`` (collection time)
    after ``now``, and as soon after as whole hours allow; and that opening, in UTC. A negative
    ``lead``: the window opened at most that long before ``now``."""
    best: tuple[timedelta, int] | None = None
    for offset in range(-12, 15):
        local = now + timedelta(hours=offset)
        opens = local.replace(
            hour=WINDOW_OPENS.hour, minute=WINDOW_OPENS.minute, second=0, microsecond=0
        )
        while opens - local < lead:
            opens += timedelta(days=1)
        if best is None or opens - local < best[0]:
            best = (opens - local, offset)
    assert best is not None
    until, offset = best
    # POSIX sign: Etc/GMT-3 is three hours ahead of UTC.
    zone = ZoneInfo("Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}")
    return zone, now + until


def book(borrowers: int, per_borrower: int, zone: ZoneInfo, now: datetime) -> list[Loan]:
    """``per_borrower`` loans of each borrower, on the borrower's phone, with the same two
    references; due yesterday, borrower-local."""
    tag = uuid.uuid4().hex[:6]
    due = (now.astimezone(zone).date() - timedelta(days=1)).isoformat()
    base = uuid.uuid4().int % 9_000_000

    def phone(n: int) -> str:
        return f"+1555{(base + n) % 10_000_000:07d}"

    loans = []
    for b in range(borrowers):
        borrower = Borrower(
            f"never_answers-{tag}-{b:05d}", "Bench Borrower", phone(3 * b), zone.key
        )
        references = [
            Contact(f"R-{tag}-{b:05d}-{n}", f"Reference {n}", phone(3 * b + n), relation)
            for n, relation in ((1, "sibling"), (2, "workplace"))
        ]
        loans += [
            Loan(
                loan_id=f"BB-{tag}-{b:05d}-{n}",
                borrower=borrower,
                product="personal",
                principal_minor=2 * BALANCE_MINOR,
                outstanding_minor=BALANCE_MINOR,
                currency="USD",
                due_date=due,
                jurisdiction=JURISDICTION,
                contacts=references,
            )
            for n in range(per_borrower)
        ]
    return loans


async def gather_limited(limit: int, work: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in work))


# --- reading the histories --------------------------------------------------------------------


@dataclass
class Histories:
    runs: int = 0
    events: int = 0
    actions: int = 0
    reservation_markers: int = 0
    budget_patch_markers: int = 0
    # Workflow tasks that only kept a running local activity alive (completed, and a new task
    # scheduled at once): three events each.
    heartbeat_tasks: int = 0
    task_ms: list[float] = field(default_factory=list)
    task_ms_reserving: list[float] = field(default_factory=list)  # tasks with a reservation
    task_ms_contacting: list[float] = field(default_factory=list)  # after the window opened
    task_failures: int = 0
    task_timeouts: Counter[str] = field(default_factory=Counter)  # by timeout type
    # Real seconds from when a timer was due (the workflow task that started it, plus its
    # duration) to the workflow task that ran after it fired: what the loan woke up late.
    timer_lateness: list[float] = field(default_factory=list)


def _marker(event: HistoryEvent) -> tuple[str, str]:
    """(``local_activity``, its type) or (``patch``, its id) or (the marker's name, "")."""
    attrs = event.marker_recorded_event_attributes
    if attrs.marker_name == MARKER_LOCAL_ACTIVITY:
        data = json.loads(attrs.details["data"].payloads[0].data)
        return "local_activity", str(data.get("activity_type", ""))
    if attrs.marker_name == MARKER_PATCH:
        data = json.loads(attrs.details["patch-data"].payloads[0].data)
        return "patch", str(data.get("id", ""))
    return attrs.marker_name, ""


def read_history(events: list[HistoryEvent], into: Histories, opened_ns: int) -> None:
    """Count ``events`` (one run) into ``into``; ``opened_ns``: when the contact window opened,
    in real time."""
    into.runs += 1
    into.events += len(events)
    started_at: int | None = None
    previous: int | None = None
    tasks: dict[int, float] = {}  # WorkflowTaskCompleted event id -> task time
    contacting: set[int] = set()  # those completed after the window opened
    reserving: set[int] = set()
    task_started_at = 0  # the last WorkflowTaskStarted: the workflow's ``now``
    due: dict[int, int] = {}  # TimerStarted event id -> when it was due (ns)
    fired: list[int] = []  # due moments of timers fired since the last task started
    for event in events:
        kind = event.event_type
        at = event.event_time.ToNanoseconds()
        if kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToNanoseconds()
            due[event.event_id] = task_started_at + timeout
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            fired.append(due.pop(event.timer_fired_event_attributes.started_event_id, at))
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            into.actions += name in OUTREACH
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker, name = _marker(event)
            if marker == "local_activity" and name == "reserve_contact":
                into.reservation_markers += 1
                reserving.add(
                    event.marker_recorded_event_attributes.workflow_task_completed_event_id
                )
            elif marker == "patch" and name == BORROWER_CONTACT_BUDGET:
                into.budget_patch_markers += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started_at = task_started_at = at
            into.timer_lateness += ((at - d) / 1e9 for d in fired)
            fired = []
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started_at is not None:
            tasks[event.event_id] = (at - started_at) / 1e6
            if at >= opened_ns:
                contacting.add(event.event_id)
            started_at = None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            into.task_failures += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            timeout = event.workflow_task_timed_out_event_attributes.timeout_type
            into.task_timeouts[TimeoutType.Name(timeout).removeprefix("TIMEOUT_TYPE_").lower()] += 1
        if (
            kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
            and previous == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ):
            into.heartbeat_tasks += 1
        previous = kind
    into.task_ms += tasks.values()
    into.task_ms_reserving += (ms for event_id, ms in tasks.items() if event_id in reserving)
    into.task_ms_contacting += (ms for event_id, ms in tasks.items() if event_id in contacting)


async def read_histories(client: Client, workflow_ids: list[str], opened_ns: int) -> Histories:
    """Every run of every collection (a continued-as-new run names the one before it)."""
    seen = Histories()

    async def read(workflow_id: str) -> None:
        run_id: str | None = None
        while True:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            events = [event async for event in handle.fetch_history_events()]
            read_history(events, seen, opened_ns)
            first = events[0].workflow_execution_started_event_attributes
            run_id = first.continued_execution_run_id or None
            if run_id is None:
                return

    await gather_limited(16, [lambda w=w: read(w) for w in workflow_ids])
    return seen


# --- the run ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


@dataclass
class Window:
    """The collecting phase, from the first start to the stop."""

    zone: str
    origin: datetime  # the shared clock's origin: real and collection time alike
    opens: datetime  # the borrowers' contact window opens (collection time, UTC)
    day_seconds: float | None
    started_in: float = 0.0
    seconds: float = 0.0
    collection_now: datetime | None = None
    stopped: str = ""
    loans_done: int = 0  # loans that made ``--actions`` outreach actions
    attempts: int = 0
    denied: int = 0
    held_at_stop: int = 0  # planned contacts still holding a place: actions to come
    load: list[float] = field(default_factory=list)  # 1-minute load averages seen

    @property
    def speed(self) -> float:
        """Collection seconds per real second."""
        return 86_400 / self.day_seconds if self.day_seconds else 1.0

    def now(self) -> datetime:
        return self.origin + (datetime.now(UTC) - self.origin) * self.speed

    def opened_ns(self) -> int:
        """When the window opened, in real time (ns since the epoch)."""
        real = self.origin + (self.opens - self.origin) / self.speed
        return int(real.timestamp() * 1e9)


async def progress(pool: asyncpg.Pool, actions: int) -> tuple[int, int, int]:
    """Loans that made ``actions`` outreach actions, attempts in all, contacts denied."""
    done = await pool.fetchval(
        "SELECT count(*) FROM (SELECT loan_id FROM contact_attempts GROUP BY loan_id"
        " HAVING count(*) >= $1) d",
        actions,
    )
    attempts = await pool.fetchval("SELECT count(*) FROM contact_attempts")
    denied = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'contact_denied'")
    return int(done), int(attempts), int(denied)


async def collect(
    args: argparse.Namespace,
    client: Client,
    watch: asyncpg.Pool,
    loans: list[Loan],
    window: Window,
    seen: Reservations,
) -> float:
    """Start every collection at once, watch them until a stop condition, and read what the
    ledger says of the contacts; returns the monotonic moment of the first start."""
    clock = {"clock_origin": window.origin} if SHARED_CLOCK else {}
    t0 = time.perf_counter()
    await gather_limited(
        STARTS_AT_ONCE,
        [
            lambda loan=loan: start_collection(
                client, loan, day_seconds=window.day_seconds, **clock
            )
            for loan in loans
        ],
    )
    window.started_in = time.perf_counter() - t0
    log(f"{len(loans)} collections started in {window.started_in:.1f} s")
    stop_at = window.opens + timedelta(minutes=args.window)
    last_report = 0.0
    while True:
        elapsed = time.perf_counter() - t0
        now = window.now()
        window.loans_done, window.attempts, window.denied = await progress(watch, args.actions)
        if time.perf_counter() - last_report >= 10:
            last_report = time.perf_counter()
            window.load.append(os.getloadavg()[0])
            log(
                f"{elapsed:5.0f} s, {now.astimezone(ZoneInfo(window.zone)):%H:%M} borrower-local:"
                f" {len(seen.first_granted)} loans planned, {len(seen.seconds)} reservations,"
                f" {window.attempts} attempts, {window.denied} denied, load {window.load[-1]:.1f}"
            )
        if window.loans_done >= len(loans):
            window.stopped = f"every loan made {args.actions} outreach actions"
        elif now >= stop_at:
            window.stopped = f"{args.window:g} collection minutes after the window opened"
        elif elapsed >= args.max_seconds:
            window.stopped = f"--max-seconds {args.max_seconds:g}"
        if window.stopped:
            break
        await asyncio.sleep(1)
    window.seconds = time.perf_counter() - t0
    window.collection_now = window.now()
    window.held_at_stop = int(
        await watch.fetchval(
            "SELECT count(*) FROM contact_reservations WHERE status = 'held' AND expires_at > $1",
            window.collection_now,
        )
    )
    return t0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    wall = time.perf_counter()
    seen = Reservations()
    with tempfile.TemporaryDirectory(prefix="overdue-bench-budget-") as home:
        return await _run_in(Path(home), args, seen, wall)


async def _run_in(
    home: Path, args: argparse.Namespace, seen: Reservations, wall: float
) -> dict[str, Any]:
    stack = EmbeddedStack(Config(home=home), temporal_port=free_port(), ui_port=free_port())
    await stack.start()
    pools: list[asyncpg.Pool] = []
    try:
        config = replace(stack.running_config, simulation_seed=args.seed)
        # The SDK's warnings of slow workflow tasks would flood the output: the figures say it.
        quiet = TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter("ERROR", "ERROR")))
        client = await connect(config, runtime=Runtime(telemetry=quiet))
        pool = await db.create_pool(stack.database_url, max_size=POOL_SIZE)
        watch = await db.create_pool(stack.database_url, max_size=2)  # the bench's own reads
        pools += [pool, watch]
        origin = datetime.now(UTC)
        # In real time, nothing can wait for a morning: the window opened within the hour.
        lead = args.lead if SHARED_CLOCK else -60
        zone, opens = morning_zone(origin, timedelta(minutes=lead))
        day_seconds = args.day_seconds if SHARED_CLOCK else None
        window = Window(zone.key, origin, opens, day_seconds, load=[os.getloadavg()[0]])
        loans = book(args.borrowers, args.loans_per_borrower, zone, origin)
        if not SHARED_CLOCK:
            log("CollectionInput has no clock_origin: real time, bounded by --max-seconds")
        log(
            f"{len(loans)} loans in {zone.key}: {origin.astimezone(zone):%H:%M} local, window"
            f" opens in {(opens - origin).total_seconds() / window.speed:.0f} s;"
            f" a collection day lasts {day_seconds or 86_400:g} s"
        )
        ids = [workflow_id_for(loan.loan_id) for loan in loans]
        async with bench_worker(client, pool, config, seen):
            t0 = await collect(args, client, watch, loans, window, seen)
            await gather_limited(STARTS_AT_ONCE, [lambda w=w: _terminate(client, w) for w in ids])
        log(f"stopped: {window.stopped}; reading {len(ids)} histories")
        t_read = time.perf_counter()
        histories = await read_histories(client, ids, window.opened_ns())
        read_in = time.perf_counter() - t_read
        window.load.append(os.getloadavg()[0])
    finally:
        for each in pools:
            await each.close()
        await stack.stop()
    return figures(args, seen, histories, window, len(loans), t0, read_in, wall)


async def _terminate(client: Client, workflow_id: str) -> None:
    with contextlib.suppress(RPCError):  # already closed
        await client.get_workflow_handle(workflow_id).terminate("bench done")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the figures ------------------------------------------------------------------------------


def _ratio(n: int, d: int) -> float | None:
    return round(n / d, 2) if d else None


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.50), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values, default=float("nan")), 1),
    }


def figures(
    args: argparse.Namespace,
    seen: Reservations,
    h: Histories,
    window: Window,
    loans: int,
    t0: float,
    read_in: float,
    wall: float,
) -> dict[str, Any]:
    firsts = sorted(seen.first_granted.values())
    planned_in = (firsts[-1] - t0) if firsts else float("nan")
    added = h.reservation_markers + h.budget_patch_markers
    late = h.timer_lateness
    zone = ZoneInfo(window.zone)
    return {
        "borrowers": args.borrowers,
        "loans_per_borrower": args.loans_per_borrower,
        "loans": loans,
        "cores": os.cpu_count(),
        "load_average": {"min": min(window.load), "max": max(window.load)},
        "shared_clock": SHARED_CLOCK,
        "day_seconds": window.day_seconds,
        "zone": window.zone,
        "started_local": f"{window.origin.astimezone(zone):%H:%M}",
        "window_opens_local": f"{window.opens.astimezone(zone):%H:%M}",
        "stopped_local": f"{window.collection_now.astimezone(zone):%H:%M}"
        if window.collection_now
        else None,
        "stopped": window.stopped,
        "loans_with_all_actions": window.loans_done,
        "reservation_ms": {
            "count": len(seen.seconds),
            **_ms([s * 1000 for s in seen.seconds]),
            "pool_wait": _ms([s * 1000 for s in seen.pool_wait]),
            "lock_wait": _ms([s * 1000 for s in seen.lock_wait]),
            "granted": seen.granted,
            "refused": seen.refused,
            "refusals": dict(seen.refusals),
        },
        "workflow_task_ms": {
            "count": len(h.task_ms),
            **_ms(h.task_ms),
            "over_1s": sum(1 for t in h.task_ms if t > 1000),
            "with_reservation": {"count": len(h.task_ms_reserving), **_ms(h.task_ms_reserving)},
            "after_window_opened": {
                "count": len(h.task_ms_contacting),
                **_ms(h.task_ms_contacting),
            },
            "failed": h.task_failures,
            "timed_out": dict(h.task_timeouts),
        },
        "events": {
            "runs": h.runs,
            "total": h.events,
            "actions": h.actions,
            "attempts_recorded": window.attempts,
            "contacts_denied": window.denied,
            "plans_held_at_stop": window.held_at_stop,
            "reservation_markers": h.reservation_markers,
            "budget_patch_markers": h.budget_patch_markers,
            "local_activity_heartbeat_tasks": h.heartbeat_tasks,
            "added_per_action": _ratio(added, h.actions),
            "added_per_action_and_held_plan": _ratio(added, h.actions + window.held_at_stop),
            "added_per_action_with_heartbeats": _ratio(added + 3 * h.heartbeat_tasks, h.actions),
            "total_per_action": _ratio(h.events, h.actions),
        },
        "timer_lateness": {
            "count": len(late),
            "real_seconds": {
                "p50": round(percentile(late, 0.50), 2),
                "p99": round(percentile(late, 0.99), 2),
                "max": round(max(late, default=float("nan")), 2),
            },
            "collection_minutes": {
                "p50": round(percentile(late, 0.50) * window.speed / 60, 1),
                "p99": round(percentile(late, 0.99) * window.speed / 60, 1),
                "max": round(max(late, default=float("nan")) * window.speed / 60, 1),
            },
        },
        "throughput": {
            "starts_seconds": round(window.started_in, 1),
            "loans_planned": len(firsts),
            "all_planned_seconds": round(planned_in, 1),
            "loans_planned_per_second": round(len(firsts) / planned_in, 1) if firsts else None,
            "collecting_seconds": round(window.seconds, 1),
            "history_read_seconds": round(read_in, 1),
            "wall_seconds": round(time.perf_counter() - wall, 1),
        },
    }


def table(f: dict[str, Any]) -> str:
    r, w, e, t = f["reservation_ms"], f["workflow_task_ms"], f["events"], f["throughput"]
    wr, wc, pw, lw = w["with_reservation"], w["after_window_opened"], r["pool_wait"], r["lock_wait"]
    timeouts = ", ".join(f"{n} {kind}" for kind, n in w["timed_out"].items()) or "none"
    late, late_min = f["timer_lateness"]["real_seconds"], f["timer_lateness"]["collection_minutes"]
    clock = (
        f"collection day {f['day_seconds']:g} s, one clock_origin for all loans"
        if f["shared_clock"]
        else "real time (CollectionInput has no clock_origin)"
    )
    added = e["added_per_action"]
    events_goal = "n/a (no action)" if added is None else "met" if added <= 2 else "NOT met"
    tasks_goal = "met" if w["max"] <= 1000 else "NOT met"
    rows = [
        ("reserve_contact p50 / p99 / max", f"{r['p50']} / {r['p99']} / {r['max']} ms"),
        ("  of which waiting for a connection, p50 / p99 / max", f"{pw['p50']} / {pw['p99']} / {pw['max']} ms"),
        ("  of which waiting for the advisory locks, p50 / p99 / max", f"{lw['p50']} / {lw['p99']} / {lw['max']} ms"),
        ("reservations: granted / refused", f"{r['count']}: {r['granted']} / {r['refused']}"),
        ("workflow task p50 / p99 / max", f"{w['p50']} / {w['p99']} / {w['max']} ms"),
        ("  tasks with a reservation, p50 / p99 / max", f"{wr['p50']} / {wr['p99']} / {wr['max']} ms"),
        ("  tasks after the window opened, p50 / p99 / max", f"{wc['p50']} / {wc['p99']} / {wc['max']} ms"),
        ("workflow tasks (over 1 s)", f"{w['count']} ({w['over_1s']})"),
        ("workflow task timeouts", timeouts),
        ("outreach actions (attempts recorded, denied)", f"{e['actions']} ({e['attempts_recorded']}, {e['contacts_denied']})"),
        ("reserve_contact markers + budget patch markers", f"{e['reservation_markers']} + {e['budget_patch_markers']}"),
        ("events added per action", f"{added} (goal <= 2: {events_goal})"),
        ("  counting the plans held at the stop as actions", f"{e['added_per_action_and_held_plan']} ({e['plans_held_at_stop']} held)"),
        ("  with local-activity heartbeat tasks", str(e["added_per_action_with_heartbeats"])),
        ("history events per action, all", str(e["total_per_action"])),
        ("timers late p50 / p99 / max, real s", f"{late['p50']} / {late['p99']} / {late['max']}"),
        ("  in collection minutes", f"{late_min['p50']} / {late_min['p99']} / {late_min['max']}"),
        ("loans planned per second", f"{t['loans_planned_per_second']} ({t['loans_planned']} of {f['loans']} in {t['all_planned_seconds']} s)"),
        ("starting / collecting / wall", f"{t['starts_seconds']} s / {t['collecting_seconds']} s / {t['wall_seconds']} s"),
    ]  # fmt: skip
    load = f["load_average"]
    return "\n".join(
        [
            f"{f['borrowers']} borrowers x {f['loans_per_borrower']} loans = {f['loans']}"
            f" collections; {clock}; {f['cores']} cores, load average {load['min']:.1f}"
            f" to {load['max']:.1f}",
            f"borrower-local {f['started_local']} to {f['stopped_local']}, window opening at"
            f" {f['window_opens_local']}; stopped: {f['stopped']}"
            f" ({f['loans_with_all_actions']} loans made every action)",
            f"goals: <= 2 added events per action {events_goal};"
            f" no workflow task over 1 s {tasks_goal}",
            "",
            "| figure | value |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in rows),
        ]
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--borrowers", type=int, default=1000, help="borrowers (default 1000)")
    parser.add_argument(
        "--loans-per-borrower", type=int, default=3, help="loans of each borrower (default 3)"
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=120,
        help="real seconds per collection day, one clock for all loans (default 120)",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=60,
        help="collection minutes from the start to the window's opening, at least: time for"
        " every loan to open and plan (default 60)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=480,
        help="stop this many collection minutes after the window opened (default 480)",
    )
    parser.add_argument(
        "--actions",
        type=int,
        default=2,
        help="stop when every loan made this many outreach actions (default 2)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900,
        help="stop after this many real seconds, whatever was reached (default 900)",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    arguments = parse_args()
    result = asyncio.run(run(arguments))
    print(json.dumps(result, indent=2) if arguments.json else table(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the Temporal SDK can abort at interpreter exit (sdk-python#300)
