"""The simulated world: borrowers who answer (or not), say why they have not paid, and pay (or not).

Each borrower gets a persona: an answer likelihood per time slot, what each conversation reveals
(a promise, a dispute, a complaint, a death, a hardship, a refusal, a cease request), and a
propensity to pay. Every draw is a hash of the simulation seed, the borrower and the attempt's
idempotency key, so the same attempt always has the same outcome and activity retries are safe.

A borrower remembers how many conversations came before: the first conversation may reveal one
thing and the later ones another (a disputer disputes once, then pays). That count is read from
the ledger's contact attempts when the worker wires a pool in (``LedgerMemory``), so it survives a
worker restart; without a pool the provider remembers in memory.

What a conversation reveals reaches the workflow as the ``contact_outcome`` signal, the way every
other source reports; payments arrive as ``payment_received``. Both ids are fixed by the attempt.
A borrower on an instalment plan may pay each instalment on its due date, as a standing order
would (``plan_payments``); those payment ids are fixed by the instalment.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import asyncpg

from activities.channels import Delivery
from workflows.commands import BrokenPromise, ContactRequest
from workflows.types import Arrangement, ContactOutcome, Hardship, PaymentReceived, Promise
from workflows.vocabulary import Channel, ComplaintCategory, Outcome, Target

PaymentSink = Callable[[str, PaymentReceived], Awaitable[None]]
OutcomeSink = Callable[[str, ContactOutcome], Awaitable[None]]
SOURCE = "simulator"  # of payments; outcomes name the seed too (``simulator:seed7``)


class Says:
    """What a simulated conversation reveals (one fact each; ``None`` reveals nothing)."""

    PROMISE = "promise"  # a part of the balance, due in one or two days
    DISPUTE = "dispute"
    COMPLAINT = "complaint"  # collector conduct or the sale
    DEATH = "death"  # reported by whoever answered the borrower's phone
    HARDSHIP_SHORT = "hardship_short"
    HARDSHIP_LONG = "hardship_long"
    REFUSAL = "refusal"
    CEASE = "cease"
    STILL_UNABLE = "still_unable"  # a note: nothing has changed


@dataclass(frozen=True)
class Persona:
    """How a simulated borrower behaves.

    Attributes:
        answer_by_slot: Likelihood of answering a call, per borrower-local time slot.
        pay_after_call: Likelihood that a conversation ends in a payment (from ``pays_from``).
        pay_after_sms: Likelihood that a message prompts a payment.
        pay_share: Share of the outstanding balance paid when paying in part (1.0: always in
            full). Such a borrower clears the rest from conversation ``clears_from`` on, or, when
            that is None, one time in three.
        reference_relays: Likelihood that a reference helps: agrees to relay a message (``cn``'s
            relay script) or tells where the borrower can be reached (``us``'s locate script).
            Either way the outcome is ``relayed``.
        says: What conversation 1, 2, ... reveals; the last entry holds for every later one. A
            conversation that ends in a payment reveals nothing.
        pays_from: The first conversation that can end in a payment.
        clears_from: The conversation from which a part-payer clears the rest.
        answered_by: Who answers the borrower's phone: ``borrower``, or ``relative`` (then the
            call is ``wrong_party`` and what the relative says is not a right-party report).
        pays_plans: Kinds of instalment plan (``arrangement``, ``forbearance``) whose instalments
            the borrower pays on their due dates.
        expected: The path the collection should take, as the README documents it.
    """

    name: str
    answer_by_slot: dict[str, float]
    pay_after_call: float
    pay_after_sms: float = 0.0
    pay_share: float = 1.0
    reference_relays: float = 0.5
    says: tuple[str | None, ...] = ()
    pays_from: int = 1
    clears_from: int | None = None
    answered_by: str = "borrower"
    pays_plans: tuple[str, ...] = ()
    expected: str = ""

    def says_at(self, conversation: int) -> str | None:
        if not self.says or conversation < 1:
            return None
        return self.says[min(conversation, len(self.says)) - 1]


def _everywhere(p: float) -> dict[str, float]:
    return {"morning": p, "midday": p, "afternoon": p, "evening": p}


_EVENINGS = {"morning": 0.02, "midday": 0.02, "afternoon": 0.05, "evening": 0.85}  # and hardly else


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona(
            "prompt_payer",
            _everywhere(0.8),
            pay_after_call=1.0,
            pay_after_sms=0.3,
            expected="pays in full at the first conversation (or after the reminder SMS):"
            " cured in early",
        ),
        Persona(
            "promise_breaker",
            _everywhere(0.7),
            pay_after_call=0.0,
            says=(Says.PROMISE,),
            expected="promises part of the balance for a day or two ahead at every conversation"
            " and never pays; each broken promise writes a negative credit record and a fee, and"
            " from the second one each escalates the stage at once: referred",
        ),
        Persona(
            "disputer",
            _everywhere(0.6),
            pay_after_call=1.0,
            says=(Says.DISPUTE, None),
            pays_from=2,
            expected="disputes the debt at the first conversation, which pauses collection until"
            " the back office decides two collection days later: upheld (one in three) closes the"
            " loan as dispute_upheld; rejected resumes it, and the borrower pays in full at the"
            " next conversation: cured",
        ),
        Persona(
            "complainer",
            _everywhere(0.6),
            pay_after_call=1.0,
            says=(Says.COMPLAINT, None),
            pays_from=2,
            expected="complains about collector conduct or the sale at the first conversation"
            " (a complaint case opens, routed by category; collection goes on) and pays in full"
            " at the next one: cured",
        ),
        Persona(
            "deceased",
            _everywhere(0.5),
            pay_after_call=0.0,
            says=(Says.DEATH,),
            answered_by="relative",
            reference_relays=0.2,
            expected="a relative answers the borrower's phone and reports the death: outreach"
            " stops, documents are asked for and the registry confirms it; the estate is asked"
            " about voluntary payment, and two collection days later the back office files an"
            " estate claim or writes the loan off (one in two)",
        ),
        Persona(
            "hardship_short",
            _everywhere(0.6),
            pay_after_call=1.0,
            pay_share=0.5,
            says=(Says.HARDSHIP_SHORT, None),
            pays_from=2,
            clears_from=3,
            pays_plans=("arrangement",),
            expected="reports a short-term hardship at the first conversation; the arrangement"
            " offered (instalments a week apart) pauses collection, and the borrower pays each"
            " instalment on its due date: cured. Should the plan break, the borrower pays half"
            " at the next conversation and the rest at the one after",
        ),
        Persona(
            "hardship_long",
            _everywhere(0.6),
            pay_after_call=0.0,
            says=(Says.HARDSHIP_LONG, Says.STILL_UNABLE),
            pays_plans=("forbearance",),
            expected="reports a long-term hardship at the first conversation; the back office"
            " reviews it two collection days later: approved (two in three) gives forbearance,"
            " smaller instalments the borrower pays on time: cured; rejected resumes collection,"
            " and the borrower still cannot pay: referred",
        ),
        Persona(
            "never_answers",
            _everywhere(0.0),
            pay_after_call=0.0,
            reference_relays=0.3,
            expected="never answers: calls rotate through the time slots, SMS nudges, references"
            " asked where to reach the borrower (us) or to relay a message (cn), legal notice:"
            " referred",
        ),
        Persona(
            "evening_only",
            _EVENINGS,
            pay_after_call=1.0,
            expected="answers in the evening slot only; calls explore the untried slots until they"
            " reach it, and the"
            " borrower pays in full at the first conversation: cured",
        ),
        Persona(
            "partial_payer",
            _everywhere(0.5),
            pay_after_call=1.0,
            pay_share=0.5,
            clears_from=3,
            expected="pays half the balance at each of the first two conversations and the rest"
            " at the third: cured",
        ),
        Persona(
            "day_worker",
            {"morning": 0.05, "midday": 0.75, "afternoon": 0.7, "evening": 0.05},
            pay_after_call=1.0,
            says=(Says.PROMISE, None),
            pays_from=2,
            expected="answers at midday and in the afternoon only (a break at work); promises"
            " part of the balance at the first conversation, breaks it, and pays in full at the"
            " next conversation: cured",
        ),
        Persona(
            "shift_worker",
            {"morning": 0.7, "midday": 0.03, "afternoon": 0.03, "evening": 0.6},
            pay_after_call=1.0,
            pay_share=0.5,
            clears_from=2,
            expected="answers in the morning and the evening only (between shifts); pays half"
            " the balance at the first conversation and the rest at the next: cured",
        ),
        Persona(
            "night_owl",
            _EVENINGS,
            pay_after_call=0.0,
            says=(Says.STILL_UNABLE,),
            expected="answers in the evening slot only, at every call there, and cannot pay:"
            " each conversation only notes that nothing has changed; learning slots keep"
            " calling in the evening: referred",
        ),
        Persona(
            "reluctant",
            _everywhere(0.3),
            pay_after_call=0.0,
            says=(Says.REFUSAL, Says.CEASE),
            expected="answers rarely; refuses to pay at the first conversation (a refusal notice"
            " states the consequences truthfully) and asks that contact cease at the next;"
            " letters only from then on: referred",
        ),
    )
}
# The demo's first loans hold each persona once, in this order: new personas go at the end.
PERSONA_WEIGHTS: dict[str, int] = {
    "prompt_payer": 12,
    "promise_breaker": 8,
    "disputer": 6,
    "complainer": 8,
    "deceased": 4,
    "hardship_short": 7,
    "hardship_long": 5,
    "never_answers": 10,
    "evening_only": 10,
    "partial_payer": 8,
    "reluctant": 8,
    "day_worker": 6,
    "shift_worker": 5,
    "night_owl": 3,
}
COMPLAINTS = (
    (ComplaintCategory.COLLECTOR_CONDUCT, "says the last caller was rude"),
    (ComplaintCategory.SALE, "says the loan was mis-sold"),
)
SHORT_HARDSHIPS = ("reduced working hours", "medical bills this month", "salary paid late")
LONG_HARDSHIPS = ("lost their job", "long-term illness", "disability")


@dataclass
class BorrowerSimulator:
    """Deterministic borrower behaviour for a simulation seed."""

    seed: int = 0
    weights: dict[str, int] = field(default_factory=lambda: dict(PERSONA_WEIGHTS))

    def draw(self, *parts: object) -> float:
        """A uniform number in [0, 1) fixed by the seed and ``parts``."""
        digest = hashlib.sha256(":".join(map(str, (self.seed, *parts))).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    @property
    def outcome_source(self) -> str:
        """Who reports the outcomes, as every source names itself (``kind:name``)."""
        return f"simulator:seed{self.seed}"

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

    def call_outcome(self, delivery: Delivery) -> Outcome:
        request = delivery.request
        persona = self.persona_for(request.borrower_id)
        roll = self.draw("answer", request.borrower_id, request.idempotency_key)
        if request.target == Target.CONTACT:
            if roll < persona.reference_relays:
                return Outcome.RELAYED
            return Outcome.OBJECTED if roll > 0.95 else Outcome.NO_ANSWER
        if roll < persona.answer_by_slot.get(request.slot, 0.0):
            return Outcome.ANSWERED if persona.answered_by == "borrower" else Outcome.WRONG_PARTY
        return Outcome.BUSY if roll > 0.97 else Outcome.NO_ANSWER

    def payment_after(
        self, delivery: Delivery, outcome: str, conversation: int = 1
    ) -> PaymentReceived | None:
        """The payment a contact prompts, if the borrower pays. Its id is fixed by the attempt.

        ``conversation`` is the number of this conversation with the borrower (1 for the
        first); it matters only for answered calls.
        """
        request = delivery.request
        if request.target != Target.BORROWER or request.outstanding_minor <= 0:
            return None
        persona = self.persona_for(request.borrower_id)
        if persona.answered_by != "borrower":
            return None
        if request.channel == Channel.CALL:
            answered = outcome == Outcome.ANSWERED and conversation >= persona.pays_from
            likelihood = persona.pay_after_call if answered else 0.0
        else:
            likelihood = persona.pay_after_sms
        if self.draw("pays", request.borrower_id, request.idempotency_key) >= likelihood:
            return None
        amount = request.outstanding_minor
        if persona.pay_share < 1.0:
            if persona.clears_from is not None:
                clears = request.channel == Channel.CALL and conversation >= persona.clears_from
            else:
                clears = self.draw("clears", request.borrower_id, request.idempotency_key) < 1 / 3
            if not clears:
                amount = max(1, int(amount * persona.pay_share))
        return PaymentReceived(
            payment_id=f"sim:{request.idempotency_key}",
            amount_minor=amount,
            currency=request.currency,
            paid_at=request.at,
            source=SOURCE,
        )

    def plan_payments(
        self,
        borrower_id: str,
        plan: Arrangement | None,
        today: date,
        currency: str,
        at: datetime,
    ) -> list[PaymentReceived]:
        """What the borrower's standing order pays towards ``plan`` by ``today`` (borrower-local):
        every unpaid instalment due by then, in full, if the persona pays plans of its kind.

        Each payment id is fixed by the instalment (``sim:<promise id>``), so paying the same
        instalment twice is a duplicate the workflow ignores.
        """
        if plan is None or plan.kind not in self.persona_for(borrower_id).pays_plans:
            return []
        return [
            PaymentReceived(
                payment_id=f"sim:{instalment.promise_id}",
                amount_minor=instalment.amount_minor - instalment.paid_minor,
                currency=currency,
                paid_at=at,
                source=SOURCE,
            )
            for instalment in plan.instalments
            if instalment.paid_minor < instalment.amount_minor
            and date.fromisoformat(instalment.due_date) <= today
        ]

    def outcome_after(
        self, delivery: Delivery, outcome: str, conversation: int = 1
    ) -> ContactOutcome | None:
        """What an answered call to the borrower's number revealed, if anything: in a conversation
        with the borrower (``answered``), or with whoever else answered it (``wrong_party``).

        Its id is fixed by the attempt (``sim:<idempotency key>:outcome``) and its time is the
        attempt's. A conversation that ends in a payment reveals nothing more.
        """
        request = delivery.request
        if (
            request.channel != Channel.CALL
            or request.target != Target.BORROWER
            or outcome not in (Outcome.ANSWERED, Outcome.WRONG_PARTY)
        ):
            return None
        persona = self.persona_for(request.borrower_id)
        says = persona.says_at(conversation)
        if says is None or self.payment_after(delivery, outcome, conversation) is not None:
            return None
        report = ContactOutcome(
            outcome_id=f"sim:{request.idempotency_key}:outcome",
            source=self.outcome_source,
            at=request.at,
            right_party=persona.answered_by == "borrower",
            attempt_key=request.idempotency_key,  # the dialer's call, already counted
        )
        draw = self.draw("says", request.borrower_id, request.idempotency_key)
        if says == Says.PROMISE:
            share = 0.3 + 0.3 * draw  # 30-60 % of the balance
            amount = min(request.outstanding_minor, max(1, int(request.outstanding_minor * share)))
            if amount <= 0:
                return None
            today = request.at.astimezone(ZoneInfo(request.timezone)).date()
            due = today + timedelta(days=1 if draw < 0.5 else 2)
            report.promise = Promise(amount_minor=amount, due_date=due.isoformat())
            report.note = "promised to pay part of the balance"
        elif says == Says.DISPUTE:
            report.dispute = True
            report.note = "says the debt is not theirs to pay"
        elif says == Says.COMPLAINT:
            report.complaint, report.note = COMPLAINTS[int(draw * len(COMPLAINTS))]
        elif says == Says.DEATH:
            report.death_reported_by = "relative"
            report.note = "a relative answered and said the borrower has died"
        elif says == Says.HARDSHIP_SHORT:
            reason = SHORT_HARDSHIPS[int(draw * len(SHORT_HARDSHIPS))]
            report.hardship = Hardship(term="short", reason=reason)
        elif says == Says.HARDSHIP_LONG:
            reason = LONG_HARDSHIPS[int(draw * len(LONG_HARDSHIPS))]
            report.hardship = Hardship(term="long", reason=reason)
        elif says == Says.REFUSAL:
            report.refusal = True
            report.note = "refuses to pay"
        elif says == Says.CEASE:
            report.cease = True
            report.note = "asks not to be contacted again"
        elif says == Says.STILL_UNABLE:
            report.note = "still unable to pay"
        else:
            raise ValueError(f"persona {persona.name} says {says!r}, which the simulator lacks")
        return report


class ConversationMemory(Protocol):
    """What a simulated borrower remembers: how many conversations (answered calls, not those
    someone else answered) came before an attempt."""

    async def before(self, request: ContactRequest) -> int: ...

    def remember(self, request: ContactRequest) -> None: ...


class InMemoryConversations:
    """Counts answered borrower calls per loan in this process (lost when the worker restarts).

    Only attempts numbered before ``request`` count, so a retried attempt reads the same.
    """

    def __init__(self) -> None:
        self._answered: dict[str, set[int]] = defaultdict(set)

    async def before(self, request: ContactRequest) -> int:
        return sum(1 for n in self._answered[request.loan_id] if n < request.attempt_no)

    def remember(self, request: ContactRequest) -> None:
        self._answered[request.loan_id].add(request.attempt_no)


class LedgerMemory:
    """Counts answered borrower calls from the ledger's contact attempts: durable, and fixed by
    the attempt (every earlier attempt of a loan is recorded before the next one is made).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def before(self, request: ContactRequest) -> int:
        count = await self._pool.fetchval(
            "SELECT count(*) FROM contact_attempts WHERE loan_id = $1 AND attempt_no < $2"
            " AND channel = 'call' AND target = 'borrower' AND outcome = 'answered'",
            request.loan_id,
            request.attempt_no,
        )
        return int(count or 0)

    def remember(self, request: ContactRequest) -> None:
        """The channel activity records the attempt; nothing to keep here."""


class SimulatedProvider:
    """A ``ChannelProvider`` backed by the simulator.

    Payments go to ``payment_sink`` and what conversations reveal to ``outcome_sink`` (the
    worker wires both to signals). ``memory`` counts the borrower's earlier conversations.
    """

    def __init__(
        self,
        simulator: BorrowerSimulator,
        payment_sink: PaymentSink | None = None,
        outcome_sink: OutcomeSink | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.simulator = simulator
        self._payment_sink = payment_sink
        self._outcome_sink = outcome_sink
        self._memory: ConversationMemory = memory or InMemoryConversations()

    async def call(self, delivery: Delivery) -> Outcome:
        request = delivery.request
        outcome = self.simulator.call_outcome(delivery)
        conversation = 0
        if request.target == Target.BORROWER and outcome in (Outcome.ANSWERED, Outcome.WRONG_PARTY):
            conversation = await self._memory.before(request) + 1
        if request.target == Target.BORROWER and outcome == Outcome.ANSWERED:
            self._memory.remember(request)
        report = self.simulator.outcome_after(delivery, outcome, conversation)
        if report is not None and self._outcome_sink is not None:
            await self._outcome_sink(request.loan_id, report)
        await self._maybe_pay(delivery, outcome, conversation)
        return outcome

    async def send_sms(self, delivery: Delivery) -> Outcome:
        await self._maybe_pay(delivery, Outcome.DELIVERED, 0)
        return Outcome.DELIVERED

    async def _maybe_pay(self, delivery: Delivery, outcome: str, conversation: int) -> None:
        payment = self.simulator.payment_after(delivery, outcome, conversation)
        if payment is not None and self._payment_sink is not None:
            await self._payment_sink(delivery.request.loan_id, payment)


class SimulatedCreditBureau:
    """A ``CreditBureau`` that accepts every report. Its reference is fixed by the promise id, as
    a real bureau's is by the idempotency key it is given, so a report filed twice reads the same.
    """

    async def report_negative(self, report: BrokenPromise) -> str:
        return "SIM-" + hashlib.sha256(report.promise_id.encode()).hexdigest()[:12].upper()
