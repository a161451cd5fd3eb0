"""The simulated borrowers: deterministic, persona-driven, with payments fixed by the attempt."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime

import pytest

from activities.channels import Delivery
from overdue.simulator import PERSONAS, BorrowerSimulator, SimulatedProvider
from workflows.commands import ContactRequest
from workflows.types import Channel, Outcome, PaymentReceived, Target

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
) -> Delivery:
    request = ContactRequest(
        idempotency_key=key,
        loan_id="loan-1",
        borrower_id=borrower_id,
        attempt_no=1,
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
    # prompt_payer has weight 30 of 100.
    assert 0.25 < picked["prompt_payer"] / 2000 < 0.35
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


def test_partial_payers_pay_half_or_clear() -> None:
    amounts = Counter(p.amount_minor for p in _payments("partial_payer", n=600))
    assert set(amounts) == {50_000, 100_000}
    assert amounts[50_000] > amounts[100_000]


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
