"""Loans from the outside world: phone numbers are stored in E.164, one way for one number."""

from __future__ import annotations

import pytest

from overdue.loans import LoanInvalid, loan_from_fields
from overdue.schemas import phone_number
from workflows import budget


def fields(**changes: str) -> dict[str, str]:
    values = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "Wang Fang",
        "phone": "138 0013 8000",
        "timezone": "Asia/Shanghai",
        "product": "personal",
        "principal": "1000.00",
        "outstanding": "500.00",
        "currency": "CNY",
        "due_date": "2026-11-20",
        "jurisdiction": "cn",
        "contacts": "R-1|Li Lei|13900139000|sibling",
    }
    return {**values, **changes}


@pytest.mark.parametrize(
    ("written", "region", "stored"),
    [
        ("+1 (555) 000-1000", "US", "+15550001000"),
        ("555-000-1000", "US", "+15550001000"),
        ("13800138000", "CN", "+8613800138000"),
        ("+86 138 0013 8000", "CN", "+8613800138000"),
        ("+8613800138000", "US", "+8613800138000"),  # a country code wins over the region
    ],
)
def test_numbers_are_stored_in_e164(written: str, region: str, stored: str) -> None:
    assert phone_number(written, region) == stored


def test_one_number_written_two_ways_is_one_budget() -> None:
    national = loan_from_fields(fields(phone="13800138000"))
    international = loan_from_fields(fields(phone="+86 138-0013-8000"))
    assert national.borrower.phone == international.borrower.phone == "+8613800138000"
    assert budget.number_key(national.borrower.phone) == budget.number_key(
        international.borrower.phone
    )
    assert national.contacts[0].phone == "+8613900139000"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("phone", "12", "phone"), ("contacts", "R-1|Li|12|sibling", "contacts[0].phone")],
)
def test_an_impossible_number_names_its_field(field: str, value: str, named: str) -> None:
    with pytest.raises(LoanInvalid) as raised:
        loan_from_fields(fields(**{field: value}))
    assert [e.field for e in raised.value.errors] == [named]
