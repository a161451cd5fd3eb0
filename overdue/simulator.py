"""The simulated world: borrowers who answer (or not) and pay (or not), deterministically.

Each borrower gets a persona, with an answer likelihood per time slot and a propensity to pay.
Every draw is a hash of the simulation seed, the borrower and the attempt's idempotency key, so
the same attempt always has the same outcome and activity retries are safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from activities.channels import Delivery
from workflows.commands import BrokenPromise
from workflows.types import Outcome, PaymentReceived, Target

PaymentSink = Callable[[str, PaymentReceived], Awaitable[None]]


@dataclass(frozen=True)
class Persona:
    """How a simulated borrower behaves.

    Attributes:
        answer_by_slot: Likelihood of answering a call, per borrower-local time slot.
        pay_after_call: Likelihood that a conversation ends in a payment.
        pay_after_sms: Likelihood that a message prompts a payment.
        pay_share: Share of the outstanding balance paid when paying in part (1.0: always in
            full). Such a borrower clears the rest in full one time in three.
        reference_relays: Likelihood that a reference agrees to relay a message.
    """

    name: str
    answer_by_slot: dict[str, float]
    pay_after_call: float
    pay_after_sms: float = 0.0
    pay_share: float = 1.0
    reference_relays: float = 0.5


def _everywhere(p: float) -> dict[str, float]:
    return {"morning": p, "midday": p, "afternoon": p, "evening": p}


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona("prompt_payer", _everywhere(0.8), pay_after_call=0.9, pay_after_sms=0.3),
        Persona(
            "evening_only",
            {"morning": 0.02, "midday": 0.02, "afternoon": 0.05, "evening": 0.85},
            pay_after_call=0.7,
        ),
        Persona("partial_payer", _everywhere(0.5), pay_after_call=0.7, pay_share=0.5),
        Persona("reluctant", _everywhere(0.3), pay_after_call=0.15, pay_after_sms=0.02),
        Persona("never_answers", _everywhere(0.0), pay_after_call=0.0, reference_relays=0.3),
    )
}
PERSONA_WEIGHTS: dict[str, int] = {
    "prompt_payer": 30,
    "evening_only": 20,
    "partial_payer": 20,
    "reluctant": 15,
    "never_answers": 15,
}


@dataclass
class BorrowerSimulator:
    """Deterministic borrower behaviour for a simulation seed."""

    seed: int = 0
    weights: dict[str, int] = field(default_factory=lambda: dict(PERSONA_WEIGHTS))

    def draw(self, *parts: object) -> float:
        """A uniform number in [0, 1) fixed by the seed and ``parts``."""
        digest = hashlib.sha256(":".join(map(str, (self.seed, *parts))).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def persona_for(self, borrower_id: str) -> Persona:
        """A borrower id that starts with a persona name (``never_answers-17``) picks it."""
        for name, persona in PERSONAS.items():
            if borrower_id.startswith(f"{name}-"):
                return persona
        point = self.draw("persona", borrower_id) * sum(self.weights.values())
        for name, weight in self.weights.items():
            point -= weight
            if point < 0:
                return PERSONAS[name]
        return PERSONAS["reluctant"]

    def call_outcome(self, delivery: Delivery) -> str:
        request = delivery.request
        persona = self.persona_for(request.borrower_id)
        roll = self.draw("answer", request.borrower_id, request.idempotency_key)
        if request.target == Target.CONTACT:
            if roll < persona.reference_relays:
                return Outcome.RELAYED
            return Outcome.OBJECTED if roll > 0.95 else Outcome.NO_ANSWER
        if roll < persona.answer_by_slot.get(request.slot, 0.0):
            return Outcome.ANSWERED
        return Outcome.BUSY if roll > 0.97 else Outcome.NO_ANSWER

    def payment_after(self, delivery: Delivery, outcome: str) -> PaymentReceived | None:
        """The payment a contact prompts, if the borrower pays. Its id is fixed by the attempt."""
        request = delivery.request
        if request.target != Target.BORROWER or request.outstanding_minor <= 0:
            return None
        persona = self.persona_for(request.borrower_id)
        if request.channel == "call":
            likelihood = persona.pay_after_call if outcome == Outcome.ANSWERED else 0.0
        else:
            likelihood = persona.pay_after_sms
        if self.draw("pays", request.borrower_id, request.idempotency_key) >= likelihood:
            return None
        amount = request.outstanding_minor
        clears = self.draw("clears", request.borrower_id, request.idempotency_key) < 1 / 3
        if persona.pay_share < 1.0 and not clears:
            amount = max(1, int(amount * persona.pay_share))
        return PaymentReceived(
            payment_id=f"sim:{request.idempotency_key}",
            amount_minor=amount,
            currency=request.currency,
            paid_at=request.at,
            source="simulator",
        )


class SimulatedProvider:
    """A ``ChannelProvider`` backed by the simulator; payments go to ``payment_sink``."""

    def __init__(
        self, simulator: BorrowerSimulator, payment_sink: PaymentSink | None = None
    ) -> None:
        self.simulator = simulator
        self._payment_sink = payment_sink

    async def call(self, delivery: Delivery) -> str:
        outcome = self.simulator.call_outcome(delivery)
        await self._maybe_pay(delivery, outcome)
        return outcome

    async def send_sms(self, delivery: Delivery) -> str:
        await self._maybe_pay(delivery, Outcome.DELIVERED)
        return Outcome.DELIVERED

    async def _maybe_pay(self, delivery: Delivery, outcome: str) -> None:
        payment = self.simulator.payment_after(delivery, outcome)
        if payment is not None and self._payment_sink is not None:
            await self._payment_sink(delivery.request.loan_id, payment)


class SimulatedCreditBureau:
    """A ``CreditBureau`` that accepts every report. Its reference is fixed by the promise id, as
    a real bureau's is by the idempotency key it is given, so a report filed twice reads the same.
    """

    async def report_negative(self, report: BrokenPromise) -> str:
        return "SIM-" + hashlib.sha256(report.promise_id.encode()).hexdigest()[:12].upper()
