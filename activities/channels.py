"""Channel activities: calls and messages, through a provider interface.

The provider is what really dials or sends (a dialer, an SMS gateway, or the simulator). The
activity around it makes each attempt happen once: an attempt already in the ledger under its
idempotency key returns its recorded outcome without reaching the provider again.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Protocol

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.budget import hold, lock_budget
from overdue.ledger import append_audit
from workflows.budget import number_key
from workflows.commands import (
    ContactRequest,
    ContactReservation,
    ContactResult,
    ReservationResult,
)
from workflows.vocabulary import Outcome, Target


@dataclass(frozen=True)
class Delivery:
    """What a provider needs to reach someone.

    The activity reads the phone number from the ledger, so it never travels in an activity's
    arguments or results.
    """

    request: ContactRequest
    phone: str
    text: str


class ChannelProvider(Protocol):
    """Reaches people. Implementations must pass ``request.idempotency_key`` on to their vendor."""

    async def call(self, delivery: Delivery) -> Outcome:
        """Place a call and return its outcome."""
        ...

    async def send_sms(self, delivery: Delivery) -> Outcome:
        """Send a text message and return its outcome."""
        ...


class ChannelActivities:
    """Call and SMS activities. Holds the pool and the provider."""

    def __init__(self, pool: asyncpg.Pool, provider: ChannelProvider) -> None:
        self._pool = pool
        self._provider = provider

    @activity.defn(name="place_call")
    async def place_call(self, request: ContactRequest) -> ContactResult:
        return await self._attempt(request, self._provider.call)

    @activity.defn(name="send_sms")
    async def send_sms(self, request: ContactRequest) -> ContactResult:
        return await self._attempt(request, self._provider.send_sms)

    async def _attempt(self, request: ContactRequest, reach: ProviderCall) -> ContactResult:
        recorded = await self._pool.fetchval(
            "SELECT outcome FROM contact_attempts WHERE idempotency_key = $1",
            request.idempotency_key,
        )
        if recorded is not None:
            return ContactResult(request.idempotency_key, Outcome(recorded))
        if request.reservation is not None:
            refused = await self._confirm(request.reservation)
            if refused is not None:
                return ContactResult(request.idempotency_key, Outcome.DEFERRED, deferred=refused)
        phone, first_name = await self._recipient(request)
        text = Template(request.message).safe_substitute(
            first_name=first_name, loan_id=request.loan_id
        )
        outcome = await reach(Delivery(request=request, phone=phone, text=text))
        async with self._pool.acquire() as conn, conn.transaction():
            reservation_key = request.reservation.reservation_key if request.reservation else None
            stored = await conn.fetchval(
                "INSERT INTO contact_attempts (idempotency_key, loan_id, attempt_no, channel, target,"
                " target_id, slot, purpose, stage, at_utc, at_local, outcome, message,"
                " borrower_id, number_key, reservation_key)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
                " ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key"
                " RETURNING outcome",
                request.idempotency_key,
                request.loan_id,
                request.attempt_no,
                request.channel,
                request.target,
                request.target_id,
                request.slot,
                request.purpose,
                request.stage,
                request.at,
                request.at_local,
                outcome,
                text if request.channel == "sms" else None,
                request.borrower_id,
                number_key(phone),
                reservation_key,
            )
            if reservation_key is not None:
                await conn.execute(
                    "UPDATE contact_reservations SET status = 'used' WHERE reservation_key = $1",
                    reservation_key,
                )
            written = await append_audit(
                conn,
                event_key=request.idempotency_key,  # the collection's key, ":attempt:", its number
                loan_id=request.loan_id,
                at=request.at,
                action="contact_attempt",
                details={
                    "channel": request.channel,
                    "target": request.target,
                    "target_id": request.target_id,
                    "purpose": request.purpose,
                    "slot": request.slot,
                    "outcome": stored,
                    "planner": {"allowed_at": request.at, "deferred_by": request.deferred_by},
                    # Why a borrower call aimed at its slot: each slot's draw and rank.
                    **({"slot_choice": request.slot_choice} if request.slot_choice else {}),
                },
            )
        # The audit entry is keyed like the attempt and written in its transaction: it is new
        # only when this call recorded the attempt. Two racing runs count the one stored outcome.
        if written:
            metrics.contact_attempt(request.channel, stored)
        return ContactResult(request.idempotency_key, stored)

    async def _confirm(self, reservation: ContactReservation) -> ReservationResult | None:
        """Check the contact's place in the borrower's budget again, now, under the budget's
        locks; returns the refusal, or None when the place is (still, or again) held."""
        async with self._pool.acquire() as conn, conn.transaction():
            await lock_budget(conn, reservation)
            confirmed = await conn.fetchval(
                "SELECT confirmed_at IS NOT NULL FROM contact_reservations"
                " WHERE reservation_key = $1 AND status = 'held'",
                reservation.reservation_key,
            )
            if confirmed:
                # A retry after the provider was reached: the contact may have been made, so it
                # is made (the provider de-duplicates by idempotency key) and recorded, not
                # refused because another loan planned around a place that lapsed meanwhile.
                return None
            result = await hold(conn, reservation)
            if result.granted:
                await conn.execute(
                    "UPDATE contact_reservations SET confirmed_at = now()"
                    " WHERE reservation_key = $1",
                    reservation.reservation_key,
                )
        return None if result.granted else result

    async def _recipient(self, request: ContactRequest) -> tuple[str, str]:
        if request.target == Target.CONTACT:
            row = await self._pool.fetchrow(
                "SELECT c.phone, b.name FROM contacts c JOIN loans l USING (loan_id)"
                " JOIN borrowers b ON b.borrower_id = l.borrower_id"
                " WHERE c.loan_id = $1 AND c.contact_id = $2",
                request.loan_id,
                request.target_id,
            )
        else:
            row = await self._pool.fetchrow(
                "SELECT phone, name FROM borrowers WHERE borrower_id = $1", request.target_id
            )
        if row is None:
            raise ApplicationError(
                f"no {request.target} {request.target_id} on loan {request.loan_id}",
                type="UnknownRecipient",
                non_retryable=True,
            )
        return row["phone"], row["name"].split()[0]


class ProviderCall(Protocol):
    async def __call__(self, delivery: Delivery) -> Outcome: ...
