"""Payment latency among many live loans: ``bench/scale.py``'s payment phase.

Payments go one at a time, each to a different live loan chosen at random, alternating the two
ways a payment reaches a running collection:

- **signal**: ``payment_received``, as the simulator, a dialer or ``overdue pay --signal`` sends
  it. The signal returns once Temporal has stored it, before anything is applied, so the bench
  then polls (every ``POLL_SECONDS``) until the ledger's ``payments`` table holds the row and
  the collection's ``status`` query lists the id in ``applied_payment_ids``.
- **update**: ``Outbox.submit``, what ``POST /v1/payments`` runs (without HTTP): the payment is
  stored in the outbox, delivered through the ``apply_payment`` update, which answers only once
  the ledger row is written and the state holds the id, and the outbox row is marked delivered.
  The bench then checks that the ledger row is there (untimed).

Each payment is small (``AMOUNT_MINOR`` against a balance of hundreds of dollars), so no loan is
cured and every loan stays live. With more live loans than the worker's sticky cache, most
payments land on a loan outside it: its workflow task first replays the loan's history.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from temporalio.client import Client

from overdue.outbox import IncomingPayment, Outbox
from workflows.collection import LoanCollection
from workflows.types import PaymentReceived, workflow_id_for

AMOUNT_MINOR = 100  # 1.00 USD: far below any bench loan's balance, so no payment cures one
CURRENCY = "USD"
SOURCE = "bench"
POLL_SECONDS = 0.005  # the signal way's resolution
GIVE_UP_SECONDS = 120.0  # a payment not applied by then counts as lost, not as a latency
WAYS = ("signal", "update")


@dataclass
class Latencies:
    """What one way of paying took, payment by payment, in milliseconds."""

    way: str
    ms: list[float] = field(default_factory=list)
    lost: int = 0  # not applied within GIVE_UP_SECONDS
    not_delivered: int = 0  # update way: the outbox did not mark the payment delivered

    def percentile(self, q: float) -> float | None:
        """The nearest-rank percentile ``q`` (0 to 1); None without payments."""
        if not self.ms:
            return None
        ordered = sorted(self.ms)
        rank = max(1, -(-len(ordered) * q // 1))  # ceil(n q), at least the first
        return ordered[int(rank) - 1]

    @property
    def max(self) -> float | None:
        return max(self.ms) if self.ms else None


def _payment() -> PaymentReceived:
    return PaymentReceived(
        payment_id=f"BENCH-{uuid.uuid4().hex[:12]}",
        amount_minor=AMOUNT_MINOR,
        currency=CURRENCY,
        paid_at=datetime.now(UTC),
        source=SOURCE,
    )


async def _until(check: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    while not await check():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


async def _applied(client: Client, ledger: asyncpg.Pool, loan_id: str, payment_id: str) -> bool:
    """Whether the ledger row and the collection's state both hold the payment, waiting until
    both do (or ``GIVE_UP_SECONDS`` passed)."""
    deadline = time.perf_counter() + GIVE_UP_SECONDS
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))

    async def in_ledger() -> bool:
        row = await ledger.fetchval("SELECT 1 FROM payments WHERE payment_id = $1", payment_id)
        return row is not None

    async def in_state() -> bool:
        return payment_id in (await handle.query(LoanCollection.status)).applied_payment_ids

    # The collection writes the row before it adds the id to its state: wait for the row
    # first, with the cheap query, and query the workflow only then.
    return await _until(in_ledger, deadline) and await _until(in_state, deadline)


async def _by_signal(client: Client, ledger: asyncpg.Pool, loan_id: str) -> float | None:
    payment = _payment()
    handle = client.get_workflow_handle_for(LoanCollection.run, workflow_id_for(loan_id))
    started = time.perf_counter()
    await handle.signal(LoanCollection.payment_received, payment)
    if not await _applied(client, ledger, loan_id, payment.payment_id):
        return None
    return (time.perf_counter() - started) * 1000


async def _by_update(
    client: Client, ledger: asyncpg.Pool, outbox: Outbox, loan_id: str, latencies: Latencies
) -> float | None:
    payment = _payment()
    started = time.perf_counter()
    submitted = await outbox.submit(IncomingPayment(loan_id, payment))
    elapsed = (time.perf_counter() - started) * 1000
    if submitted.entry.status == "delivered":
        row = await ledger.fetchval(
            "SELECT 1 FROM payments WHERE payment_id = $1", payment.payment_id
        )
        if row is None:
            raise SystemExit(f"payment {payment.payment_id} delivered but not in the ledger")
        return elapsed
    # Not answered within the outbox's delivery time-out: the payment is stored and pending.
    # Its latency is then the time until it shows, as the signal way's.
    latencies.not_delivered += 1
    if not await _applied(client, ledger, loan_id, payment.payment_id):
        return None
    return (time.perf_counter() - started) * 1000


async def measure(
    client: Client, ledger: asyncpg.Pool, loan_ids: list[str], count: int, seed: int
) -> list[Latencies]:
    """``count`` payments each way, one at a time, alternating, to distinct random loans
    (while there are enough loans; then some loans are paid more than once)."""
    rng = random.Random(seed)
    total = count * len(WAYS)
    chosen = (
        rng.sample(loan_ids, total) if total <= len(loan_ids) else rng.choices(loan_ids, k=total)
    )

    async def provide() -> Client:
        return client

    outbox = Outbox(ledger, provide)
    results = {way: Latencies(way) for way in WAYS}
    for n, loan_id in enumerate(chosen):
        way = WAYS[n % len(WAYS)]
        latencies = results[way]
        if way == "signal":
            ms = await _by_signal(client, ledger, loan_id)
        else:
            ms = await _by_update(client, ledger, outbox, loan_id, latencies)
        if ms is None:
            latencies.lost += 1
        else:
            latencies.ms.append(ms)
    return list(results.values())
