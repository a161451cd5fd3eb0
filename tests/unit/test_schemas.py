"""The one validation layer: shared field rules, and errors that name the line and the field.

Property tests feed garbage to every input path: nothing but the layer's own error may come out.
"""

from __future__ import annotations

import copy
import csv
import tomllib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from activities.strategy import parse_strategy
from overdue.bankfile import NotABankFile, read_bank_file
from overdue.loans import CSV_COLUMNS, LoanInvalid, loan_from_fields, read_loan_book
from overdue.schemas import (
    ID_PATTERN,
    BankLineIn,
    Currency,
    FieldError,
    Identifier,
    Invalid,
    IsoDate,
    LoanIn,
    MajorAmount,
    Phone,
    TimeZoneName,
    field_name,
    validate,
)
from workflows.money import CURRENCY_EXPONENTS, format_minor, to_minor

from .support import DEFAULT_STRATEGY_PATH

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
GOOD_LOAN = {
    "loan_id": "L-1",
    "borrower_id": "B-1",
    "borrower_name": "Ann Lee",
    "phone": "+1 555 000 1000",
    "timezone": "America/Chicago",
    "product": "personal",
    "principal": "800.00",
    "outstanding": "250.00",
    "currency": "usd",
    "due_date": "2026-03-01",
    "jurisdiction": "US",
    "contacts": "R-1|Eve Fox|555-000-5000|friend",
}
with DEFAULT_STRATEGY_PATH.open("rb") as _file:
    RAW_STRATEGY = tomllib.load(_file)


class Fields(BaseModel):
    """Each shared rule on its own, as any model declares it."""

    id: Identifier | None = None
    currency: Currency | None = None
    amount: MajorAmount | None = None
    zone: TimeZoneName | None = None
    day: IsoDate | None = None
    jurisdiction: str | None = None
    phone: Phone | None = None


def problems(**values: Any) -> list[str]:
    try:
        validate(Fields, values)
    except Invalid as invalid:
        return [str(e) for e in invalid.errors]
    return []


# --- the shared rules -----------------------------------------------------------------------


@given(st.text(max_size=80))
def test_an_id_is_accepted_exactly_when_it_matches_the_pattern(text: str) -> None:
    accepted = not problems(id=text)
    assert accepted == bool(ID_PATTERN.fullmatch(text))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"id": "has space"}, "id: use letters, digits, _ . : - (at most 64)"),
        ({"currency": "XXX"}, "currency: unknown currency 'XXX'"),
        ({"currency": "USD", "amount": "1.005"}, "amount: 1.005 has more than 2 decimal places"),
        ({"currency": "JPY", "amount": "1.5"}, "amount: 1.5 has more than 0 decimal places"),
        ({"currency": "USD", "amount": "-5"}, "amount: must be positive, got -5"),
        ({"currency": "USD", "amount": 12.5}, 'amount: must be a decimal string such as "125.00"'),
        ({"zone": "Mars/Olympus_Mons"}, "zone: 'Mars/Olympus_Mons' is not an IANA time zone"),
        ({"zone": "Asia"}, "zone: 'Asia' is not an IANA time zone"),  # a folder of zones
        ({"zone": "x" * 5000}, "zone: "),  # too long for a file name
        ({"day": "2026-02-30"}, "day: '2026-02-30' is not a date (YYYY-MM-DD)"),
        ({"jurisdiction": "us", "phone": "12"}, "phone: '12' is not a phone number"),
        ({"jurisdiction": "us", "phone": "555-000"}, "phone: '555-000' is not a possible"),
    ],
)
def test_a_rule_names_its_field(values: dict[str, Any], expected: str) -> None:
    found = problems(**values)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_an_amount_is_not_checked_against_a_bad_currency() -> None:
    # The currency's own error is the one reported: the amount cannot be judged without it.
    assert problems(currency="XXX", amount="1.005") == [
        "currency: unknown currency 'XXX'; expected an ISO 4217 code such as USD or CNY"
    ]


@given(st.sampled_from(sorted(CURRENCY_EXPONENTS)), st.integers(min_value=1, max_value=10**15))
def test_an_amount_round_trips_through_minor_units(code: str, minor: int) -> None:
    text = format_minor(minor, code)
    checked = validate(Fields, {"currency": code.lower(), "amount": text})
    assert checked.currency == code
    assert checked.amount is not None and to_minor(checked.amount, code) == minor


@pytest.mark.parametrize(
    ("written", "jurisdiction", "stored"),
    [
        ("+1 (555) 000-1000", "us", "+15550001000"),
        ("555-000-1000", "us", "+15550001000"),
        ("138 0013 8000", "cn", "+8613800138000"),
        ("+8613800138000", "us", "+8613800138000"),
    ],
)
def test_a_phone_is_stored_in_e164_read_in_the_jurisdiction(
    written: str, jurisdiction: str, stored: str
) -> None:
    checked = validate(Fields, {"jurisdiction": jurisdiction, "phone": written})
    assert checked.phone == stored
    again = validate(Fields, {"jurisdiction": jurisdiction, "phone": stored})
    assert again.phone == stored


def test_a_date_is_stored_as_iso_text() -> None:
    assert validate(Fields, {"day": "20260301"}).day == "2026-03-01"


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("phone",), "phone"),
        (("slots", 2, "start"), "slots[2].start"),
        (("contacts", 0, "phone"), "contacts[0].phone"),
        (("fees", "failed_debit", "EUR", "[key]"), "fees.failed_debit.EUR"),
        ((), ""),
    ],
)
def test_a_field_is_named_as_a_reader_writes_it(loc: tuple[str | int, ...], name: str) -> None:
    assert field_name(loc) == name


# --- loans ----------------------------------------------------------------------------------


def test_a_good_loan_is_normalised() -> None:
    loan = loan_from_fields(GOOD_LOAN)
    assert (loan.currency, loan.jurisdiction) == ("USD", "us")
    assert (loan.principal_minor, loan.outstanding_minor) == (80_000, 25_000)
    assert loan.borrower.phone == "+15550001000"
    assert loan.contacts[0].phone == "+15550005000"


def test_every_bad_field_of_a_loan_is_named_at_once() -> None:
    with pytest.raises(LoanInvalid) as raised:
        loan_from_fields(
            {**GOOD_LOAN, "loan_id": "", "timezone": "Nowhere", "outstanding": "1,5"}, line=7
        )
    errors = raised.value.errors
    assert [(e.line, e.field) for e in errors] == [
        (7, "loan_id"),
        (7, "timezone"),
        (7, "outstanding"),
    ]
    assert str(errors[0]) == "line 7: loan_id: is required"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("contacts", "field"),
    [
        ("R-1|Eve", "contacts"),
        ("R 1|Eve|+15550005000|friend", "contacts[0].contact_id"),
        ("R-1|Eve|+15550005000|friend;R-2|Gus|abc|sibling", "contacts[1].phone"),
        ("R-1| |+15550005000|friend", "contacts[0].name"),
        ("R-1|Eve|+15550005000|friend;R-1|Gus|+15550006000|sibling", "contacts"),
    ],
)
def test_a_bad_contact_is_named_by_its_place(contacts: str, field: str) -> None:
    with pytest.raises(LoanInvalid) as raised:
        loan_from_fields({**GOOD_LOAN, "contacts": contacts})
    assert [e.field for e in raised.value.errors] == [field]


def test_a_loan_body_may_list_its_contacts() -> None:
    # The shape an HTTP body would use: the same rules, without the file's text form.
    body = {
        **GOOD_LOAN,
        "contacts": [
            {"contact_id": "R-1", "name": "Eve", "phone": "5550005000", "relation": "friend"}
        ],
    }
    assert validate(LoanIn, body).to_loan().contacts[0].phone == "+15550005000"


def test_a_loan_book_names_line_and_field() -> None:
    header = ",".join(CSV_COLUMNS)
    good = ",".join(str(GOOD_LOAN[c]) for c in CSV_COLUMNS)
    bad = good.replace("America/Chicago", "Mars/Base")
    book = read_loan_book(f"{header}\n{good}\n{bad}\n")
    assert [loan.loan_id for loan in book.loans] == ["L-1"]
    assert book.errors == [
        FieldError("timezone", "'Mars/Base' is not an IANA time zone", 3),
    ]


TEXT_CELLS = st.one_of(st.none(), st.text(max_size=30), st.sampled_from(list(GOOD_LOAN.values())))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(CSV_COLUMNS), TEXT_CELLS))
def test_garbage_loan_fields_only_ever_raise_loan_invalid(values: dict[str, str | None]) -> None:
    try:
        loan = loan_from_fields({**GOOD_LOAN, **values}, line=2)
    except LoanInvalid as invalid:
        assert invalid.errors and all(e.line == 2 and e.field for e in invalid.errors)
    else:
        assert ID_PATTERN.fullmatch(loan.loan_id) and loan.borrower.phone.startswith("+")
        assert loan.outstanding_minor > 0


@given(st.text(max_size=400))
def test_a_garbage_loan_book_never_crashes(text: str) -> None:
    try:
        book = read_loan_book(text)
    except csv.Error:  # the CLI reports it as a file that is no loan book
        return
    assert all(e.line is not None and e.field for e in book.errors)


# --- bank lines -----------------------------------------------------------------------------


def test_a_bank_line_is_checked_by_the_same_rules() -> None:
    with pytest.raises(Invalid) as raised:
        validate(
            BankLineIn,
            {
                "payment_id": "P 1",
                "loan_id": "L-1",
                "amount": "1",
                "currency": "EUR?",
                "paid_at": "2026-03-01",
            },
            line=4,
            context={"now": NOW},
        )
    assert [str(e) for e in raised.value.errors] == [
        "line 4: payment_id: use letters, digits, _ . : - (at most 64)",
        "line 4: currency: unknown currency 'EUR?'; expected an ISO 4217 code such as USD or CNY",
    ]


@given(st.text(max_size=400))
def test_a_garbage_bank_file_is_one_problem_or_named_lines(text: str) -> None:
    header = "payment_id,loan_id,amount,currency,paid_at,reference\n"
    for candidate in (text, header + text):
        try:
            bank_file = read_bank_file(candidate, now=NOW)
        except NotABankFile:
            continue
        assert all(e.line is not None and e.line >= 2 and e.field for e in bank_file.errors)


# --- the strategy file ----------------------------------------------------------------------

TOML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


PATHS = _paths(RAW_STRATEGY)


@settings(max_examples=300)
@given(st.sampled_from(PATHS), TOML_VALUES)
def test_a_garbage_strategy_value_only_ever_raises_invalid(
    path: tuple[Any, ...], value: Any
) -> None:
    data = copy.deepcopy(RAW_STRATEGY)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        parse_strategy(data)
    except Invalid as invalid:
        assert invalid.errors and all(e.field and e.line is None for e in invalid.errors)
        assert "\n" not in str(invalid)


@given(st.dictionaries(st.text(max_size=8), TOML_VALUES, max_size=4))
def test_a_garbage_strategy_file_only_ever_raises_invalid(data: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        parse_strategy(data)


def test_a_strategy_error_is_a_value_error_not_a_pydantic_one() -> None:
    # Callers (the activity, the CLI) know ValueError; pydantic's own error never leaks.
    with pytest.raises(ValueError) as raised:
        parse_strategy({**RAW_STRATEGY, "stages": {"middle": 1}})
    assert not isinstance(raised.value, ValidationError)
    assert str(raised.value) == "stages: expected 1 < middle < late < legal"
