"""The worker: wires the activities to their dependencies, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.budget import BudgetActivities
from activities.cases import CaseActivities
from activities.channels import ChannelActivities, ChannelProvider
from activities.credit_bureau import CreditBureau
from activities.errors import PermanentErrors
from activities.ledger import LedgerActivities
from activities.notices import NoticeActivities
from activities.scan import ScanActivities
from activities.situations import SituationActivities
from activities.slots import SlotActivities
from activities.strategy import StrategyActivities
from activities.verification import DeathRegistry, VerificationActivities
from overdue import db
from overdue.config import Config
from overdue.connection import connect
from overdue.institutions import SimulatedDeathRegistry
from overdue.simulator import (
    BorrowerSimulator,
    LedgerMemory,
    SimulatedCreditBureau,
    SimulatedProvider,
)
from overdue.tuning import WorkerTuning
from workflows.collection import LoanCollection
from workflows.sandbox import workflow_runner
from workflows.scan import DelinquencyScan
from workflows.types import TASK_QUEUE, ContactOutcome, PaymentReceived, workflow_id_for

# On stop (Ctrl-C, SIGTERM from a container runtime) activities in hand get this long to finish
# before they are cancelled and retried elsewhere; under docker-compose's 30 s stop grace.
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def package_folder(name: str) -> Path:
    return Path(str(resources.files("overdue") / name))


def simulated_provider(
    client: Client, seed: int, pool: asyncpg.Pool | None = None
) -> SimulatedProvider:
    """The default provider: simulated borrowers whose payments and outcomes arrive as real
    signals (``payment_received``, ``contact_outcome``), as any other source's would.

    With ``pool`` the borrowers remember their earlier conversations from the ledger, so a worker
    restart does not make them forget.
    """

    async def signal_payment(loan_id: str, payment: PaymentReceived) -> None:
        handle = client.get_workflow_handle(workflow_id_for(loan_id))
        await handle.signal(LoanCollection.payment_received, payment)

    async def signal_outcome(loan_id: str, outcome: ContactOutcome) -> None:
        # By name, as every outcome source sends it: the signal is the workflow's contract.
        await client.get_workflow_handle(workflow_id_for(loan_id)).signal(
            "contact_outcome", outcome
        )

    return SimulatedProvider(
        BorrowerSimulator(seed=seed),
        payment_sink=signal_payment,
        outcome_sink=signal_outcome,
        memory=LedgerMemory(pool) if pool is not None else None,
    )


def activities_for(
    pool: asyncpg.Pool,
    provider: ChannelProvider,
    notices_dir: Path,
    bureau: CreditBureau,
    registry: DeathRegistry,
    strategies: Path | None = None,
) -> Sequence[Any]:
    """Every activity the worker runs; ``strategies`` is the folder of strategy files and their
    assignment (the packaged one by default)."""
    ledger = LedgerActivities(pool)
    channels = ChannelActivities(pool, provider)
    notices = NoticeActivities(pool, package_folder("templates"), notices_dir)
    packaged = package_folder("strategies")
    strategy = StrategyActivities(*([strategies, packaged] if strategies else [packaged]))
    situations = SituationActivities(pool, bureau)
    verification = VerificationActivities(pool, registry)
    budget = BudgetActivities(pool)
    return [
        budget.reserve_contact,
        budget.open_siblings,
        SlotActivities(pool).load_slot_priors,
        strategy.load_strategy,
        ledger.open_loan,
        ledger.record_payment,
        ledger.record_rejected_payment,
        ledger.record_loan_change,
        ledger.record_stage_change,
        channels.place_call,
        channels.send_sms,
        notices.serve_notice,
        situations.record_contact_outcome,
        situations.open_complaint_case,
        situations.record_promise,
        situations.settle_promise,
        situations.report_broken_promise,
        situations.record_situation_event,
        verification.verify_death,
        CaseActivities(pool).record_case_change,
    ]


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    config: Config,
    tuning: WorkerTuning | None = None,
    **options: Any,
) -> Worker:
    """The production worker; ``tuning`` (default: ``WorkerTuning()``) sizes its sticky cache
    and workflow task slots, and ``options`` (other ``Worker`` arguments) override it."""
    provider = simulated_provider(client, config.simulation_seed, pool)
    scan = ScanActivities(pool, client)
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[LoanCollection, DelinquencyScan],
        activities=[
            *activities_for(
                pool,
                provider,
                config.notices_dir,
                SimulatedCreditBureau(),
                SimulatedDeathRegistry(),
                config.strategies_dir,
            ),
            # The delinquency scan starts collections: it needs a client, not the provider.
            scan.scan_page,
            scan.escalate_ended_cases,
        ],
        workflow_runner=workflow_runner(),
        interceptors=[PermanentErrors()],
        **{**(tuning or WorkerTuning()).worker_options(), **options},
    )


async def run_worker(
    config: Config, stop: asyncio.Event | None = None, *, runtime: Runtime | None = None
) -> None:
    """Run a worker against the configured services until ``stop`` is set (or forever).

    A worker connected with ``runtime`` reports its metrics, and the activities', through it.
    Its sticky cache and workflow task slots come from the environment (``overdue.tuning``).

    Raises:
        TuningError: A tuning variable holds a bad value; the message names it.
    """
    if not config.database_url:
        raise SystemExit("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    tuning = WorkerTuning.from_env()  # before connecting: a bad value stops nothing half-started
    client = await connect(config, runtime=runtime)
    pool = await db.create_pool(config.database_url, min_size=1, max_size=10)
    try:
        async with build_worker(
            client, pool, config, tuning, graceful_shutdown_timeout=GRACEFUL_SHUTDOWN
        ):
            await (stop or asyncio.Event()).wait()
    finally:
        await pool.close()
