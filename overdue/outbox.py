"""The payment outbox: a payment is stored before it is delivered, and is delivered until it lands.

A payment reported by a payment service (the HTTP API, a bank file) is first written to
``payment_outbox`` and committed. Only then is it delivered to the loan's collection, through
``overdue.client.record_payment`` (the ``apply_payment`` update, or the ledger once the
collection has ended). When Temporal cannot be reached, or does not answer in time, the payment
stays pending and a relay delivers it later, with backoff.

Several relays may run (one per API replica, ``overdue up``): each claims a due payment with
``FOR UPDATE SKIP LOCKED`` and pushes its next attempt past the delivery's deadline (a lease),
so that no two deliver it at once and no database connection is held while Temporal is called.
Delivery is at least once; applying is exactly once, because the collection and the ledger's
``payments`` table apply a payment id once.

Before a payment is stored it is admitted: a stored payment is a promise to apply it, so the
outbox asks the ledger (``overdue.ledger``) what the delivery would be refused for: the loan
unknown, the currency not the loan's, the payment id recorded with other details. Those are the
ledger's own checks, made here once before anything is stored; the collection and the ledger
still enforce them for the payments that reach them by other paths (a signal, the Python client).

A payment refused for its id (``PaymentConflict``: the id is held with another loan, amount or
currency) and a stored payment refused at delivery are kept in the audit log, as the collection
keeps a payment signal it cannot apply (``payment_rejected``): a payment that money stands behind
is never dropped without a trace, whichever door it came in by (the API, a bank file, ``overdue
pay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import asyncpg
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from overdue import ledger
from overdue.client import collection_currency, record_payment, signal_payment
from overdue.config import Config
from overdue.connection import connect
from overdue.ledger import PaymentConflict, PaymentInvalid, UnknownLoan
from workflows.types import PaymentReceived, PaymentResult

log = logging.getLogger("overdue.outbox")

ClientProvider = Callable[[], Awaitable[Client]]
"""Gives the Temporal client to use, or raises ``TemporalUnavailable``."""

# What a caller waits for Temporal to apply a payment before it is left to the relay.
DELIVERY_TIMEOUT = 10.0
# A claim outlives a delivery's deadline, so that a relay that died mid-delivery is replaced.
LEASE_MARGIN = 30.0
# The audit actions of a payment refused here: its id is another payment's (nothing stored), or
# it was stored and refused at delivery (the collection's own action for a refused signal).
CONFLICT_ACTION = "payment_conflict"
REJECTED_ACTION = "payment_rejected"

_UNREACHABLE_CODES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached now (refused, unavailable or too slow); try again later."""


# The ledger's conflict, under the name the API and the bank-file import have used for it.
PaymentIdConflict = PaymentConflict


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` means Temporal could not be reached, rather than that it refused."""
    if isinstance(
        error,
        TemporalUnavailable | TimeoutError | OSError | WorkflowUpdateRPCTimeoutOrCancelledError,
    ):
        return True
    return isinstance(error, RPCError) and error.status in _UNREACHABLE_CODES


class TemporalClients:
    """One Temporal client for a long-running process, connected on first use.

    A process that starts while Temporal is down still starts: each use tries to connect again
    until it succeeds, and raises ``TemporalUnavailable`` meanwhile.
    """

    def __init__(self, config: Config, *, connect_timeout: float = 5.0) -> None:
        self._config = config
        self._connect_timeout = connect_timeout
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._connect()
        return self._client

    async def _connect(self) -> Client:
        try:
            return await asyncio.wait_for(connect(self._config), self._connect_timeout)
        except (RuntimeError, OSError, TimeoutError, RPCError) as problem:
            raise TemporalUnavailable(
                f"cannot reach Temporal at {self._config.temporal_address}: {problem}"
            ) from None


@dataclass(frozen=True)
class Backoff:
    """How long a pending payment waits after a failed delivery: doubling, capped, jittered."""

    first: float = 1.0
    factor: float = 2.0
    most: float = 60.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        base = min(self.most, self.first * self.factor ** max(0, attempts - 1))
        # Relays that failed together (Temporal went down) come back spread out, not in a herd.
        return base * random.uniform(0.8, 1.0)


@dataclass(frozen=True)
class IncomingPayment:
    """A payment as a payment service reports it, already checked field by field."""

    loan_id: str
    payment: PaymentReceived
    reference: str | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """A payment as the outbox holds it, and what became of it."""

    loan_id: str
    payment: PaymentReceived
    reference: str | None
    status: str  # pending, delivered or rejected
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    result: PaymentResult | None
    received_at: datetime

    @property
    def outcome(self) -> str:
        """``applied`` (delivered), ``queued`` (pending) or ``rejected``."""
        return {"delivered": "applied", "pending": "queued"}.get(self.status, self.status)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OutboxEntry:
        result = json.loads(row["result"]) if row["result"] is not None else None
        return cls(
            loan_id=row["loan_id"],
            payment=PaymentReceived(
                payment_id=row["payment_id"],
                amount_minor=row["amount_minor"],
                currency=row["currency"],
                paid_at=row["paid_at"],
                source=row["source"],
            ),
            reference=row["reference"],
            status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            result=PaymentResult(**result) if result is not None else None,
            received_at=row["received_at"],
        )


@dataclass(frozen=True)
class Submission:
    """What came of submitting a payment."""

    entry: OutboxEntry
    replayed: bool  # the payment id was stored before, with the same details: nothing new
    unreachable: bool  # this attempt to deliver it found Temporal unreachable
    signalled: bool = False  # signalled to the running collection (``submit_by_signal``)


class Outbox:
    """Stores payments, delivers them, and relays those Temporal could not take at once."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clients: ClientProvider,
        *,
        backoff: Backoff | None = None,
        delivery_timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self._pool = pool
        self._clients = clients
        self._backoff = backoff or Backoff()
        self._timeout = delivery_timeout
        self._lease = delivery_timeout + LEASE_MARGIN

    async def submit(self, incoming: IncomingPayment, *, deliver: bool = True) -> Submission:
        """Store a payment (committed), then deliver it unless ``deliver`` is False.

        A payment id stored before with the same loan, amount and currency is a replay: nothing
        is stored again, and a pending one is delivered if no one else is delivering it.

        Raises:
            UnknownLoan: neither the ledger nor Temporal knows the loan.
            PaymentInvalid: the payment does not fit the loan (the message names the field).
            PaymentConflict: the payment id was stored or applied with other details.
            TemporalUnavailable: the loan is not in the ledger yet and Temporal, which could
                confirm it, is unreachable; nothing was stored.
        """
        payment = incoming.payment
        problem = ledger.payment_problem(payment, await self.loan_currency(incoming.loan_id))
        if problem is not None:
            raise PaymentInvalid(problem)
        try:
            row, replayed = await self._store(incoming, deliver=deliver)
        except PaymentConflict as conflict:
            await self._audit_conflict(incoming, conflict)
            raise
        entry = OutboxEntry.from_row(row)
        if not deliver or entry.status != "pending":
            return Submission(entry, replayed, unreachable=False)
        if replayed:
            claimed = await self._claim(payment.payment_id)
            if claimed is None:  # another delivery holds it, or it waits out its backoff
                return Submission(entry, replayed, unreachable=False)
            entry = claimed
        entry, failed_to_reach = await self._deliver(entry)
        return Submission(entry, replayed, failed_to_reach)

    async def submit_by_signal(self, incoming: IncomingPayment) -> Submission:
        """Store a payment (committed), then signal it rather than wait for the update's answer.

        For a source that cannot wait for a worker (``overdue pay --signal``): the signal needs
        only Temporal. The payment stays pending, and the relay's delivery (the update, which
        the collection answers as a duplicate) records the balance after it. When no collection
        runs (it has ended), a signal cannot land and the payment is delivered at once, which
        records it in the ledger. A payment stored before is not signalled again.

        Raises:
            As ``submit``.
        """
        submitted = await self.submit(incoming, deliver=False)
        entry = submitted.entry
        if entry.status != "pending":
            return submitted
        try:
            client = await self._clients()
            running = await asyncio.wait_for(
                signal_payment(client, incoming.loan_id, incoming.payment), self._timeout
            )
        except Exception as problem:
            if not unreachable(problem):
                raise
            log.warning("payment %s queued: %s", incoming.payment.payment_id, problem)
            return replace(submitted, unreachable=True)
        if running:
            return replace(submitted, signalled=True)
        claimed = await self._claim(incoming.payment.payment_id)
        if claimed is None:  # a relay is delivering it now
            return submitted
        entry, failed_to_reach = await self._deliver(claimed)
        return Submission(entry, submitted.replayed, failed_to_reach)

    async def _store(
        self, incoming: IncomingPayment, *, deliver: bool
    ) -> tuple[asyncpg.Record, bool]:
        """Insert a payment (or find it stored); returns its row and whether it was there."""
        payment = incoming.payment
        async with self._pool.acquire() as conn, conn.transaction():
            # A payment applied by another path (a signal, `overdue pay`) holds its id too: a
            # payment stored here under that id with other details could never be applied.
            await ledger.check_payment_id(conn, incoming.loan_id, payment)
            # Inserted already claimed for the delivery that follows, so no relay takes it.
            row = await conn.fetchrow(
                "INSERT INTO payment_outbox (payment_id, loan_id, amount_minor, currency,"
                " paid_at, source, reference, attempts, next_attempt_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9 * interval '1 second')"
                " ON CONFLICT (payment_id) DO NOTHING RETURNING *",
                payment.payment_id,
                incoming.loan_id,
                payment.amount_minor,
                payment.currency,
                payment.paid_at,
                payment.source,
                incoming.reference,
                1 if deliver else 0,
                self._lease if deliver else 0.0,
            )
            replayed = row is None
            if row is None:
                # Inserted by someone else, and never deleted: it is there.
                row = await conn.fetchrow(
                    "SELECT * FROM payment_outbox WHERE payment_id = $1", payment.payment_id
                )
                assert row is not None
                if not ledger.same_payment(row, incoming.loan_id, payment):
                    raise PaymentConflict(payment.payment_id)
        return row, replayed

    async def _audit_conflict(self, incoming: IncomingPayment, conflict: PaymentConflict) -> None:
        """Keep a payment refused for its id in the audit log: the money it reports is real,
        and someone must reconcile it. The same refusal repeated is one entry."""
        payment = incoming.payment
        async with self._pool.acquire() as conn:
            await ledger.append_audit(
                conn,
                event_key=f"{incoming.loan_id}:{CONFLICT_ACTION}:{payment.payment_id}"
                f":{payment.amount_minor}:{payment.currency}",
                loan_id=incoming.loan_id,
                at=datetime.now(UTC),
                action=CONFLICT_ACTION,
                actor=f"payment:{payment.source}",
                details={
                    "payment_id": payment.payment_id,
                    "amount_minor": payment.amount_minor,
                    "currency": payment.currency,
                    "paid_at": payment.paid_at,
                    "reference": incoming.reference,
                    "reason": str(conflict),
                },
            )

    async def get(self, payment_id: str) -> OutboxEntry | None:
        """The stored payment with this id, if any."""
        row = await self._pool.fetchrow(
            "SELECT * FROM payment_outbox WHERE payment_id = $1", payment_id
        )
        return OutboxEntry.from_row(row) if row is not None else None

    async def pending_for(self, loan_id: str) -> list[OutboxEntry]:
        """The loan's payments not yet delivered, oldest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM payment_outbox WHERE loan_id = $1 AND status = 'pending'"
            " ORDER BY received_at",
            loan_id,
        )
        return [OutboxEntry.from_row(row) for row in rows]

    async def deliver_due(self, limit: int = 100, *, concurrency: int = 8) -> int:
        """Deliver up to ``limit`` pending payments whose time has come, ``concurrency`` at a time.

        Each delivery claims its own payment, so relays on several replicas share the work.
        Stops claiming once one finds Temporal unreachable: the others would fail alike.
        Returns how many were settled (delivered or rejected).
        """
        budget, settled, reachable = limit, 0, True

        async def deliver_in_turn() -> None:
            nonlocal budget, settled, reachable
            while budget > 0 and reachable:
                budget -= 1
                entry = await self._claim()
                if entry is None:
                    return
                entry, failed_to_reach = await self._deliver(entry)
                settled += entry.status != "pending"
                reachable = reachable and not failed_to_reach

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(deliver_in_turn())
        return settled

    async def relay(self, stop: asyncio.Event, *, idle: float = 1.0) -> None:
        """Deliver due payments until ``stop`` is set, looking again every ``idle`` seconds."""
        while not stop.is_set():
            try:
                busy = await self.deliver_due() > 0
            except Exception:
                # The relay outlives a database restart or a bug in one pass; the payments wait.
                log.exception("outbox relay: a pass failed; trying again")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)

    async def loan_currency(self, loan_id: str) -> str:
        """The loan's currency: from the ledger, or from its collection when the ledger does
        not hold it yet.

        Raises:
            UnknownLoan: neither knows the loan.
            TemporalUnavailable: the ledger does not hold it and Temporal is unreachable.
        """
        currency = await ledger.loan_currency(self._pool, loan_id)
        if currency is not None:
            return currency
        # Not in the ledger: unknown, or its collection started moments ago and has not
        # opened it yet. Only the collection itself can tell.
        try:
            return await collection_currency(await self._clients(), loan_id)
        except Exception as problem:
            if not unreachable(problem):
                raise
            raise TemporalUnavailable(
                f"loan_id: {loan_id} is not in the ledger, and Temporal, which could confirm"
                " it, is unreachable; try again later"
            ) from None

    async def _claim(self, payment_id: str | None = None) -> OutboxEntry | None:
        """Claim a due pending payment (this one, or the longest due) for one delivery."""
        if payment_id is None:
            row = await self._pool.fetchrow(
                "UPDATE payment_outbox SET attempts = attempts + 1,"
                " next_attempt_at = now() + $1 * interval '1 second'"
                " WHERE payment_id = (SELECT payment_id FROM payment_outbox"
                "  WHERE status = 'pending' AND next_attempt_at <= now()"
                "  ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING *",
                self._lease,
            )
        else:
            row = await self._pool.fetchrow(
                "UPDATE payment_outbox SET attempts = attempts + 1,"
                " next_attempt_at = now() + $2 * interval '1 second'"
                " WHERE payment_id = $1 AND status = 'pending' AND next_attempt_at <= now()"
                " RETURNING *",
                payment_id,
                self._lease,
            )
        return OutboxEntry.from_row(row) if row is not None else None

    async def _deliver(self, entry: OutboxEntry) -> tuple[OutboxEntry, bool]:
        """One delivery of a claimed payment; returns it as it now stands, and whether
        Temporal was unreachable."""
        payment = entry.payment
        try:
            client = await self._clients()
            result = await asyncio.wait_for(
                record_payment(client, self._pool, entry.loan_id, payment), self._timeout
            )
        except (UnknownLoan, PaymentInvalid) as refused:
            return await self._settle(entry, "rejected", error=str(refused.args[0])), False
        except Exception as problem:
            # Whatever went wrong, the payment is stored: it waits and is tried again.
            failed_to_reach = unreachable(problem)
            if failed_to_reach:
                log.warning("payment %s queued: %s", payment.payment_id, problem)
            else:
                log.exception("payment %s: delivery failed; will retry", payment.payment_id)
            row = await self._pool.fetchrow(
                "UPDATE payment_outbox SET last_error = $2,"
                " next_attempt_at = now() + $3 * interval '1 second'"
                " WHERE payment_id = $1 AND status = 'pending' RETURNING *",
                payment.payment_id,
                f"{type(problem).__name__}: {problem}"[:500],
                self._backoff.delay(entry.attempts),
            )
            return (OutboxEntry.from_row(row) if row is not None else entry), failed_to_reach
        if result.rejection is not None:
            return await self._settle(entry, "rejected", error=result.rejection), False
        return await self._settle(entry, "delivered", result=result), False

    async def _settle(
        self,
        entry: OutboxEntry,
        status: str,
        *,
        result: PaymentResult | None = None,
        error: str | None = None,
    ) -> OutboxEntry:
        # The first delivery to finish is the one recorded; a late twin changes nothing.
        result_json = json.dumps(asdict(result)) if result is not None else None
        payment = entry.payment
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE payment_outbox SET status = $2, result = $3, last_error = $4,"
                " finished_at = now() WHERE payment_id = $1 AND status = 'pending' RETURNING *",
                payment.payment_id,
                status,
                result_json,
                error,
            )
            if row is not None and status == "rejected":
                # Keyed as the collection keys a refused signal: one entry, whoever refused.
                await ledger.append_audit(
                    conn,
                    event_key=f"{entry.loan_id}:{REJECTED_ACTION}:{payment.payment_id}",
                    loan_id=entry.loan_id,
                    at=payment.paid_at,
                    action=REJECTED_ACTION,
                    actor=f"payment:{payment.source}",
                    details={
                        "payment_id": payment.payment_id,
                        "amount_minor": payment.amount_minor,
                        "currency": payment.currency,
                        "reason": error,
                    },
                )
        if row is None:
            settled = await self.get(entry.payment.payment_id)
            assert settled is not None  # settled by the other delivery, and never deleted
            return settled
        return OutboxEntry.from_row(row)
