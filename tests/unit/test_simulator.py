"""The simulated borrowers: deterministic, persona-driven, with payments and outcomes fixed by the
attempt and by how many conversations came before it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest

from activities.channels import Delivery
from overdue.outcomes import LoanView, check_outcome
from overdue.simulator import (
    PERSONA_WEIGHTS,
    PERSONAS,
    BorrowerSimulator,
    InMemoryConversations,
    SimulatedProvider,
)
from workflows.commands import ContactRequest
from workflows.types import Arrangement, ContactOutcome, Instalment, PaymentReceived
from workflows.vocabulary import Channel, ComplaintCategory, Outcome, Target

SLOTS = ("morning", "midday", "afternoon", "evening")
AT = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def delivery(
    borrower_id: str = "b-1",
    key: str = "loan-1:attempt:1",
    *,
    channel: str = Channel.CALL,
    target: str = Target.BORROWER,
    slot: str = "evening",
    outstanding: int = 100_000,
    attempt_no: int = 1,
    loan_id: str = "loan-1",
) -> Delivery:
    request = ContactRequest(
        idempotency_key=key,
        loan_id=loan_id,
        borrower_id=borrower_id,
        attempt_no=attempt_no,
        channel=channel,
        target=target,
        target_id=borrower_id if target == Target.BORROWER else "contact-a",
        slot=slot,
        purpose="reminder",
        template="call_reminder",
        stage="early",
        at=AT,
        at_local="2026-03-04 10:00 EST",
        timezone="America/New_York",
        message="",
        outstanding_minor=outstanding,
        currency="USD",
    )
    return Delivery(request=request, phone="+15550100", text="")


def test_same_attempt_same_outcome() -> None:
    for i in range(50):
        d = delivery(f"b-{i}", f"loan-{i}:attempt:{i}", slot=SLOTS[i % 4])
        first = BorrowerSimulator(seed=7)
        again = BorrowerSimulator(seed=7)
        assert first.call_outcome(d) == again.call_outcome(d) == first.call_outcome(d)
        outcome = first.call_outcome(d)
        assert first.payment_after(d, outcome) == again.payment_after(d, outcome)
        for conversation in (1, 2, 3):
            assert first.outcome_after(d, outcome, conversation) == again.outcome_after(
                d, outcome, conversation
            )


def test_outcomes_vary_with_the_attempt_and_the_seed() -> None:
    sim = BorrowerSimulator(seed=1)
    by_key = {sim.call_outcome(delivery("prompt_payer-1", f"k{i}")) for i in range(40)}
    assert {Outcome.ANSWERED, Outcome.NO_ANSWER} <= by_key
    draws = {BorrowerSimulator(seed=s).draw("x") for s in range(10)}
    assert len(draws) == 10


def test_draws_are_uniform_in_unit_interval() -> None:
    sim = BorrowerSimulator(seed=3)
    values = [sim.draw("u", i) for i in range(2000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55


@pytest.mark.parametrize("name", sorted(PERSONAS))
def test_persona_prefix_in_borrower_id_picks_the_persona(name: str) -> None:
    for seed in range(5):
        assert BorrowerSimulator(seed=seed).persona_for(f"{name}-17").name == name


def test_borrower_without_prefix_gets_a_stable_weighted_persona() -> None:
    sim = BorrowerSimulator(seed=0)
    assert sim.persona_for("b-42") == sim.persona_for("b-42")
    picked = Counter(sim.persona_for(f"b-{i}").name for i in range(2000))
    assert set(picked) == set(PERSONAS)
    # prompt_payer has weight 12 of 100.
    assert sum(PERSONA_WEIGHTS.values()) == 100
    assert 0.08 < picked["prompt_payer"] / 2000 < 0.16
    only = BorrowerSimulator(seed=0, weights={"never_answers": 1})
    assert {only.persona_for(f"b-{i}").name for i in range(50)} == {"never_answers"}


def test_a_prefix_needs_its_dash() -> None:
    sim = BorrowerSimulator(seed=0, weights={"reluctant": 1})
    assert sim.persona_for("never_answersX").name == "reluctant"


@pytest.mark.parametrize("slot", [*SLOTS, "off_slot"])
def test_never_answers_never_answers(slot: str) -> None:
    sim = BorrowerSimulator(seed=11)
    for i in range(300):
        d = delivery(f"never_answers-{i}", f"k{i}", slot=slot)
        outcome = sim.call_outcome(d)
        assert outcome in (Outcome.NO_ANSWER, Outcome.BUSY)
        assert sim.payment_after(d, outcome) is None


def test_evening_only_answers_mostly_in_the_evening() -> None:
    sim = BorrowerSimulator(seed=5)

    def answered(slot: str) -> int:
        return sum(
            sim.call_outcome(delivery(f"evening_only-{i}", f"k{i}", slot=slot)) == Outcome.ANSWERED
            for i in range(300)
        )

    assert answered("evening") > 200
    assert answered("morning") < 30


@pytest.mark.parametrize(
    ("persona", "answers_in", "misses_in"),
    [
        ("day_worker", ("midday", "afternoon"), ("morning", "evening")),
        ("shift_worker", ("morning", "evening"), ("midday", "afternoon")),
        ("night_owl", ("evening",), ("morning", "midday", "afternoon")),
    ],
)
def test_personas_answer_in_their_own_slots(
    persona: str, answers_in: tuple[str, ...], misses_in: tuple[str, ...]
) -> None:
    sim = BorrowerSimulator(seed=11)

    def answered(slot: str) -> int:
        return sum(
            sim.call_outcome(delivery(f"{persona}-{i}", f"k{i}", slot=slot)) == Outcome.ANSWERED
            for i in range(300)
        )

    for slot in answers_in:
        assert answered(slot) > 150, slot
    for slot in misses_in:
        assert answered(slot) < 30, slot
    # The same borrower, attempt and slot: the same outcome (seeded per loan and attempt).
    again = BorrowerSimulator(seed=11)
    d = delivery(f"{persona}-7", "L-7:attempt:3", slot=answers_in[0])
    assert sim.call_outcome(d) == again.call_outcome(d)


def test_a_night_owl_answers_but_never_pays() -> None:
    sim = BorrowerSimulator(seed=3)
    for conversation in (1, 2, 5):
        d = delivery("night_owl-1", f"loan-1:attempt:{conversation}")
        assert sim.payment_after(d, Outcome.ANSWERED, conversation) is None
        report = sim.outcome_after(d, Outcome.ANSWERED, conversation)
        assert report is not None and report.note == "still unable to pay"


def test_references_relay_object_or_miss() -> None:
    sim = BorrowerSimulator(seed=2)
    outcomes = {
        sim.call_outcome(delivery(f"b-{i}", f"k{i}", target=Target.CONTACT)) for i in range(400)
    }
    assert outcomes == {Outcome.RELAYED, Outcome.OBJECTED, Outcome.NO_ANSWER}
    d = delivery("prompt_payer-1", "k1", target=Target.CONTACT)
    assert sim.payment_after(d, Outcome.RELAYED) is None, "references never pay"


def _payments(borrower: str, channel: str = Channel.CALL, n: int = 300) -> list[PaymentReceived]:
    sim = BorrowerSimulator(seed=9)
    found = []
    for i in range(n):
        d = delivery(f"{borrower}-{i}", f"loan-{i}:attempt:3", channel=channel)
        outcome = sim.call_outcome(d) if channel == Channel.CALL else Outcome.DELIVERED
        payment = sim.payment_after(d, outcome)
        if payment is not None:
            found.append(payment)
    return found


def test_payment_id_is_fixed_by_the_idempotency_key() -> None:
    payments = _payments("prompt_payer")
    assert payments
    for payment in payments:
        assert payment.payment_id.startswith("sim:loan-")
        assert payment.paid_at == AT
        assert payment.currency == "USD"
        assert payment.source == "simulator"
    sim = BorrowerSimulator(seed=9)
    for i in range(300):
        d = delivery(f"prompt_payer-{i}", f"loan-{i}:attempt:3")
        retried = dataclasses.replace(d, phone="+15550199")  # a retry of the same attempt
        first = sim.payment_after(d, Outcome.ANSWERED)
        assert first == sim.payment_after(retried, Outcome.ANSWERED)
        if first is not None:
            assert first.payment_id == "sim:" + d.request.idempotency_key


def test_only_conversations_prompt_payments_after_calls() -> None:
    sim = BorrowerSimulator(seed=9)
    for i in range(200):
        d = delivery(f"prompt_payer-{i}", f"k{i}")
        assert sim.payment_after(d, Outcome.NO_ANSWER) is None


def test_full_payers_clear_the_balance() -> None:
    assert all(p.amount_minor == 100_000 for p in _payments("prompt_payer"))


def test_partial_payers_pay_half_twice_then_clear() -> None:
    for conversation, amount in ((1, 50_000), (2, 50_000), (3, 100_000), (4, 100_000)):
        assert {p.amount_minor for p in _paid("partial_payer", conversation)} == {amount}


def test_no_payment_when_nothing_is_owed() -> None:
    sim = BorrowerSimulator(seed=9)
    for i in range(100):
        d = delivery(f"prompt_payer-{i}", f"k{i}", outstanding=0)
        assert sim.payment_after(d, Outcome.ANSWERED) is None


async def test_simulated_provider_reports_payments_to_the_sink() -> None:
    received: list[tuple[str, PaymentReceived]] = []

    async def sink(loan_id: str, payment: PaymentReceived) -> None:
        received.append((loan_id, payment))

    sim = BorrowerSimulator(seed=9)
    provider = SimulatedProvider(sim, sink)
    outcomes = []
    keys = []
    for i in range(40):
        call_key, sms_key = f"loan-1:attempt:{2 * i}", f"loan-1:attempt:{2 * i + 1}"
        keys += [call_key, sms_key]
        outcomes.append(await provider.call(delivery(f"prompt_payer-{i}", call_key)))
        sms = delivery(f"prompt_payer-{i}", sms_key, channel=Channel.SMS)
        assert await provider.send_sms(sms) == Outcome.DELIVERED
    assert Outcome.ANSWERED in outcomes
    assert received
    assert all(loan_id == "loan-1" for loan_id, _ in received)
    ids = [p.payment_id for _, p in received]
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {f"sim:{k}" for k in keys}
    # Without a sink the provider still answers.
    silent = SimulatedProvider(sim)
    assert await silent.call(delivery("prompt_payer-0", "loan-1:attempt:0")) == outcomes[0]


# --- what conversations reveal --------------------------------------------------------------

LOAN = LoanView(
    loan_id="loan-1",
    currency="USD",
    outstanding_minor=100_000,
    timezone="America/New_York",
    collection_time=AT,
)
TODAY = date(2026, 3, 4)  # AT, borrower-local (10:00 EST)
EVERY_SITUATION = {
    "prompt_payer",
    "promise_breaker",
    "disputer",
    "complainer",
    "deceased",
    "hardship_short",
    "hardship_long",
    "never_answers",
    "evening_only",
}


def _conversations(persona: str, conversation: int, n: int = 200) -> list[tuple[Delivery, Any]]:
    """``n`` answered calls of ``persona`` borrowers, each its ``conversation``-th, with what
    each revealed (an outcome or None) and paid (a payment or None)."""
    sim = BorrowerSimulator(seed=4)
    found = []
    for i in range(n):
        d = delivery(f"{persona}-{i}", f"loan-{i}:attempt:{conversation + 1}")
        found.append(
            (
                d,
                (
                    sim.outcome_after(d, Outcome.ANSWERED, conversation),
                    sim.payment_after(d, Outcome.ANSWERED, conversation),
                ),
            )
        )
    return found


def _outcomes(persona: str, conversation: int) -> list[ContactOutcome]:
    return [o for _, (o, _) in _conversations(persona, conversation) if o is not None]


def _paid(persona: str, conversation: int) -> list[PaymentReceived]:
    return [p for _, (_, p) in _conversations(persona, conversation) if p is not None]


def test_every_situation_has_a_persona_with_a_documented_path() -> None:
    assert set(PERSONAS) >= EVERY_SITUATION
    assert set(PERSONA_WEIGHTS) == set(PERSONAS)
    assert all(weight > 0 for weight in PERSONA_WEIGHTS.values())
    for persona in PERSONAS.values():
        assert persona.expected, f"{persona.name} has no documented expected path"


@pytest.mark.parametrize("name", sorted(PERSONAS))
@pytest.mark.parametrize("conversation", [1, 2, 3])
def test_every_simulated_outcome_passes_the_checks_every_source_passes(
    name: str, conversation: int
) -> None:
    for d, (outcome, payment) in _conversations(name, conversation, n=60):
        if outcome is None:
            continue
        check_outcome(outcome, LOAN)  # raises OutcomeInvalid, naming the field
        assert outcome.outcome_id == f"sim:{d.request.idempotency_key}:outcome"
        assert outcome.source == "simulator:seed4"
        assert outcome.at == AT
        assert payment is None, "a conversation that ends in a payment reveals nothing more"


def test_only_answered_calls_to_the_borrower_reveal_anything() -> None:
    sim = BorrowerSimulator(seed=4)
    for name in PERSONAS:
        for i in range(40):
            key = f"loan-{i}:attempt:2"
            call = delivery(f"{name}-{i}", key)
            for outcome in (Outcome.NO_ANSWER, Outcome.BUSY):
                assert sim.outcome_after(call, outcome, 1) is None
            sms = delivery(f"{name}-{i}", key, channel=Channel.SMS)
            assert sim.outcome_after(sms, Outcome.DELIVERED, 1) is None
            reference = delivery(f"{name}-{i}", key, target=Target.CONTACT)
            for outcome in (Outcome.RELAYED, Outcome.OBJECTED, Outcome.NO_ANSWER):
                assert sim.outcome_after(reference, outcome, 1) is None


@pytest.mark.parametrize("conversation", [1, 2, 3])
def test_prompt_payers_pay_in_full_and_say_nothing(conversation: int) -> None:
    assert not _outcomes("prompt_payer", conversation)
    paid = _paid("prompt_payer", conversation)
    assert len(paid) == 200
    assert {p.amount_minor for p in paid} == {100_000}


@pytest.mark.parametrize("conversation", [1, 2, 5])
def test_promise_breakers_promise_part_for_a_day_or_two_and_never_pay(conversation: int) -> None:
    outcomes = _outcomes("promise_breaker", conversation)
    assert len(outcomes) == 200
    assert not _paid("promise_breaker", conversation)
    dates = Counter(o.promise.due_date for o in outcomes if o.promise is not None)
    assert set(dates) == {"2026-03-05", "2026-03-06"}  # a day or two after TODAY
    for o in outcomes:
        assert o.promise is not None and o.right_party
        assert 30_000 <= o.promise.amount_minor <= 60_000
        assert not (o.dispute or o.refusal or o.cease or o.hardship or o.complaint)


def test_disputers_dispute_first_and_pay_once_the_dispute_is_decided() -> None:
    first = _outcomes("disputer", 1)
    assert len(first) == 200
    assert all(o.dispute and o.right_party and o.promise is None for o in first)
    assert not _paid("disputer", 1)
    assert not _outcomes("disputer", 2)
    assert {p.amount_minor for p in _paid("disputer", 2)} == {100_000}
    assert len(_paid("disputer", 2)) == 200


def test_complainers_complain_of_conduct_or_the_sale_then_pay() -> None:
    first = _outcomes("complainer", 1)
    assert len(first) == 200
    assert not _paid("complainer", 1)
    categories = Counter(o.complaint for o in first)
    assert set(categories) == {ComplaintCategory.COLLECTOR_CONDUCT, ComplaintCategory.SALE}
    assert all(o.note and not o.dispute for o in first)
    later = _paid("complainer", 2)
    assert len(later) == 200
    assert {p.amount_minor for p in later} == {100_000}
    assert not _outcomes("complainer", 2)


def test_a_relative_answers_a_deceased_borrowers_phone() -> None:
    sim = BorrowerSimulator(seed=4)
    outcomes = Counter(
        sim.call_outcome(delivery(f"deceased-{i}", f"k{i}", slot=SLOTS[i % 4])) for i in range(400)
    )
    assert Outcome.ANSWERED not in outcomes, "the borrower never answers"
    assert 150 < outcomes[Outcome.WRONG_PARTY] < 250


@pytest.mark.parametrize("conversation", [1, 2])
def test_a_relative_reports_a_deceased_borrowers_death(conversation: int) -> None:
    sim = BorrowerSimulator(seed=4)
    wrong_party = [
        sim.outcome_after(delivery(f"deceased-{i}", f"k{i}"), Outcome.WRONG_PARTY, conversation)
        for i in range(50)
    ]
    assert all(o is not None and o.death_reported_by == "relative" for o in wrong_party)
    outcomes = _outcomes("deceased", conversation)
    assert len(outcomes) == 200
    for o in outcomes:
        assert o.death_reported_by == "relative"
        assert o.right_party is False
        assert not (o.promise or o.dispute or o.hardship or o.cease or o.refusal)
    assert not _paid("deceased", conversation)
    sim = BorrowerSimulator(seed=4)
    sms = delivery("deceased-1", "k1", channel=Channel.SMS)
    assert sim.payment_after(sms, Outcome.DELIVERED) is None


def test_short_hardship_is_reported_then_paid_in_two_halves() -> None:
    first = _outcomes("hardship_short", 1)
    assert len(first) == 200
    assert all(o.hardship is not None and o.hardship.term == "short" for o in first)
    assert all(o.hardship is not None and o.hardship.reason for o in first)
    assert not _paid("hardship_short", 1)
    assert {p.amount_minor for p in _paid("hardship_short", 2)} == {50_000}
    assert {p.amount_minor for p in _paid("hardship_short", 3)} == {100_000}
    assert not _outcomes("hardship_short", 2)


def test_long_hardship_is_reported_and_nothing_is_paid() -> None:
    first = _outcomes("hardship_long", 1)
    assert len(first) == 200
    assert all(o.hardship is not None and o.hardship.term == "long" for o in first)
    later = _outcomes("hardship_long", 2)
    assert len(later) == 200
    assert all(o.hardship is None and o.note for o in later)
    assert not _paid("hardship_long", 1) and not _paid("hardship_long", 2)


def test_reluctant_borrowers_refuse_then_ask_to_cease() -> None:
    first, second = _outcomes("reluctant", 1), _outcomes("reluctant", 2)
    assert first and second
    assert all(o.refusal and not o.cease for o in first)
    assert all(o.cease and not o.refusal for o in second)
    assert len(first) == len(second) == 200
    assert not _paid("reluctant", 1) and not _paid("reluctant", 2)


@pytest.mark.parametrize("name", ["never_answers", "evening_only", "partial_payer"])
def test_personas_without_a_story_reveal_nothing(name: str) -> None:
    for conversation in (1, 2, 3):
        assert not _outcomes(name, conversation)


async def test_the_provider_counts_conversations_and_reports_outcomes_to_the_sink() -> None:
    outcomes: list[tuple[str, ContactOutcome]] = []
    payments: list[tuple[str, PaymentReceived]] = []

    async def outcome_sink(loan_id: str, outcome: ContactOutcome) -> None:
        outcomes.append((loan_id, outcome))

    async def payment_sink(loan_id: str, payment: PaymentReceived) -> None:
        payments.append((loan_id, payment))

    sim = BorrowerSimulator(seed=4)
    provider = SimulatedProvider(sim, payment_sink, outcome_sink)
    answered = []
    for n in range(1, 40):
        d = delivery("disputer-9", f"loan-9:attempt:{n}", attempt_no=n, loan_id="loan-9")
        if await provider.call(d) == Outcome.ANSWERED:
            answered.append(d)
        if len(answered) == 2:
            break
    assert len(answered) == 2
    # The first conversation disputed the debt; the second paid it.
    assert [(loan, o.outcome_id, o.dispute) for loan, o in outcomes] == [
        ("loan-9", f"sim:{answered[0].request.idempotency_key}:outcome", True)
    ]
    assert [(loan, p.payment_id) for loan, p in payments] == [
        ("loan-9", f"sim:{answered[1].request.idempotency_key}")
    ]
    # A retried attempt is the same conversation: the same outcome, under the same id.
    await provider.call(answered[0])
    assert len(outcomes) == 2 and outcomes[1] == outcomes[0]


async def test_in_memory_conversations_count_only_earlier_attempts() -> None:
    memory = InMemoryConversations()
    third = delivery(attempt_no=3).request
    assert await memory.before(third) == 0
    memory.remember(delivery(attempt_no=1).request)
    memory.remember(third)
    assert await memory.before(third) == 1
    assert await memory.before(delivery(attempt_no=7).request) == 2
    assert await memory.before(delivery(attempt_no=7, loan_id="loan-2").request) == 0


def _plan(kind: str, paid: tuple[int, ...] = (0, 0, 0)) -> Arrangement:
    return Arrangement(
        kind=kind,
        instalments=[
            Instalment(f"loan-1:plan:1:{n}", f"2026-03-{3 + 7 * (n - 1):02d}", 30_000, paid[n - 1])
            for n in (1, 2, 3)
        ],
    )


def test_hardship_borrowers_pay_the_instalments_due_on_their_plan() -> None:
    sim = BorrowerSimulator(seed=4)
    # Instalments fall due on 2026-03-03, 03-10 and 03-17.
    paid = sim.plan_payments("hardship_short-1", _plan("arrangement"), TODAY, "USD", AT)
    assert [(p.payment_id, p.amount_minor) for p in paid] == [("sim:loan-1:plan:1:1", 30_000)]
    assert paid[0].paid_at == AT and paid[0].currency == "USD" and paid[0].source == "simulator"
    later = sim.plan_payments(
        "hardship_short-1", _plan("arrangement", (30_000, 10_000, 0)), date(2026, 3, 17), "USD", AT
    )
    assert [(p.payment_id, p.amount_minor) for p in later] == [
        ("sim:loan-1:plan:1:2", 20_000),
        ("sim:loan-1:plan:1:3", 30_000),
    ]
    assert (
        sim.plan_payments("hardship_short-1", _plan("arrangement"), date(2026, 3, 2), "USD", AT)
        == []
    )
    assert sim.plan_payments("hardship_short-1", None, TODAY, "USD", AT) == []


def test_each_hardship_persona_pays_its_own_kind_of_plan() -> None:
    sim = BorrowerSimulator(seed=4)
    assert sim.plan_payments("hardship_long-1", _plan("forbearance"), TODAY, "USD", AT)
    assert not sim.plan_payments("hardship_long-1", _plan("arrangement"), TODAY, "USD", AT)
    assert not sim.plan_payments("hardship_short-1", _plan("forbearance"), TODAY, "USD", AT)
    for name in PERSONAS:
        if not name.startswith("hardship_"):
            for kind in ("arrangement", "forbearance"):
                assert not sim.plan_payments(f"{name}-1", _plan(kind), TODAY, "USD", AT)
