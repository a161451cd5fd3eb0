"""The ledger's payment checks and the payment path's messages: one rule, one wording."""

from __future__ import annotations

from datetime import UTC, datetime

from overdue.ledger import (
    PaymentConflict,
    PaymentInvalid,
    field_named,
    payment_problem,
    same_payment,
)
from workflows.types import PaymentReceived


def _payment(amount_minor: int = 1_000, currency: str = "USD") -> PaymentReceived:
    return PaymentReceived("PAY-1", amount_minor, currency, datetime.now(UTC), "bank")


def test_a_payment_fits_a_loan_in_its_currency_with_a_positive_amount() -> None:
    assert payment_problem(_payment(), "USD") is None
    assert payment_problem(_payment(currency="EUR"), "USD") == (
        "currency: EUR does not match the loan's USD"
    )
    assert payment_problem(_payment(0), "USD") == "amount_minor: must be positive, got 0"


def test_a_recorded_payment_is_the_same_by_loan_amount_and_currency() -> None:
    # ``payments.currency`` is char(3); time and source are not compared (a bank may restamp).
    recorded = {"loan_id": "L-1", "amount_minor": 1_000, "currency": "USD"}
    assert same_payment(recorded, "L-1", _payment())
    assert same_payment({**recorded, "currency": "USD "}, "L-1", _payment())
    assert not same_payment(recorded, "L-2", _payment())
    assert not same_payment(recorded, "L-1", _payment(1_001))
    assert not same_payment(recorded, "L-1", _payment(currency="EUR"))


def test_a_conflict_is_a_refusal_naming_the_payment_id() -> None:
    conflict = PaymentConflict("PAY-1")
    assert isinstance(conflict, PaymentInvalid)
    assert str(conflict).startswith("payment_id: PAY-1 ")


def test_the_workflow_s_refusals_name_their_field_with_a_colon() -> None:
    assert field_named("currency EUR does not match the loan's USD") == (
        "currency: EUR does not match the loan's USD"
    )
    assert field_named("amount_minor must be positive, got -5") == (
        "amount_minor: must be positive, got -5"
    )
    assert field_named("payment_id: X is taken") == "payment_id: X is taken"
    assert field_named("Something else went wrong") == "Something else went wrong"
