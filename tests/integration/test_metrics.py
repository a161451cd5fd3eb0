"""Metrics on the real dev server and PostgreSQL: the SDK's and the product's, on one endpoint.

Loans collected by the production worker must show on its Prometheus endpoint exactly as the
ledger holds them; an activity run twice must count once; and `overdue up` must say where the
endpoint is.

The collections run in a namespace of their own: the SDK labels every activity's metrics with
its namespace, so what other modules left running on the shared dev server cannot blur the sums.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities import metrics as product
from activities.channels import ChannelActivities, Delivery
from activities.ledger import LedgerActivities
from activities.situations import SituationActivities
from overdue.client import start_collection
from overdue.config import Config
from overdue.connection import connect
from overdue.metrics import (
    ADDRESS_VARIABLE,
    DEFAULT_PORT,
    MetricsUnavailable,
    prometheus_runtime,
    worker_runtime,
)
from overdue.simulator import SimulatedCreditBureau
from overdue.stack import EmbeddedStack, free_port, register_search_attributes
from overdue.worker import build_worker
from tests.integration.support import DEADLINE, OVERDUE, eventually, past_due_loan, running_up
from workflows.collection import LoanCollection
from workflows.commands import (
    BrokenPromise,
    ContactRequest,
    OpenLoan,
    PaymentEntry,
    StageChange,
)
from workflows.types import PaymentReceived, workflow_id_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

RUN = uuid.uuid4().hex[:8]
# A collection day lasts a real second: a loan is collected within a minute. On a compressed
# clock each contact takes place at its planned moment however late its timer fires
# (``compressed-clock-on-plan``), so the dev server's latency on a busy machine does not push
# the contacts out of their windows.
DAY_SECONDS = 1.0
# partial_payer pays half, half again, then the rest at three conversations: cured.
# promise_breaker promises and never pays: broken promises, escalations, referred.
# The payer never answers and is paid off by the test (a persona that pays at its conversations
# may miss them when timers run late on a busy machine); the promise breaker is referred.
PERSONAS = ("never_answers", "promise_breaker")
PAYMENTS = 3  # the payer's loan is cleared in three equal payments
OUTSTANDING_MINOR = 60_000  # what each loan owes: 600.00 USD
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$"
)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# --- reading an endpoint --------------------------------------------------------------------


@dataclasses.dataclass
class Scrape:
    """One scrape of a Prometheus endpoint: every sample, with its labels."""

    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    async def of(cls, url: str) -> Scrape:
        async with httpx.AsyncClient() as http:
            response = await http.get(url, timeout=10)
        response.raise_for_status()
        assert response.headers["content-type"].startswith("text/plain")
        samples = []
        for line in response.text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = SAMPLE.match(line)
            assert match, f"not a Prometheus sample: {line!r}"
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
        return cls(samples)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def select(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [
            (found, value)
            for sample, found, value in self.samples
            if sample == name and labels.items() <= found.items()
        ]

    def total(self, name: str, **labels: str) -> float:
        return sum(value for _, value in self.select(name, **labels))

    def by(self, name: str, *keys: str, **labels: str) -> dict[tuple[str, ...], float]:
        """The samples of ``name`` summed by the values of ``keys``; zeros left out."""
        sums: Counter[tuple[str, ...]] = Counter()
        for found, value in self.select(name, **labels):
            sums[tuple(found[k] for k in keys)] += value
        return {key: value for key, value in sums.items() if value}


@contextmanager
def held_port() -> Iterator[int]:
    """A port another process could be listening on: held by a listening socket meanwhile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# --- the worker with a Prometheus endpoint ---------------------------------------------------


@dataclasses.dataclass
class Metered:
    client: Client
    namespace: str
    url: str

    async def scrape(self) -> Scrape:
        return await Scrape.of(self.url)


async def _register_namespace(client: Client, namespace: str) -> None:
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400)
        )
    )
    # A new namespace reaches every service of the dev server within seconds.
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while asyncio.get_running_loop().time() < deadline:
        try:
            await register_search_attributes(client, namespace)
            return
        except RPCError as error:
            if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.UNAVAILABLE):
                raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"namespace {namespace} never became usable")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def metered(
    stack: EmbeddedStack, pool: asyncpg.Pool, config: Config
) -> AsyncIterator[Metered]:
    """The production worker, connected as `overdue up` connects it: with a Prometheus runtime."""
    namespace = f"metrics-{RUN}"
    await _register_namespace(await Client.connect(stack.temporal_address), namespace)
    port = free_port()
    runtime, url = worker_runtime({ADDRESS_VARIABLE: f"127.0.0.1:{port}"})
    assert runtime is not None and url == f"http://127.0.0.1:{port}/metrics"
    config = dataclasses.replace(config, namespace=namespace)
    client = await connect(config, runtime=runtime)
    async with build_worker(client, pool, config):
        yield Metered(client, namespace, url)


async def _pay_off(client: Client, pool: asyncpg.Pool, loan_id: str) -> None:
    """Once the loan has been called, clear it in equal payments, as a payment service would."""
    for _ in range(600):
        if await pool.fetchval("SELECT count(*) FROM contact_attempts WHERE loan_id = $1", loan_id):
            break
        await asyncio.sleep(0.1)
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    for n in range(PAYMENTS):
        payment = PaymentReceived(
            f"{loan_id}-pay-{n}", OUTSTANDING_MINOR // PAYMENTS, "USD", datetime.now(UTC), "test"
        )
        try:
            await handle.signal(LoanCollection.payment_received, payment)
        except RPCError as ended:
            # The borrower's own payments (the simulator's) cured it first: nothing left to pay.
            assert ended.status == RPCStatusCode.NOT_FOUND, ended
            return


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def collected(metered: Metered, pool: asyncpg.Pool) -> list[str]:
    """Collect one loan per persona to its end (the payer's paid off); returns the loan ids."""
    loans = [
        past_due_loan(f"met-{RUN}-{persona}", persona=persona, outstanding_minor=OUTSTANDING_MINOR)
        for persona in PERSONAS
    ]
    for loan in loans:
        assert await start_collection(metered.client, loan, day_seconds=DAY_SECONDS) == "started"
    await _pay_off(metered.client, pool, loans[0].loan_id)
    handles = [
        metered.client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(x.loan_id))
        for x in loans
    ]
    summaries = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 200)
    assert [s.final_stage for s in summaries] == ["cured", "referred"]
    return [loan.loan_id for loan in loans]


# --- the loans on the endpoint ---------------------------------------------------------------


async def _ledger_counts(
    pool: asyncpg.Pool, query: str, *args: Any
) -> dict[tuple[str, ...], float]:
    """A grouped count from the ledger, keyed as ``Scrape.by`` keys its sums: the count last."""
    return {tuple(row[:-1]): float(row[-1]) for row in await pool.fetch(query, *args)}


async def test_sdk_metrics_are_served(metered: Metered, collected: list[str]) -> None:
    scrape = await metered.scrape()
    ns = {"namespace": metered.namespace}
    # The SDK's own: the worker polled, and ran these workflows, their activities (the outside
    # calls that may be slow, and stage changes) and their local activities (short ledger
    # writes, outreach).
    assert scrape.total("temporal_workflow_completed", **ns) == len(collected)
    assert scrape.by("temporal_activity_execution_latency_count", "activity_type", **ns).keys() >= {
        ("report_broken_promise",),
        ("record_stage_change",),
    }
    local = "temporal_local_activity_execution_latency_count"
    assert scrape.by(local, "activity_type", **ns).keys() >= {
        ("place_call",),
        ("record_payment",),
    }
    assert any(name.startswith("temporal_worker_task_slots") for name in scrape.names())


async def test_stage_transitions_match_the_ledger(
    metered: Metered, collected: list[str], pool: asyncpg.Pool
) -> None:
    expected = await _ledger_counts(
        pool,
        "SELECT details->>'from', details->>'to', count(*) FROM audit_log"
        " WHERE action = 'stage_changed' AND loan_id = ANY($1::text[]) GROUP BY 1, 2",
        collected,
    )
    assert ("early", "middle") in expected and ("legal", "referred") in expected
    scrape = await metered.scrape()
    counted = scrape.by(
        product.STAGE_TRANSITIONS,
        "from_stage",
        "to_stage",
        namespace=metered.namespace,
        activity_type="record_stage_change",
    )
    assert counted == expected


async def test_attempts_by_channel_and_outcome_match_the_ledger(
    metered: Metered, collected: list[str], pool: asyncpg.Pool
) -> None:
    expected = await _ledger_counts(
        pool,
        "SELECT channel, outcome, count(*) FROM contact_attempts"
        " WHERE loan_id = ANY($1::text[]) GROUP BY 1, 2",
        collected,
    )
    assert ("call", "answered") in expected and sum(expected.values()) >= 3
    scrape = await metered.scrape()
    counted = scrape.by(product.CONTACT_ATTEMPTS, "channel", "outcome", namespace=metered.namespace)
    assert counted == expected


async def test_payments_and_amount_recovered_match_the_ledger(
    metered: Metered, collected: list[str], pool: asyncpg.Pool
) -> None:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, sum(outstanding_before - outstanding_after) AS recovered"
        " FROM payments WHERE loan_id = ANY($1::text[]) AND currency = 'USD'",
        collected,
    )
    assert row is not None
    # The payer's three payments cleared its 600.00; promise_breaker never paid.
    assert (row["n"], row["recovered"]) == (PAYMENTS, OUTSTANDING_MINOR)
    scrape = await metered.scrape()
    ns = {"namespace": metered.namespace, "currency": "USD"}
    assert scrape.total(product.PAYMENTS, **ns) == PAYMENTS
    assert scrape.total(product.RECOVERED, **ns) == OUTSTANDING_MINOR


async def test_broken_promises_match_the_ledger(
    metered: Metered, collected: list[str], pool: asyncpg.Pool
) -> None:
    reported = await pool.fetchval(
        "SELECT count(*) FROM credit_records WHERE kind = 'broken_promise'"
        " AND loan_id = ANY($1::text[])",
        collected,
    )
    assert reported >= 2  # the second broken promise is what refers promise_breaker's loan
    scrape = await metered.scrape()
    counted = scrape.total(product.BROKEN_PROMISES, namespace=metered.namespace, currency="USD")
    assert counted == reported


async def test_time_to_cure_is_observed_once_per_cured_loan(
    metered: Metered, collected: list[str], pool: asyncpg.Pool
) -> None:
    cured = await pool.fetchrow(
        "SELECT l.opened_at, l.closed_at, (a.details->>'days_past_due')::int AS dpd"
        " FROM loans l JOIN audit_log a USING (loan_id)"
        " WHERE l.loan_id = ANY($1::text[]) AND l.stage = 'cured'"
        " AND a.action = 'stage_changed' AND a.details->>'to' = 'cured'",
        collected,
    )
    assert cured is not None
    scrape = await metered.scrape()
    ns = {"namespace": metered.namespace}
    assert scrape.total(f"{product.CURE_DAYS_PAST_DUE}_count", **ns) == 1
    assert scrape.total(f"{product.CURE_DAYS_PAST_DUE}_sum", **ns) == cured["dpd"]
    collecting = (cured["closed_at"] - cured["opened_at"]) / timedelta(days=1)
    assert collecting > 0
    assert scrape.total(f"{product.TIME_TO_CURE}_count", **ns) == 1
    assert scrape.total(f"{product.TIME_TO_CURE}_sum", **ns) == pytest.approx(collecting)
    # Buckets in days, not the SDK's default milliseconds.
    buckets = {found["le"] for found, _ in scrape.select(f"{product.TIME_TO_CURE}_bucket", **ns)}
    assert {"1", "7", "30", "90", "365", "+Inf"} <= buckets


# --- a retried activity counts once ----------------------------------------------------------


class AnsweringProvider:
    """A channel provider whose every call and message is answered or delivered."""

    async def call(self, delivery: Delivery) -> str:
        return "answered"

    async def send_sms(self, delivery: Delivery) -> str:
        return "delivered"


async def test_a_retried_activity_counts_once(pool: asyncpg.Pool) -> None:
    """Each activity runs twice with the same input, as Temporal retries it: one count each."""
    port = free_port()
    runtime = prometheus_runtime(f"127.0.0.1:{port}")  # held: the endpoint lives as long as it
    env = ActivityEnvironment()
    env.metric_meter = runtime.metric_meter
    url = f"http://127.0.0.1:{port}/metrics"
    loan_id = f"met-retry-{RUN}"
    at = datetime.now(UTC)
    loan = past_due_loan(loan_id, persona="prompt_payer", outstanding_minor=OUTSTANDING_MINOR)
    ledger = LedgerActivities(pool)
    await env.run(ledger.open_loan, OpenLoan(loan=loan, opened_at=at - timedelta(days=3)))

    call = ContactRequest(
        idempotency_key=f"{loan_id}:attempt:0",
        loan_id=loan_id,
        borrower_id=loan.borrower.borrower_id,
        attempt_no=0,
        channel="call",
        target="borrower",
        target_id=loan.borrower.borrower_id,
        slot="afternoon",
        purpose="reminder",
        template="reminder",
        stage="early",
        at=at,
        at_local="13:00",
        timezone="America/New_York",
        message="",
        outstanding_minor=loan.outstanding_minor,
        currency="USD",
    )
    payment = PaymentEntry(
        loan_id=loan_id,
        payment=PaymentReceived(f"{loan_id}-pay", loan.outstanding_minor, "USD", at, "test"),
        outstanding_before=loan.outstanding_minor,
        outstanding_after=0,
        overpaid_minor=0,
        stage="early",
    )
    broken = BrokenPromise(f"{loan_id}-promise", loan_id, loan.borrower.borrower_id, 10_000, 0,
                           "USD", 1_500, 1, at)  # fmt: skip
    cure = StageChange(loan_id, 1, "early", "cured", 4, 0, at)
    channels = ChannelActivities(pool, AnsweringProvider())
    situations = SituationActivities(pool, SimulatedCreditBureau())
    for _ in range(2):
        await env.run(channels.place_call, call)
        await env.run(ledger.record_payment, payment)
        await env.run(situations.report_broken_promise, broken)
        await env.run(ledger.record_stage_change, cure)

    scrape = await Scrape.of(url)
    assert scrape.by(product.CONTACT_ATTEMPTS, "channel", "outcome") == {("call", "answered"): 1}
    assert scrape.total(product.PAYMENTS, currency="USD") == 1
    assert scrape.total(product.RECOVERED, currency="USD") == loan.outstanding_minor
    assert scrape.total(product.BROKEN_PROMISES, currency="USD") == 1
    assert scrape.by(product.STAGE_TRANSITIONS, "from_stage", "to_stage") == {("early", "cured"): 1}
    assert scrape.total(f"{product.CURE_DAYS_PAST_DUE}_sum") == 4
    assert scrape.total(f"{product.TIME_TO_CURE}_count") == 1
    assert scrape.total(f"{product.TIME_TO_CURE}_sum") == pytest.approx(3)


# --- where the endpoint is --------------------------------------------------------------------


def test_a_taken_default_port_moves_the_endpoint_a_configured_one_does_not() -> None:
    with held_port() as taken, pytest.raises(MetricsUnavailable, match=ADDRESS_VARIABLE):
        worker_runtime({ADDRESS_VARIABLE: f"127.0.0.1:{taken}"})
    assert worker_runtime({ADDRESS_VARIABLE: "off"}) == (None, None)
    # Unset, the default port is used when free and another is found when not (a second
    # worker on the same machine): either way the URL printed is one that answers.
    with socket.socket() as default:
        try:
            default.bind(("127.0.0.1", DEFAULT_PORT))
            default.listen()
        except OSError:
            pass  # already taken, by another worker on this machine
        runtime, url = worker_runtime({})  # held: the endpoint lives as long as its runtime
    assert runtime is not None and url is not None and f":{DEFAULT_PORT}/" not in url
    assert httpx.get(url, timeout=10).status_code == 200


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL", "OVERDUE_HOME", ADDRESS_VARIABLE)
    }
    env.update(extra)
    return env


async def test_up_prints_the_metrics_url_and_it_answers(tmp_path: Path) -> None:
    port = free_port()
    env = _env(OVERDUE_HOME=str(tmp_path / "home"), OVERDUE_METRICS_ADDRESS=f"127.0.0.1:{port}")
    async with running_up(env, stop_timeout=30) as lines:
        url = f"http://127.0.0.1:{port}/metrics"
        assert f"Metrics          {url}" in lines

        # The worker's pollers report as soon as they start.
        async def pollers() -> Scrape | None:
            scrape = await Scrape.of(url)
            return scrape if scrape.select("temporal_num_pollers", namespace="default") else None

        await eventually(pollers, what="the worker's pollers on the endpoint")


@pytest.mark.parametrize("command", ["up", "worker"])
async def test_a_taken_metrics_address_is_one_line_and_nothing_starts(
    command: str, tmp_path: Path, stack: EmbeddedStack
) -> None:
    with held_port() as taken:
        process = await asyncio.create_subprocess_exec(
            OVERDUE,
            command,
            env=_env(
                OVERDUE_HOME=str(tmp_path / "home"),
                OVERDUE_METRICS_ADDRESS=f"127.0.0.1:{taken}",
                TEMPORAL_ADDRESS=stack.temporal_address,
                DATABASE_URL=stack.database_url,
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            stdout, stderr = await process.communicate()
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2, (stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {ADDRESS_VARIABLE}:"), lines
    assert f"127.0.0.1:{taken}" in lines[0]
    assert not (tmp_path / "home").exists(), "nothing starts when the metrics address is taken"
