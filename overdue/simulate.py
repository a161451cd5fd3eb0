"""``overdue simulate``: strategies compared on one simulated portfolio, without waiting for days.

The demo's portfolio (``overdue.demo.portfolio``: seeded personas and amounts) is collected once
per strategy (an *arm*) by the real ``LoanCollection`` workflow and the real activities, on
Temporal's Java time-skipping test server and a throwaway embedded PostgreSQL. Nothing else is
touched: not the configured ledger, not the configured Temporal.

How an arm runs:

- **Its own loans.** Each arm collects a copy of the portfolio whose loan ids, borrower ids,
  phones and reference ids carry the arm's name (``DEMO-s3-0004-gentle``): the same personas and
  amounts, but no contact budget, cease request or reference shared with another arm.
- **Its own worker.** The worker's strategy folder holds one assignment rule (every loan to the
  arm's strategy) and the strategy's file, so each loan records the arm's strategy as any
  assigned loan does. Arms run one after the other, each with a fresh worker whose sticky cache
  holds every loan.
- **The same hour.** All workflows of one environment share one clock, which only moves forward:
  each arm starts at the next 12:00 UTC, when every zone of the portfolio is on the same date as
  UTC, so every arm's loans start at the same local times of day and are one day past due.
- **A clock moved in steps.** Time skips only when the harness lets it: it sleeps the clock
  forward ``STEP`` at a time (``unlock_time_skipping_with_sleep``), with every loan in flight.
  The server fires every timer on the way and skips nothing while an activity runs or a
  workflow task waits, so when a step ends every loan has done what fell due until then. The
  simulated back office (``overdue.demo.BackOffice``) then looks, at that collection time, at the
  loans whose borrowers told it something only a person settles, and answers; its decisions,
  like the borrowers', are fixed by the seed. Which loans ended, the ledger says.
- **A horizon.** After ``days`` collection days, loans still open are counted as not cured,
  with what they recovered by then, and terminated (between steps no activity runs, so
  terminating one does not stop the server's clock).

The same seed gives the same loans and personas, but not exactly the same collections: the
planner picks a call's minute with ``workflow.random()``, which the SDK seeds from the run id the
server draws, and the server's clock runs on in real time while the worker works (time skipping
locked is not time stopped). A call placed at another minute may fall past a slot's end or a
day's cap and change its loan's path; the figures move a little from run to run.

The figures (``overdue.simulate_figures``) come from each loan's result and the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    WorkflowExecutionDescription,
    WorkflowQueryFailedError,
)
from temporalio.converter import DataConverter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.assignment import ASSIGNMENT_FILE
from activities.strategy import read_strategy
from overdue import db
from overdue.config import Config
from overdue.demo import BackOffice, portfolio
from overdue.replay import core_logs_to_python
from overdue.simulate_figures import ArmRun, LoanResult, figures
from overdue.simulate_html import write_html
from overdue.simulator import BorrowerSimulator
from overdue.stack import EmbeddedStack, installed_binary, register_search_attributes
from overdue.starts import start_collection
from overdue.tuning import DEFAULT_MAX_CACHED_WORKFLOWS, WorkerTuning
from overdue.worker import build_worker, package_folder
from workflows.types import (
    ClockAnchor,
    CollectionStatus,
    CollectionSummary,
    Loan,
    workflow_id_for,
)
from workflows.vocabulary import Stage

STEP = timedelta(hours=3)  # how far the clock moves between two looks of the back office
START_HOUR_UTC = 12  # 04:00-20:00 local in the portfolio's zones: all on UTC's date
DAY = timedelta(days=1)
MAX_ACTIVITIES = 100  # activities a worker runs at once: many loans act at one instant
STARTS_AT_ONCE = 32
SLEEP_TIMEOUT = timedelta(minutes=30)  # real time one step may take


ARM_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")


class SimulationError(RuntimeError):
    """A simulation could not run as asked; the message says why."""


@dataclass(frozen=True)
class Arm:
    """One strategy under test: its name (the file's stem) and its file."""

    name: str
    path: Path


def resolve_arms(names: Sequence[str], lender_folder: Path | None) -> list[Arm]:
    """The strategies asked for, each a path to a strategy file or a name found in the lender's
    folder (``OVERDUE_STRATEGIES``) or among the packaged ones; each file is checked.

    Raises:
        SimulationError: fewer than one, a name twice, an unknown name, or a bad file.
    """
    if not names:
        raise SimulationError("strategy: give at least one --strategy")
    folders = [f for f in (lender_folder, package_folder("strategies")) if f is not None]
    arms: list[Arm] = []
    for name in names:
        given = Path(name)
        if given.suffix == ".toml" or given.is_file():
            path = given
        else:
            path = next(
                (f / f"{name}.toml" for f in folders if (f / f"{name}.toml").is_file()), given
            )
        if not path.is_file():
            where = ", ".join(str(f) for f in folders)
            raise SimulationError(f"strategy: {name!r} is neither a file nor a strategy in {where}")
        try:
            read_strategy(path)
        except (ValueError, OSError) as problem:
            raise SimulationError(f"strategy: {path}: {problem}") from None
        if not ARM_NAME.fullmatch(path.stem):
            raise SimulationError(
                f"strategy: {path.name}: name the file with letters, digits, '.', '_' or '-'"
                " (at most 32): its name goes into every simulated loan's id"
            )
        arms.append(Arm(path.stem, path))
    seen = [arm.name for arm in arms]
    if len(set(seen)) != len(seen):
        raise SimulationError(f"strategy: each strategy once, got {', '.join(seen)}")
    return arms


def arm_folder(arm: Arm, parent: Path) -> Path:
    """A strategy folder that assigns every loan to ``arm``'s strategy, holding its file."""
    folder = parent / f"strategies-{arm.name}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(arm.path, folder / f"{arm.name}.toml")
    (folder / ASSIGNMENT_FILE).write_text(
        f'[[segments]]\nname = "simulation"\nchampion = "{arm.name}"\nsplit = {{ {arm.name} = 100 }}\n'
    )
    return folder


def arm_loans(base: Sequence[Loan], arm: str) -> list[Loan]:
    """The portfolio as ``arm`` collects it: the same personas, amounts, zones and jurisdictions,
    under ids and phone numbers of the arm's own (a borrower's loans stay one borrower's)."""
    return [
        replace(
            loan,
            loan_id=f"{loan.loan_id}-{arm}",
            borrower=replace(
                loan.borrower,
                borrower_id=f"{loan.borrower.borrower_id}-{arm}",
                phone=_arm_phone(loan.borrower.phone, arm),
            ),
            contacts=[
                replace(c, contact_id=f"{c.contact_id}-{arm}", phone=_arm_phone(c.phone, arm))
                for c in loan.contacts
            ],
        )
        for loan in base
    ]


def _arm_phone(phone: str, arm: str) -> str:
    """Another number of the +1 555 fiction range, the same for the same person and arm."""
    digits = int(hashlib.sha256(f"{phone}:{arm}".encode()).hexdigest(), 16) % 10**7
    return f"+1555{digits:07d}"


@dataclass
class SteppedBackOffice(BackOffice):
    """The demo's back office, reading the time on the harness's stepped clock."""

    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.at


class _NullSafeDescribe(Interceptor):
    """``describe`` that reads the Java test server's unset search attributes as unset.

    That server keeps an unset attribute as a null payload (``binary/null``) where a real
    server removes it, and the SDK's ``describe`` then fails on an unset Datetime
    (``NextContactAt`` while nothing is planned). The back office's signals check through
    ``describe`` that the collection still runs, so the simulation's client drops those nulls,
    as ``tests/workflow/support.stored_search_attributes`` does.
    """

    def __init__(self) -> None:
        self.client: Client | None = None

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _NullSafeOutbound(next, self)


class _NullSafeOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, owner: _NullSafeDescribe) -> None:
        super().__init__(next)
        self._owner = owner

    async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
        client = self._owner.client
        assert client is not None
        raw = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=input.id, run_id=input.run_id or ""),
            ),
            retry=True,
            metadata=input.rpc_metadata,
            timeout=input.rpc_timeout,
        )
        fields = raw.workflow_execution_info.search_attributes.indexed_fields
        for name in [n for n, v in fields.items() if v.metadata.get("encoding") == b"binary/null"]:
            del fields[name]
        return await WorkflowExecutionDescription._from_raw_description(
            raw, namespace=client.namespace, converter=DataConverter.default
        )


def simulation_client(env: WorkflowEnvironment) -> Client:
    """A client of ``env``'s server whose ``describe`` reads its unset search attributes."""
    interceptor = _NullSafeDescribe()
    client = Client(
        env.client.service_client, namespace=env.client.namespace, interceptors=[interceptor]
    )
    interceptor.client = client
    return client


@asynccontextmanager
async def simulation_stack() -> AsyncIterator[tuple[WorkflowEnvironment, asyncpg.Pool, Config]]:
    """A throwaway PostgreSQL (in a temporary data dir) and the time-skipping server."""
    home = Path(tempfile.mkdtemp(prefix="overdue-simulate-"))
    config = Config(home=home, temporal_address="time-skipping")
    stack = EmbeddedStack(config=config)
    try:
        await stack.start()
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=installed_binary("temporal-test-server"),
            test_server_startup_timeout=timedelta(seconds=60),
            runtime=core_logs_to_python(),  # the core's log lines never reach stdout's JSON
        )
        try:
            await register_search_attributes(env.client, config.namespace)
            pool = await db.create_pool(stack.database_url, max_size=20)
            try:
                yield env, pool, replace(config, database_url=stack.database_url)
            finally:
                await pool.close()
        finally:
            await env.shutdown()
    finally:
        await stack.stop()
        shutil.rmtree(home, ignore_errors=True)


async def simulate(
    strategies: Sequence[Arm],
    *,
    loans: int,
    seed: int,
    days: int,
    details: bool = False,
    html: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Collect the seeded portfolio once per strategy and compare the figures (``figures``);
    ``details`` adds every loan's result; ``html`` writes the page (``overdue.simulate_html``)
    with ``overdue report``'s figures of the simulated ledger, split by strategy."""
    started = time.monotonic()
    runs: list[ArmRun] = []
    async with simulation_stack() as (env, pool, config):
        with tempfile.TemporaryDirectory(prefix="overdue-arms-") as folders:
            base = portfolio(loans, seed, f"s{seed}", await env.get_current_time())
            for arm in strategies:
                runs.append(
                    await run_arm(
                        env,
                        pool,
                        replace(
                            config,
                            strategies_dir=arm_folder(arm, Path(folders)),
                            simulation_seed=seed,
                        ),
                        arm.name,
                        base,
                        seed=seed,
                        days=days,
                        on_progress=on_progress,
                    )
                )
        report = figures(runs, seed=seed, details=details)
        report.update(loans=loans, seed=seed, days=days)
        loan_ids = [r.loan_id for run in runs for r in run.results]
        # The figures above come from the workflows' results, the HTML report's from the audit
        # log: a loan on which the two could disagree is named, never silently counted.
        from overdue.report.ledger import stage_disagreements

        report["stage_disagreements"] = await stage_disagreements(pool, loan_ids)
        if html is not None:
            write_html(report, html, await portfolio_report(pool, loan_ids))
            report["html"] = str(html)
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    return report


async def portfolio_report(pool: asyncpg.Pool, loan_ids: Sequence[str]) -> dict[str, Any] | None:
    """``overdue report``'s figures of the simulated loans over their whole collection, split by
    strategy (every arm's period in one: arms run one after the other on one clock)."""
    from overdue.report.figures import report
    from overdue.report.ledger import read_ledger, span_of

    period = await span_of(pool, loan_ids)
    if period is None:
        return None
    return report(await read_ledger(pool, period, loan_ids), period, by="strategy")


async def run_arm(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    config: Config,
    arm: str,
    base: Sequence[Loan],
    *,
    seed: int,
    days: int,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> ArmRun:
    """Collect ``base`` under the arm's strategy until every loan ends or ``days`` pass."""
    client = simulation_client(env)
    wall = time.monotonic()
    # Results are awaited while the harness alone moves the clock: waiting for one must not
    # unlock time skipping, as the SDK's test client otherwise does.
    with env.auto_time_skipping_disabled():
        start = await _next_start(env)
        book = [replace(loan, due_date=_yesterday(start, loan)) for loan in arm_loans(base, arm)]
        # Every loan in the sticky cache: one evicted is replayed from its history at each task.
        tuning = WorkerTuning(max_cached_workflows=max(len(book), DEFAULT_MAX_CACHED_WORKFLOWS))
        async with build_worker(
            client, pool, config, tuning, max_concurrent_activities=MAX_ACTIVITIES
        ):
            limit = asyncio.Semaphore(STARTS_AT_ONCE)

            async def begin(loan: Loan) -> None:
                async with limit:
                    await start_collection(client, loan)

            await asyncio.gather(*(begin(loan) for loan in book))
            done: dict[str, CollectionSummary] = {}
            office = SteppedBackOffice(client, seed, ClockAnchor(start, start, None))
            office.at = start
            horizon = start + days * DAY
            steps = 0
            while office.at < horizon and len(done) < len(book):
                steps += 1
                target = min(start + steps * STEP, horizon)
                # To the step's end from where the clock is: it ran on (in real time) while the
                # back office worked, and the steps must not drift with that.
                await _sleep(env, target - await env.get_current_time())
                office.at = target
                running = [loan for loan in book if loan.loan_id not in done]
                done.update(await _ended(client, pool, running))
                if on_progress is not None:
                    on_progress(arm, len(done), len(book))
                running = [loan for loan in running if loan.loan_id not in done]
                await office.sweep(await _waiting_kinds(pool, running))
            open_at_horizon = await _close_open(client, book, done)
            if on_progress is not None:
                on_progress(arm, len(book), len(book))  # every loan ended, or at the horizon
    results = [
        _result(loan, done.get(loan.loan_id), open_at_horizon.get(loan.loan_id), start, seed)
        for loan in book
    ]
    await _count_contacts(pool, results)
    return ArmRun(arm, results, time.monotonic() - wall, start)


async def _waiting_kinds(pool: asyncpg.Pool, loans: Sequence[Loan]) -> list[Loan]:
    """The loans whose borrowers have told what only a person settles (a dispute, a death, a
    hardship: the ledger keeps every reported fact): the only ones the back office can have
    anything to do for. Asking the ledger once spares a ``status`` query of every running loan
    at every step."""
    told = {
        row["loan_id"]
        for row in await pool.fetch(
            "SELECT DISTINCT loan_id FROM contact_outcomes WHERE loan_id = ANY($1)"
            " AND details ?| array['dispute', 'hardship', 'death_reported_by', 'situation']",
            [loan.loan_id for loan in loans],
        )
    }
    return [loan for loan in loans if loan.loan_id in told]


async def _ended(
    client: Client, pool: asyncpg.Pool, loans: Sequence[Loan]
) -> dict[str, CollectionSummary]:
    """The results of the loans whose collection has ended, as the ledger tells (``closed_at``).

    The ledger, not a long poll per loan: a thousand waiting polls load the test server, and a
    poll that fails loses its loan. A collection closes its ledger row in its last activity, so
    its result follows at once, without the clock moving.
    """
    closed = [
        row["loan_id"]
        for row in await pool.fetch(
            "SELECT loan_id FROM loans WHERE loan_id = ANY($1) AND closed_at IS NOT NULL",
            [loan.loan_id for loan in loans],
        )
    ]
    limit = asyncio.Semaphore(STARTS_AT_ONCE)

    async def result(loan_id: str) -> tuple[str, CollectionSummary]:
        async with limit:
            return loan_id, await _summary(client, loan_id)

    return dict(await asyncio.gather(*(result(loan_id) for loan_id in closed)))


async def _summary(client: Client, loan_id: str) -> CollectionSummary:
    handle = client.get_workflow_handle(workflow_id_for(loan_id), result_type=CollectionSummary)
    summary: CollectionSummary = await handle.result()
    return summary


async def _close_open(
    client: Client, book: Sequence[Loan], done: dict[str, CollectionSummary]
) -> dict[str, CollectionStatus]:
    """At the horizon: what each loan still open stands at, and then its end (terminated)."""
    open_at_horizon: dict[str, CollectionStatus] = {}
    for loan in book:
        if loan.loan_id in done:
            continue
        handle = client.get_workflow_handle(workflow_id_for(loan.loan_id))
        try:
            # By name, as the back office asks: the query is the workflow's contract.
            status = await handle.query("status", result_type=CollectionStatus)
            await handle.terminate("simulation horizon reached")
        except (RPCError, WorkflowQueryFailedError):
            # It ended just now, after the last look (no ledger write is left behind a result).
            done[loan.loan_id] = await _summary(client, loan.loan_id)
            continue
        open_at_horizon[loan.loan_id] = status
    return open_at_horizon


async def _next_start(env: WorkflowEnvironment) -> datetime:
    """Move the clock to the next ``START_HOUR_UTC``:00:00 and return it."""
    now = await env.get_current_time()
    start = now.astimezone(UTC).replace(hour=START_HOUR_UTC, minute=0, second=0, microsecond=0)
    if start <= now:
        start += DAY
    await _sleep(env, start - now)
    return start


async def _sleep(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Let ``duration`` of collection time pass (``env.sleep``, with a timeout of its own).

    The clock moves only as fast as the worker gets through what falls due on the way: a step
    in which a thousand loans start takes minutes of real time, longer than the SDK's default
    RPC timeout.
    """
    request = SleepRequest()
    request.duration.FromTimedelta(max(duration, timedelta(0)))
    await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=SLEEP_TIMEOUT)


def _yesterday(start: datetime, loan: Loan) -> str:
    """The due date that makes the loan one day past due at ``start`` (UTC's date is every
    portfolio zone's at ``START_HOUR_UTC``)."""
    return (start - DAY).date().isoformat()


def _result(
    loan: Loan,
    summary: CollectionSummary | None,
    status: CollectionStatus | None,
    start: datetime,
    seed: int,
) -> LoanResult:
    persona = BorrowerSimulator(seed=seed).persona_for(loan.borrower.borrower_id).name
    if summary is not None:
        cured = summary.final_stage == Stage.CURED
        return LoanResult(
            loan_id=loan.loan_id,
            persona=persona,
            currency=loan.currency,
            overdue_minor=loan.outstanding_minor,
            recovered_minor=summary.recovered_minor,
            final=str(summary.final_stage),
            days_to_cure=(summary.ended_at - start) / DAY if cured else None,
            days_past_due=summary.days_past_due,
            stage=str(summary.resolved_in),
        )
    return LoanResult(
        loan_id=loan.loan_id,
        persona=persona,
        currency=loan.currency,
        overdue_minor=loan.outstanding_minor,
        recovered_minor=status.recovered_minor if status is not None else 0,
        final="open",
        days_to_cure=None,
        days_past_due=status.days_past_due if status is not None else 0,
        stage=str(status.stage) if status is not None else "",
    )


async def _count_contacts(pool: asyncpg.Pool, results: list[LoanResult]) -> None:
    """Each loan's contact attempts and the strategy it was assigned, from the ledger."""
    ids = [r.loan_id for r in results]
    rows = await pool.fetch(
        "SELECT loan_id, count(*) AS contacts,"
        " count(*) FILTER (WHERE channel = 'call' AND target = 'borrower') AS borrower_calls,"
        " count(*) FILTER (WHERE channel = 'call' AND target = 'borrower'"
        "   AND outcome = 'answered') AS right_party"
        " FROM contact_attempts WHERE loan_id = ANY($1) GROUP BY loan_id",
        ids,
    )
    by_loan = {row["loan_id"]: row for row in rows}
    strategies = {
        row["loan_id"]: row["strategy"] or ""
        for row in await pool.fetch(
            "SELECT loan_id, strategy FROM loans WHERE loan_id = ANY($1)", ids
        )
    }
    for result in results:
        result.strategy = strategies.get(result.loan_id, "")
        row = by_loan.get(result.loan_id)
        if row is not None:
            result.contacts = row["contacts"]
            result.borrower_calls = row["borrower_calls"]
            result.right_party = row["right_party"]
