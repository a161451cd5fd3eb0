"""The limits every input from outside is held to, as pure rules (stdlib only).

One set, shared: the HTTP API's bodies and the loan-book and bank-file lines (through
``overdue.schemas``), the CLI's arguments, contact outcomes (``overdue.outcomes``), and the
collection's update validators and signal handlers (``workflows.collection.workflow``) all call
these functions. A value that passes here fits everything downstream: PostgreSQL's ``bigint`` and
``text`` (no NUL), a btree index entry, a Temporal ``Int`` search attribute, a workflow id, and
the workflow's date arithmetic. Each limit is listed with where it is checked in
docs/limits.md; why these values, in docs/decisions.md ("Limits at the edge").

Every rule raises ``LimitError`` whose message says what is wrong without naming the field: the
caller knows the field and prefixes it (``amount: must be positive, got -5``). Rules that parse
text look at its length and shape before any numeric parsing, so that no input can make one
costly (``1e999997`` is refused as text, never turned into a million-digit number).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from workflows.queue import CaseAction
from workflows.types import (
    ContactOutcome,
    DisputeResolution,
    HoldRequest,
    LoanChanged,
    PaymentReceived,
    ReviewDecision,
)


class LimitError(ValueError):
    """A value outside the limits; the message says why, without the field's name."""


# --- ids ------------------------------------------------------------------------------------

ID_MAX_LENGTH = 64
# Loan, borrower, payment, outcome, contact and request ids end up in workflow ids, URLs, ledger
# keys and index entries: a short, printable, ASCII alphabet. Matched whole (``fullmatch``), so a
# trailing newline is not taken for the end of the text as ``$`` would.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
ID_RULE = "use letters, digits, _ . : - (at most 64)"


def check_id(value: str) -> str:
    """An id as it is given, or ``LimitError``."""
    if not value:
        raise LimitError("is required")
    if len(value) > ID_MAX_LENGTH or not ID_PATTERN.fullmatch(value):
        raise LimitError(f"{ID_RULE}, got {shown(value)}")
    return value


# --- money ----------------------------------------------------------------------------------

# Minor units are stored as PostgreSQL ``bigint`` and published as Temporal ``Int`` search
# attributes: both are signed 64-bit.
MAX_MINOR = 2**63 - 1
MAX_MINOR_DIGITS = len(str(MAX_MINOR))  # 19
# No amount in a currency the product accepts needs more text than this (19 digits, a point,
# decimal places and a little zero padding); longer text is refused before it is read.
MAX_AMOUNT_TEXT = 40
# Digits with an optional point, and a sign only to say "negative" clearly. No exponent, no
# underscores, no NaN or Infinity: what Python's Decimal would also accept is refused here.
AMOUNT_TEXT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")


def check_minor(amount_minor: int) -> int:
    """An amount in minor units: positive and within 64 bits, or ``LimitError``."""
    if amount_minor <= 0:
        raise LimitError(f"must be positive, got {amount_minor}")
    if amount_minor > MAX_MINOR:
        raise LimitError(f"must be at most {MAX_MINOR} minor units, got {amount_minor}")
    return amount_minor


def check_amount_text(text: str) -> tuple[str, str, str]:
    """The shape of a decimal amount, before any parsing: ``(sign, whole, fraction)``.

    Raises:
        LimitError: too long, not plain decimal digits (an exponent, a word), or more whole
            digits than any amount within 64 bits has.
    """
    if len(text) > MAX_AMOUNT_TEXT:
        raise LimitError(f"is longer than {MAX_AMOUNT_TEXT} characters")
    text = text.strip()
    found = AMOUNT_TEXT.fullmatch(text)
    if found is None or not (found.group(2) or found.group(3)):
        raise LimitError(f"{shown(text)} is not a decimal amount (digits, and a point: 125.00)")
    sign, whole, fraction = found.group(1), found.group(2).lstrip("0"), found.group(3) or ""
    if len(whole) > MAX_MINOR_DIGITS:
        raise LimitError(
            f"{text} is too large: more than {MAX_MINOR_DIGITS} digits before the point"
        )
    return sign, whole, fraction


def parse_amount(text: str, exponent: int, *, allow_zero: bool = False) -> int:
    """Decimal text in major units (``"1234.56"``) as minor units of a currency whose minor-unit
    exponent is ``exponent`` (2 for USD, 0 for JPY).

    Raises:
        LimitError: not a plain decimal, negative (or zero, unless ``allow_zero``: an
            instalment's amount paid), more decimal places than the currency has, or beyond 64
            bits of minor units.
    """
    sign, whole, fraction = check_amount_text(text)
    shown_text = text.strip()
    places = fraction.rstrip("0")
    if len(places) > exponent:
        raise LimitError(f"{shown_text} has more than {exponent} decimal places")
    minor = int((whole + places.ljust(exponent, "0")) or "0")
    if (sign == "-" and minor) or (minor == 0 and not allow_zero):
        raise LimitError(
            f"must be {'zero or more' if allow_zero else 'positive'}, got {shown_text}"
        )
    if minor > MAX_MINOR:
        most = str(MAX_MINOR)
        largest = f"{most[:-exponent]}.{most[-exponent:]}" if exponent else most
        raise LimitError(f"{shown_text} is too large: at most {largest}")
    return minor


# --- free text ------------------------------------------------------------------------------

NAME_MAX = 200  # a person's or product's name, a relation
SHORT_TEXT_MAX = 200  # a reason, who reported or decided something
REFERENCE_MAX = 140  # a bank's payment reference
NOTE_MAX = 1000  # a collector's or reviewer's note
SOURCE_MAX = 100  # who reports: ``kind:name``
# References a borrower named, on one loan: each is a row in the ledger and travels in every
# workflow payload of the loan.
MAX_CONTACTS = 20
MAX_RISK_SCORE = 1000  # a lender's risk score, on its own scale up to this
# In a multi-line note only: what a note typed in a form or a terminal holds.
LINE_BREAKS = frozenset("\t\n\r")
# Control characters (NUL among them, which PostgreSQL text cannot hold), lone surrogates
# (not encodable as UTF-8) and Unicode's line and paragraph separators (which break a one-line
# value where it is printed).
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_text(value: str, *, max_length: int, multiline: bool = False) -> str:
    """Free text as it is given: not blank, at most ``max_length`` characters, printable.

    ``multiline`` allows tabs and line breaks (notes only); no other control character is ever
    accepted.

    Raises:
        LimitError: blank, too long, or holding a refused character (named by its code point).
    """
    if len(value) > max_length:
        raise LimitError(f"is longer than {max_length} characters")
    if not value.strip():
        raise LimitError("is empty")
    for position, char in enumerate(value):
        if multiline and char in LINE_BREAKS:
            continue
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise LimitError(
                f"holds the control character U+{ord(char):04X} at position {position + 1};"
                + (" only tabs and line breaks are allowed" if multiline else " none is allowed")
            )
    return value


# --- dates ----------------------------------------------------------------------------------

# Nothing the product handles is dated before this: no due date, no payment.
EARLIEST_DATE = date(1990, 1, 1)
EARLIEST_MOMENT = datetime.combine(EARLIEST_DATE, datetime.min.time(), UTC)
# A collection is started for a missed due date, or for one about to be missed: a due date
# further ahead than this is a loan book of the wrong loans.
DUE_DATE_HORIZON = timedelta(days=366)
# A repayment schedule of the loan book runs up to fifty years (600 monthly instalments), from
# the loan's start; its dates lie in this window.
SCHEDULE_HORIZON = timedelta(days=366 * 60)
# A promise to pay, or anything else planned, further ahead than this is a typing error.
PROMISE_HORIZON = timedelta(days=366)
# Payment services' and banks' clocks drift: a payment dated a little ahead of ours is still a
# payment received. Anything later is refused as in the future.
CLOCK_SKEW = timedelta(minutes=5)


def check_due_date(day: date, today: date) -> date:
    """A loan's missed due date: from ``EARLIEST_DATE`` to ``DUE_DATE_HORIZON`` after ``today``.

    Raises:
        LimitError: outside the window.
    """
    if day < EARLIEST_DATE:
        raise LimitError(f"{day.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    latest = today + DUE_DATE_HORIZON
    if day > latest:
        raise LimitError(
            f"{day.isoformat()} is more than {DUE_DATE_HORIZON.days} days ahead (latest"
            f" {latest.isoformat()})"
        )
    return day


def check_schedule_date(day: date, today: date) -> date:
    """A date of a loan book's repayment schedule: from ``EARLIEST_DATE`` to
    ``SCHEDULE_HORIZON`` after ``today``.

    Raises:
        LimitError: outside the window.
    """
    if day < EARLIEST_DATE:
        raise LimitError(f"{day.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    latest = today + SCHEDULE_HORIZON
    if day > latest:
        raise LimitError(f"{day.isoformat()} is after {latest.isoformat()}")
    return day


def check_promise_date(day: date, today: date) -> date:
    """A date promised: not further than ``PROMISE_HORIZON`` after ``today``. (Whether it is in
    the past is judged on the borrower's calendar, by the caller that knows the loan.)"""
    latest = today + PROMISE_HORIZON
    if day > latest:
        raise LimitError(
            f"{day.isoformat()} is more than {PROMISE_HORIZON.days} days ahead (latest"
            f" {latest.isoformat()})"
        )
    return day


def check_paid_at(moment: datetime, now: datetime | None) -> datetime:
    """When a payment was received, in UTC: with a time zone, not before ``EARLIEST_MOMENT``,
    and (when ``now`` is given) not later than ``now`` plus ``CLOCK_SKEW``.

    The ledger does not know when a loan was disbursed, only its missed due date, and a payment
    may precede that date; so the floor is the product's, not the loan's.

    Raises:
        LimitError: no time zone, or outside the window.
    """
    offset = moment.utcoffset() if moment.tzinfo is not None else None
    if offset is None:
        raise LimitError("must carry a time zone")
    # The local date first: converting 9999-12-31T23:59:59-14:00 to UTC would overflow.
    if moment.date() < EARLIEST_DATE - timedelta(days=1):
        raise LimitError(f"{moment.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    if now is not None and moment.date() > now.date() + timedelta(days=2):
        raise LimitError(f"{moment.isoformat()} is in the future")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # within a day of year 9999: nothing is paid then
        raise LimitError(f"{moment.isoformat()} is out of range") from None
    if utc < EARLIEST_MOMENT:
        raise LimitError(f"{moment.isoformat()} is before {EARLIEST_DATE.isoformat()}")
    if now is not None and utc > now + CLOCK_SKEW:
        raise LimitError(f"{moment.isoformat()} is in the future")
    return utc


# --- messages -------------------------------------------------------------------------------


def payment_problem(
    payment: PaymentReceived, now: datetime | None = None, *, positive: bool = True
) -> str | None:
    """Why a payment is outside the limits, naming the field (``payment_id: ...``), or None.

    Whether it fits its loan (the currency) is the collection's rule
    (``workflows.collection.rules.payment_problem``). Without ``now`` (the collection's update
    validator, whose clock may be compressed) only the floor of ``paid_at`` is checked. Without
    ``positive`` (the ``payment_received`` signal) an amount of zero or less passes: it is the
    collection's to reject and audit; only one the ledger could not hold is outside the limits.
    """
    amount = payment.amount_minor if positive else max(1, abs(payment.amount_minor))
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        ("payment_id", lambda: check_id(payment.payment_id)),
        ("amount_minor", lambda: check_minor(amount)),
        ("paid_at", lambda: check_paid_at(payment.paid_at, now)),
        ("source", lambda: check_id(payment.source)),
    )
    return _first_problem(checks)


def hold_problem(request: HoldRequest, *, pause: bool) -> str | None:
    """Why an operator's pause or resume is outside the limits, naming the field, or None.

    A pause must say why; a resume may.
    """
    if pause and not request.reason.strip():
        return "reason: is required to pause a collection"
    checks: list[tuple[str, Callable[[], object]]] = [
        ("operator", lambda: check_text(request.operator, max_length=SHORT_TEXT_MAX)),
    ]
    if request.reason:
        checks.insert(0, ("reason", lambda: check_text(request.reason, max_length=SHORT_TEXT_MAX)))
    if request.request_id:
        checks.append(("request_id", lambda: check_id(request.request_id)))
    return _first_problem(checks)


def outcome_problem(outcome: ContactOutcome) -> str | None:
    """Why a reported outcome is outside the limits, naming the field, or None: what the
    ``contact_outcome`` signal refuses from a source that skipped ``overdue.outcomes``."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("outcome_id", lambda: check_id(outcome.outcome_id)),
        ("source", lambda: check_text(outcome.source, max_length=SOURCE_MAX)),
    ]
    if outcome.note is not None:
        checks.append(
            ("note", lambda: check_text(outcome.note or "", max_length=NOTE_MAX, multiline=True))
        )
    if outcome.death_reported_by is not None:
        checks.append(
            (
                "death_reported_by",
                lambda: check_text(outcome.death_reported_by or "", max_length=SHORT_TEXT_MAX),
            )
        )
    if outcome.hardship is not None:
        hardship = outcome.hardship
        checks.append(
            ("hardship.reason", lambda: check_text(hardship.reason, max_length=SHORT_TEXT_MAX))
        )
    if outcome.promise is not None:
        promise = outcome.promise
        checks.append(("promise.amount_minor", lambda: check_minor(promise.amount_minor)))
    if outcome.attempt_key is not None:
        checks.append(
            ("attempt_key", lambda: check_text(outcome.attempt_key or "", max_length=NAME_MAX))
        )
    return _first_problem(checks)


def decision_problem(decision: ReviewDecision) -> str | None:
    """Why a person's decision (``review_decided``) is outside the limits, or None."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("decision_id", lambda: check_id(decision.decision_id)),
        ("by", lambda: check_text(decision.by, max_length=SHORT_TEXT_MAX)),
    ]
    if decision.note is not None:
        checks.append(
            ("note", lambda: check_text(decision.note or "", max_length=NOTE_MAX, multiline=True))
        )
    return _first_problem(checks)


def resolution_problem(resolution: DisputeResolution) -> str | None:
    """Why a dispute's resolution (``dispute_resolved``) is outside the limits, or None."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("resolution_id", lambda: check_id(resolution.resolution_id)),
    ]
    if resolution.note is not None:
        checks.append(
            ("note", lambda: check_text(resolution.note or "", max_length=NOTE_MAX, multiline=True))
        )
    return _first_problem(checks)


def case_action_problem(action: CaseAction) -> str | None:
    """Why an operator's action on a case is outside the limits, naming the field, or None."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("action_id", lambda: check_id(action.action_id)),
        ("case_id", lambda: check_text(action.case_id, max_length=SHORT_TEXT_MAX)),
        ("operator", lambda: check_text(action.operator, max_length=SHORT_TEXT_MAX)),
    ]
    if action.assign_to:
        checks.append(
            ("assign_to", lambda: check_text(action.assign_to, max_length=SHORT_TEXT_MAX))
        )
    if action.note:
        checks.append(
            ("note", lambda: check_text(action.note, max_length=NOTE_MAX, multiline=True))
        )
    if not action.operator.strip():
        return "operator: is required to act on a case"
    return _first_problem(checks)


MAX_BOOK_PAYMENTS = 2000  # payments one version of a loan may list


def loan_change_problem(change: LoanChanged) -> str | None:
    """Why a change of the loan book (``loan_changed``) is outside the limits, or None."""

    def amounts() -> object:
        for amount in (change.overdue_minor, change.outstanding_minor):
            if amount:
                check_minor(amount)
        if change.overdue_minor > change.outstanding_minor:
            raise LimitError("is more than outstanding_minor")
        return None

    def oldest_unpaid_due() -> object:
        if change.oldest_unpaid_due is None:
            return None
        try:
            return date.fromisoformat(change.oldest_unpaid_due)
        except ValueError:
            raise LimitError(f"{shown(change.oldest_unpaid_due)} is not an ISO date") from None

    def payments() -> object:
        if len(change.payments) > MAX_BOOK_PAYMENTS:
            raise LimitError(f"at most {MAX_BOOK_PAYMENTS}, got {len(change.payments)}")
        for n, payment in enumerate(change.payments):
            problem = payment_problem(payment)
            if problem is not None:
                raise LimitError(f"[{n}].{problem}")
        return None

    checks: list[tuple[str, Callable[[], object]]] = [
        ("version", lambda: check_minor(change.version)),
        ("overdue_minor", amounts),
        ("oldest_unpaid_due", oldest_unpaid_due),
        ("payments", payments),
    ]
    return _first_problem(checks)


def _first_problem(checks: Iterable[tuple[str, Callable[[], object]]]) -> str | None:
    for field, check in checks:
        try:
            check()
        except LimitError as problem:
            return f"{field}: {problem}"
    return None


# --- quoting --------------------------------------------------------------------------------


def shown(value: object) -> str:
    """``value`` as an error quotes it: its repr, cut short, since garbage may be megabytes."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:56]}...{text[-1]}"
