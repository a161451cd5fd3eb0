"""The one set of input limits (``workflows.limits``): each rule, its edges and its messages."""

from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overdue.loanbook import read_rows
from workflows import limits
from workflows.limits import LimitError
from workflows.money import CURRENCY_EXPONENTS, AmountError, format_minor, to_minor
from workflows.types import (
    ContactOutcome,
    DisputeResolution,
    HoldRequest,
    PaymentReceived,
    Promise,
    ReviewDecision,
)
from workflows.vocabulary import Review

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def _refusal(check: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(LimitError) as raised:
        check(*args, **kwargs)  # type: ignore[operator]
    return str(raised.value)


# --- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "exponent", "minor"),
    [
        ("1.00", 2, 100),
        ("125", 2, 12_500),
        (" 0.5 ", 2, 50),
        (".5", 2, 50),
        ("5.", 2, 500),
        ("+3", 0, 3),
        ("000000000000001.10", 2, 110),
        ("92233720368547758.07", 2, limits.MAX_MINOR),
        ("9223372036854775807", 0, limits.MAX_MINOR),
    ],
)
def test_a_plain_decimal_becomes_minor_units(text: str, exponent: int, minor: int) -> None:
    assert limits.parse_amount(text, exponent) == minor


@pytest.mark.parametrize(
    ("text", "exponent", "message"),
    [
        ("1e999997", 2, "'1e999997' is not a decimal amount"),
        ("1E5", 2, "is not a decimal amount"),
        ("1_000", 2, "is not a decimal amount"),
        ("NaN", 2, "is not a decimal amount"),
        ("Infinity", 2, "is not a decimal amount"),
        ("", 2, "is not a decimal amount"),
        (".", 2, "is not a decimal amount"),
        ("-5", 2, "must be positive, got -5"),
        ("0.00", 2, "must be positive, got 0.00"),
        ("-0", 2, "must be positive"),
        ("1.005", 2, "1.005 has more than 2 decimal places"),
        ("1.5", 0, "1.5 has more than 0 decimal places"),
        ("99999999999999999999", 2, "more than 19 digits before the point"),
        ("92233720368547758.08", 2, "is too large: at most 92233720368547758.07"),
        ("9223372036854775808", 0, "is too large: at most 9223372036854775807"),
        ("1" * 41, 0, "is longer than 40 characters"),
    ],
)
def test_an_amount_outside_the_limits_says_why(text: str, exponent: int, message: str) -> None:
    assert message in _refusal(limits.parse_amount, text, exponent)


def test_a_huge_exponent_is_refused_at_once() -> None:
    # Read by Decimal and turned into an integer, this took a minute and froze the API.
    started = time.perf_counter()
    for text in ("1e999997", "1e1000000", "9" * 1_000_000, "1." + "0" * 1_000_000):
        with pytest.raises(LimitError):
            limits.parse_amount(text, 2)
    assert time.perf_counter() - started < 0.5


@given(
    st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    st.integers(min_value=1, max_value=limits.MAX_MINOR),
)
def test_every_amount_within_64_bits_round_trips(currency: str, minor: int) -> None:
    assert to_minor(format_minor(minor, currency), currency) == minor


@given(st.text(max_size=60), st.sampled_from([0, 2]))
def test_any_text_is_an_amount_within_limits_or_refused(text: str, exponent: int) -> None:
    try:
        minor = limits.parse_amount(text, exponent)
    except LimitError:
        return
    assert 0 < minor <= limits.MAX_MINOR


def test_money_refuses_through_the_limits() -> None:
    with pytest.raises(AmountError, match="is not a decimal amount"):
        to_minor("1e3", "USD")
    with pytest.raises(AmountError, match="unknown currency 'X"):
        to_minor("1", "X" * 10_000)


@pytest.mark.parametrize(
    ("minor", "message"),
    [(0, "must be positive, got 0"), (-1, "must be positive"), (2**63, "must be at most")],
)
def test_minor_units_are_positive_and_64_bit(minor: int, message: str) -> None:
    assert message in _refusal(limits.check_minor, minor)


# --- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["L-1", "PAY.2026:17_a", "a" * 64])
def test_a_good_id(value: str) -> None:
    assert limits.check_id(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is required"),
        ("P" * 65, "at most 64"),
        ("P" * 3000, "got 'PPPP"),
        ("L-1\n", "use letters"),  # `$` would match before the newline
        ("-L", "use letters"),
        ("L 1", "use letters"),
        ("L\x00", "use letters"),
        ("Ł-1", "use letters"),
    ],
)
def test_a_bad_id(value: str, message: str) -> None:
    refusal = _refusal(limits.check_id, value)
    assert message in refusal and len(refusal) < 120


# --- free text ------------------------------------------------------------------------------


def test_printable_text_in_any_script_is_accepted() -> None:
    for text in ("Ann Lee", "李娜", "José Ñúñez", "Zoë 👩‍👧", "O'Brien-Smith, Jr."):
        assert limits.check_text(text, max_length=200) == text


@pytest.mark.parametrize(
    ("text", "multiline", "message"),
    [
        ("a\x00b", False, "U+0000 at position 2; none is allowed"),
        ("a\x00b", True, "U+0000 at position 2; only tabs and line breaks are allowed"),
        ("bell\x07", True, "U+0007"),
        ("del\x7f", False, "U+007F"),
        ("c1\x85", False, "U+0085"),
        ("esc\x1b[31m", False, "U+001B"),
        ("two\nlines", False, "U+000A"),
        ("tab\there", False, "U+0009"),
        ("line\u2028sep", True, "U+2028"),
        ("lone \ud800 surrogate", True, "U+D800"),
        ("   ", False, "is empty"),
        ("x" * 201, False, "is longer than 200 characters"),
    ],
)
def test_control_characters_and_overlong_text_are_refused(
    text: str, multiline: bool, message: str
) -> None:
    assert message in _refusal(limits.check_text, text, max_length=200, multiline=multiline)


def test_a_note_may_hold_tabs_and_line_breaks() -> None:
    note = "called twice\r\n\tno answer\nwill retry"
    assert limits.check_text(note, max_length=1000, multiline=True) == note


@given(st.text(max_size=50))
def test_accepted_text_never_holds_a_control_character(text: str) -> None:
    try:
        limits.check_text(text, max_length=50, multiline=True)
    except LimitError:
        return
    assert all(c in "\t\n\r" or unicodedata.category(c) != "Cc" for c in text)
    text.encode("utf-8")  # PostgreSQL can store it: no NUL, no lone surrogate


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "message"),
    [
        (date(1, 1, 1), "0001-01-01 is before 1990-01-01"),
        (date(1989, 12, 31), "is before 1990-01-01"),
        (date(2030, 1, 1), "2030-01-01 is more than 366 days ahead (latest 2027-12-02)"),
        (date(9999, 12, 31), "is more than 366 days ahead"),
    ],
)
def test_an_absurd_due_date_is_refused(day: date, message: str) -> None:
    assert message in _refusal(limits.check_due_date, day, TODAY)


@pytest.mark.parametrize(
    "day", [date(1990, 1, 1), date(2026, 11, 20), TODAY, TODAY + timedelta(days=366)]
)
def test_a_plausible_due_date_is_accepted(day: date) -> None:
    assert limits.check_due_date(day, TODAY) == day


@pytest.mark.parametrize(
    ("moment", "message"),
    [
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))), "future"),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), "is before 1990-01-01"),
        (datetime(1, 1, 1, tzinfo=UTC), "is before 1990-01-01"),
        (datetime(1989, 12, 31, 23, 0, tzinfo=UTC), "is before 1990-01-01"),
        (NOW + timedelta(minutes=6), "is in the future"),
        (datetime(2026, 3, 2, 9, 30), "must carry a time zone"),
    ],
)
def test_an_absurd_payment_time_is_refused(moment: datetime, message: str) -> None:
    assert message in _refusal(limits.check_paid_at, moment, NOW)


def test_a_payment_time_is_utc_and_may_be_a_little_ahead() -> None:
    ahead = NOW + timedelta(minutes=4)
    assert limits.check_paid_at(ahead.astimezone(timezone(timedelta(hours=8))), NOW) == ahead
    first = datetime(1990, 1, 1, tzinfo=UTC)
    assert limits.check_paid_at(first, NOW) == first


def test_without_now_only_the_floor_is_checked() -> None:
    # The collection's validator: its clock may be compressed, and runs ahead of the wall's.
    assert limits.check_paid_at(NOW + timedelta(days=400), None) == NOW + timedelta(days=400)
    latest = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14)))
    assert "is out of range" in _refusal(limits.check_paid_at, latest, None)


@given(st.datetimes(timezones=st.timezones()))
def test_any_payment_time_is_checked_without_an_overflow(moment: datetime) -> None:
    try:
        utc = limits.check_paid_at(moment, NOW)
    except LimitError:
        return
    assert limits.EARLIEST_MOMENT <= utc <= NOW + limits.CLOCK_SKEW


def test_a_promise_is_at_most_a_year_ahead() -> None:
    assert limits.check_promise_date(TODAY + timedelta(days=366), TODAY)
    assert "more than 366 days ahead" in _refusal(
        limits.check_promise_date, date(9999, 12, 31), TODAY
    )


# --- messages the validators give -----------------------------------------------------------


def _payment(**change: object) -> PaymentReceived:
    fields: dict[str, object] = {
        "payment_id": "PAY-1",
        "amount_minor": 100,
        "currency": "USD",
        "paid_at": NOW,
        "source": "api",
    }
    return PaymentReceived(**{**fields, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({}, None),
        ({"payment_id": "P" * 3000}, "payment_id: use letters"),
        ({"amount_minor": 10**22}, "amount_minor: must be at most"),
        ({"amount_minor": 0}, "amount_minor: must be positive"),
        (
            {"paid_at": datetime(1, 1, 1, tzinfo=UTC)},
            "paid_at: 0001-01-01T00:00:00+00:00 is before",
        ),
        ({"source": "bank\x00"}, "source: use letters"),
    ],
)
def test_a_payment_outside_the_limits_is_named(
    change: dict[str, object], message: str | None
) -> None:
    problem = limits.payment_problem(_payment(**change))
    assert problem == message if message is None else (problem or "").startswith(message)


@pytest.mark.parametrize(
    ("request_", "pause", "message"),
    [
        (HoldRequest(reason="fraud check", operator="ops:ann"), True, None),
        (HoldRequest(reason="", operator="ops:ann"), False, None),
        (HoldRequest(reason=" ", operator="ops:ann"), True, "reason: is required"),
        (HoldRequest(reason="a\x00", operator="ops:ann"), True, "reason: holds the control"),
        (HoldRequest(reason="x", operator="o" * 201), True, "operator: is longer than 200"),
        (HoldRequest(reason="x", request_id="R 1"), True, "request_id: use letters"),
    ],
)
def test_a_hold_outside_the_limits_is_named(
    request_: HoldRequest, pause: bool, message: str | None
) -> None:
    problem = limits.hold_problem(request_, pause=pause)
    assert problem == message if message is None else (problem or "").startswith(message)


def test_a_schedule_date_is_from_1990_to_sixty_years_ahead() -> None:
    assert limits.check_schedule_date(date(2070, 1, 1), TODAY) == date(2070, 1, 1)
    assert "is before 1990-01-01" in _refusal(limits.check_schedule_date, date(1, 1, 1), TODAY)
    assert "is after" in _refusal(limits.check_schedule_date, date(9999, 12, 31), TODAY)


def test_a_loan_book_sync_line_is_held_to_the_limits(tmp_path: Path) -> None:
    # ``overdue loans sync`` reads rows with the same rules as ``overdue import``.
    lines = [
        {"borrower_name": "Ann\x00Lee"},
        {"schedule": [{"due_date": "0001-01-01", "amount_due": "10.00"}]},
        {"schedule": [{"due_date": "2026-11-01", "amount_due": "99999999999999999999"}]},
        {"schedule": [{"due_date": "2026-11-01", "amount_due": "10.00", "amount_paid": "0"}]},
    ]
    good = {
        "loan_id": "L-1",
        "borrower_id": "B-1",
        "borrower_name": "Ann Lee",
        "phone": "+15550100",
        "timezone": "America/New_York",
        "product": "personal",
        "principal": "10.00",
        "currency": "USD",
        "jurisdiction": "us",
        "schedule": [{"due_date": "2026-11-01", "amount_due": "10.00"}],
    }
    path = tmp_path / "book.jsonl"
    path.write_text("".join(json.dumps({**good, **line}) + "\n" for line in lines))
    rows = list(read_rows(path))
    assert [[(e.line, e.field) for e in row.errors] for row in rows] == [
        [(1, "borrower_name")],
        [(2, "schedule[0].due_date")],
        [(3, "schedule[0].amount_due")],
        [],
    ]
    assert rows[3].loan is not None and rows[3].loan.loan.outstanding_minor == 1_000


def test_signals_are_held_to_the_limits() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    outcome = ContactOutcome(outcome_id="O-1", source="dialer:east-1", at=at, note="ok\ncalled")
    assert limits.outcome_problem(outcome) is None
    assert limits.outcome_problem(replace(outcome, note="a\x00b")) == (
        "note: holds the control character U+0000 at position 2;"
        " only tabs and line breaks are allowed"
    )
    assert (limits.outcome_problem(replace(outcome, outcome_id="O 1")) or "").startswith(
        "outcome_id:"
    )
    too_much = replace(outcome, promise=Promise(2**63, "2026-12-05"))
    assert (limits.outcome_problem(too_much) or "").startswith("promise.amount_minor:")
    decision = ReviewDecision("D-1", Review.HARDSHIP, "approved", "ops:ann", at)
    assert limits.decision_problem(decision) is None
    assert (limits.decision_problem(replace(decision, by="x" * 201)) or "").startswith("by:")
    resolution = DisputeResolution("R-1", upheld=True, at=at, note="checked\tfine")
    assert limits.resolution_problem(resolution) is None
    assert (limits.resolution_problem(replace(resolution, note="\x1b[2J")) or "").startswith(
        "note:"
    )
