"""One validation layer: every input from outside goes through a pydantic model defined here.

Loan-book rows (``overdue import``, ``overdue start``), bank-file lines (``overdue payments
import``), the strategy file (``activities/strategy.py``) and the HTTP API (``overdue/api.py``)
all check their fields with the rules below, so that a rule is written once: a loan id, a
currency, an amount in a currency's minor units, a phone number in E.164, an IANA time zone, a
date. A model only checks and normalises; building the workflow's dataclasses
(``workflows.types``) from a valid model is the caller's one-liner.

Errors: a rule raises ``invalid(message)``; pydantic records where it was (the field, and in a
list or table the entry) and goes on, so one pass finds every problem. ``field_errors`` turns
pydantic's report into ``FieldError`` items that name the line (for files) and the field
(``phone``, ``slots[2].start``, ``contacts[0].phone``), worded the same for every input.

Limits: every id, amount, free text and date is held to ``workflows.limits``, the one set of
limits the CLI and the collection's update validator apply too (docs/limits.md lists them).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from overdue.languages import DEFAULT_BY_JURISDICTION, LANGUAGES, language_tag
from workflows import limits
from workflows.limits import ID_MAX_LENGTH, ID_PATTERN, ID_RULE, LimitError, shown
from workflows.money import AmountError, check_currency, to_minor
from workflows.profiles import PROFILES
from workflows.types import Borrower, Contact, Loan

__all__ = ["ID_PATTERN", "ID_RULE", "shown"]  # re-exported: the edge's modules import them here

# The id rule as the OpenAPI document and FastAPI's path check write it: anchored, since a
# schema pattern is searched, not matched whole.
ID_SCHEMA_PATTERN = f"^{ID_PATTERN.pattern}$"
# A first look at a phone number before libphonenumber reads it: digits and the usual
# punctuation only (libphonenumber would turn letters into digits), and a bounded length.
PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")
# Where a number written without its country code is read: the jurisdiction's country.
PHONE_REGIONS = {"cn": "CN", "us": "US"}

M = TypeVar("M", bound=BaseModel)

# --- errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem of an input: the field it concerns, and the line for a file."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}"


class Invalid(ValueError):
    """An input with problems, every one of them named; its message is one line."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = list(errors)


def invalid(message: str, *, at: str | tuple[str | int, ...] = ()) -> PydanticCustomError:
    """The error a rule raises. ``at`` names the entry below the field at fault, for a rule that
    checks a whole table (``messages`` names ``reference_locate``)."""
    # The message goes in the context, not the template: text from the input may hold braces.
    context: dict[str, Any] = {"reason": message}
    if at:
        context["at"] = at if isinstance(at, tuple) else (at,)
    return PydanticCustomError("overdue", "{reason}", context)


def field_name(loc: Sequence[str | int]) -> str:
    """Where an error is, as a reader writes it: ``slots[2].start``, ``fees.failed_debit.EUR``."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for a bad key: the key itself names it
            # A key from the input is quoted when it would break the one-line message.
            text = part if part.isprintable() and len(part) <= 60 else shown(part)
            name += f".{text}" if name else text
    return name


def describe(error: Mapping[str, Any]) -> str:
    """The message of one pydantic error, in this project's words where pydantic's differ."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    if kind == "string_too_long":
        return f"at most {context['max_length']} characters"
    if kind == "greater_than_equal":
        return f"must be at least {context['ge']}, got {shown(error['input'])}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {shown(error['input'])}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {shown(error['input'])}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a table of fields, got {type(error['input']).__name__}"
    return str(error["msg"]).removeprefix("Value error, ")


def field_errors(error: ValidationError, *, line: int | None = None) -> list[FieldError]:
    """Every problem pydantic found, each naming its field (and ``line``, for a file)."""
    found = []
    for detail in error.errors(include_url=False):
        at = (detail.get("ctx") or {}).get("at", ())
        name = field_name((*detail["loc"], *at)) or "input"
        found.append(FieldError(name, describe(detail), line))
    return found


def validate(model: type[M], values: object, *, line: int | None = None, context: Any = None) -> M:
    """``values`` checked by ``model``.

    Raises:
        Invalid: every problem, each naming its field (and ``line``, for a file).
    """
    try:
        return model.model_validate(values, context=context)
    except ValidationError as error:
        raise Invalid(field_errors(error, line=line)) from None


def cell_items(
    value: str, names: Sequence[str], *, shape: str, optional: int = 0
) -> list[dict[str, str]]:
    """A CSV cell holding a list: ``;``-separated items of ``|``-separated parts
    (``c1|Bo Chen|+1 202 555 0101|sibling;...``), as the dicts a model takes, keyed by
    ``names``. The last ``optional`` parts of an item may be left out; an item of another
    length is refused as not of ``shape``."""
    items = []
    for item in filter(None, (part.strip() for part in value.split(";"))):
        parts = [p.strip() for p in item.split("|")]
        if not len(names) - optional <= len(parts) <= len(names):
            raise invalid(f"{shown(item)} is not {shape}")
        items.append(dict(zip(names, parts, strict=False)))
    return items


def cells(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A CSV row as a model takes it: cells trimmed, and a blank cell read as a missing one, so
    that it is reported as ``is required`` rather than as a malformed value."""
    return {
        key: value.strip() if isinstance(value, str) else value
        for key, value in row.items()
        if isinstance(key, str)
        and value is not None
        and not (isinstance(value, str) and not value.strip())
    }


class CsvRows:
    """A CSV file's lines (its text in a ``StringIO``, or an open file), read row by row with
    ``csv.DictReader`` (``reader``: its header).

    ``rows`` gives each row with its line number. A line the csv module refuses (a cell over its
    size limit, a bare carriage return) comes as a ``FieldError`` naming ``line``, and the lines
    after it are still read: one bad line does not cost the file's good ones.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._consumed = 0
        self.reader = csv.DictReader(self._counted(lines))

    def _counted(self, lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            self._consumed += 1
            yield line

    def rows(self) -> Iterator[tuple[int, dict[Any, Any] | FieldError]]:
        while True:
            consumed = self._consumed
            try:
                row = next(self.reader)
            except StopIteration:
                return
            except csv.Error as problem:
                if self._consumed == consumed:  # nothing was read: the rest cannot be read
                    raise
                yield consumed + 1, FieldError("line", f"is not CSV ({problem})", consumed + 1)
                continue
            yield self.reader.line_num, row


# --- field rules ----------------------------------------------------------------------------


def identifier(value: str) -> str:
    """A loan, borrower, payment or contact id: it ends up in workflow ids and URLs."""
    if not ID_PATTERN.fullmatch(value):
        raise invalid(ID_RULE)
    return value


def free_text(max_length: int, *, multiline: bool = False) -> AfterValidator:
    """The rule of a free-text field: trimmed, not blank, at most ``max_length`` characters,
    no control character (``workflows.limits.check_text``)."""

    def check(value: str) -> str:
        try:
            return limits.check_text(value, max_length=max_length, multiline=multiline).strip()
        except LimitError as problem:
            raise invalid(str(problem)) from None

    return AfterValidator(check)


def currency(value: str) -> str:
    """An ISO 4217 code the product accepts, upper-cased."""
    try:
        return check_currency(value)
    except AmountError as problem:
        raise invalid(str(problem)) from None


def _amount_is_text(value: object) -> object:
    # A binary float cannot hold every amount of cents: amounts travel as decimal text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise invalid(f'must be a decimal string such as "125.00", not the number {value}')
    return value


def _amount_in_currency(value: str, info: ValidationInfo) -> str:
    code = info.data.get("currency")
    if code is not None:  # without a valid currency, only the currency's error is reported
        try:
            to_minor(value, code)
        except AmountError as problem:
            raise invalid(str(problem)) from None
    return value


def jurisdiction(value: str) -> str:
    """A contact-rule profile (``workflows.profiles.PROFILES``), lower-cased."""
    value = value.strip().lower()
    if value not in PROFILES:
        raise invalid(f"must be one of {', '.join(PROFILES)}")
    return value


def language(value: str) -> str:
    """A language every script and letter ships in (``overdue.languages``), as its BCP 47 tag;
    empty when not given (the jurisdiction's default, filled in by the model)."""
    if not value.strip():
        return ""
    try:
        return language_tag(value)
    except ValueError:
        raise invalid(f"must be one of {', '.join(LANGUAGES)}") from None


def phone_number(text: str, region: str | None) -> str:
    """``text`` in E.164 (``+8613800138000``); a number without its country code is read as one
    of ``region``'s. Budgets are kept per number, so one number is always written one way.
    Without a region (the jurisdiction is itself invalid) only its shape is checked."""
    text = text.strip()
    if not PHONE_PATTERN.match(text):
        raise invalid(f"{shown(text)} is not a phone number")
    if region is None:
        return text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise invalid(f"{shown(text)} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise invalid(f"{shown(text)} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone(value: str, info: ValidationInfo) -> str:
    # The region is the jurisdiction's: a model declares ``jurisdiction`` before its phone, or
    # (a nested contact) is given it in the validation context.
    code = info.data.get("jurisdiction") or (info.context or {}).get("jurisdiction")
    return phone_number(value, PHONE_REGIONS.get(code or ""))


def time_zone(value: str) -> str:
    """An IANA time zone name: every time of day is the borrower's local one."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        raise invalid(f"{shown(value)} is not an IANA time zone") from None
    return value


def iso_date(value: str) -> str:
    """A calendar date, returned as ``YYYY-MM-DD`` (the workflow's dates are ISO text)."""
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise invalid(f"{shown(value)} is not a date (YYYY-MM-DD)") from None


def _now(info: ValidationInfo) -> datetime:
    """The moment an input is judged at: ``context["now"]`` (one for a whole file), or now."""
    now: datetime = (info.context or {}).get("now") or datetime.now(UTC)
    return now


def due_date_window(value: str, info: ValidationInfo) -> str:
    """A missed due date within the plausible window (``workflows.limits.check_due_date``)."""
    try:
        limits.check_due_date(date.fromisoformat(value), _now(info).date())
    except LimitError as problem:
        raise invalid(str(problem)) from None
    return value


def schedule_date_window(value: str, info: ValidationInfo) -> str:
    """A repayment schedule's date within its window (``workflows.limits.check_schedule_date``)."""
    try:
        limits.check_schedule_date(date.fromisoformat(value), _now(info).date())
    except LimitError as problem:
        raise invalid(str(problem)) from None
    return value


def _moment(value: object) -> object:
    """A bank file's time: an ISO date (midnight UTC) or date and time (UTC without an offset)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(
            f"{shown(text)} is not an ISO date (2026-03-02) or date and time (2026-03-02T09:30:00Z)"
        ) from None
    # Converted to UTC by the window's check, which refuses first what cannot be converted.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def paid_window(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """When money was received, in UTC: not before 1990, not later than now plus the clock
    skew (``workflows.limits.check_paid_at``)."""
    if value is None:
        return None
    try:
        return limits.check_paid_at(value, _now(info))
    except LimitError as problem:
        raise invalid(str(problem)) from None


Identifier = Annotated[
    str,
    AfterValidator(identifier),
    # The rule's shape for the OpenAPI document; the check itself is ``identifier``.
    Field(
        description="Letters, digits and _ . : - (at most 64).",
        json_schema_extra={
            "pattern": ID_SCHEMA_PATTERN,
            "minLength": 1,
            "maxLength": ID_MAX_LENGTH,
        },
    ),
]
# Free text, by kind; the length is checked first, before anything reads the text.
Name = Annotated[str, Field(max_length=limits.NAME_MAX), free_text(limits.NAME_MAX)]
ShortText = Annotated[
    str, Field(max_length=limits.SHORT_TEXT_MAX), free_text(limits.SHORT_TEXT_MAX)
]
Note = Annotated[str, Field(max_length=limits.NOTE_MAX), free_text(limits.NOTE_MAX, multiline=True)]
Currency = Annotated[str, AfterValidator(currency)]
# Major units as decimal text ("125.00"), checked against the model's ``currency`` field, which
# must come before it. ``to_minor`` turns a checked amount into integer minor units.
MajorAmount = Annotated[
    str,
    BeforeValidator(_amount_is_text),
    AfterValidator(_amount_in_currency),
    Field(max_length=limits.MAX_AMOUNT_TEXT, json_schema_extra={"pattern": r"^[0-9]+(\.[0-9]+)?$"}),
]
Jurisdiction = Annotated[str, AfterValidator(jurisdiction)]
Language = Annotated[str, Field(max_length=16), AfterValidator(language)]
Phone = Annotated[str, AfterValidator(_phone)]
TimeZoneName = Annotated[str, AfterValidator(time_zone)]
IsoDate = Annotated[str, AfterValidator(iso_date)]
DueDate = Annotated[IsoDate, AfterValidator(due_date_window)]
ScheduleDate = Annotated[IsoDate, AfterValidator(schedule_date_window)]
PAID_WINDOW = AfterValidator(paid_window)
FileMoment = Annotated[datetime, BeforeValidator(_moment), PAID_WINDOW]
Reference = Annotated[str, Field(max_length=limits.REFERENCE_MAX), free_text(limits.REFERENCE_MAX)]

# --- loans ----------------------------------------------------------------------------------


class ContactIn(BaseModel):
    """A reference the borrower named."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    contact_id: Identifier
    name: Name
    phone: Phone
    relation: Name


# Built once, on first use: a command that takes no loan does not pay for it at start.
_CONTACTS = TypeAdapter(list[ContactIn], config=ConfigDict(defer_build=True))


class LoanIn(BaseModel):
    """A loan as the lender's core system describes it: a loan-book row or ``overdue start``.

    Cells are text; amounts are in major units of ``currency``. Other columns are ignored.
    """

    # defer_build: the model is built on first use, not when the CLI starts.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    loan_id: Identifier
    borrower_id: Identifier
    borrower_name: Name
    jurisdiction: Jurisdiction  # before the phones: it says which country they are read in
    phone: Phone
    timezone: TimeZoneName
    product: Name
    currency: Currency  # before the amounts: it sets their decimal places
    principal: MajorAmount
    outstanding: MajorAmount
    due_date: DueDate
    contacts: list[ContactIn] = Field(
        default_factory=list, description="References; in a file, id|name|phone|relation;..."
    )
    risk_score: int | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_RISK_SCORE,
        description="The lender's risk score, if it has one: strategies may be assigned by it.",
    )
    language: Language = Field(
        default="",
        description="The borrower's language (zh-CN, en-US); empty: the jurisdiction's default.",
    )

    @field_validator("contacts", mode="before")
    @classmethod
    def _contacts(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = cell_items(
                value, ("contact_id", "name", "phone", "relation"), shape="id|name|phone|relation"
            )
        # Checked here rather than by the field, so that their phones are read in the
        # borrower's country; a problem is still named by its place: contacts[1].phone.
        if isinstance(value, list) and len(value) > limits.MAX_CONTACTS:
            raise invalid(f"at most {limits.MAX_CONTACTS} references, got {len(value)}")
        contacts = _CONTACTS.validate_python(
            value, context={"jurisdiction": info.data.get("jurisdiction")}
        )
        if len({c.contact_id for c in contacts}) != len(contacts):
            raise invalid("contact ids must be unique")
        return contacts

    @model_validator(mode="after")
    def _language_by_jurisdiction(self) -> LoanIn:
        # Filled in here, so the loan book and the workflow's input say which language it is.
        if not self.language and self.jurisdiction:
            self.language = DEFAULT_BY_JURISDICTION.get(self.jurisdiction, "")
        return self

    def to_loan(self, *, outstanding_minor: int | None = None, due_date: str | None = None) -> Loan:
        """The workflow's ``Loan``, amounts in minor units (the balance and due date as given,
        when a schedule says them: ``overdue.loanbook``)."""
        return Loan(
            loan_id=self.loan_id,
            borrower=Borrower(
                self.borrower_id, self.borrower_name, self.phone, self.timezone, self.language
            ),
            product=self.product,
            principal_minor=to_minor(self.principal, self.currency),
            outstanding_minor=(
                to_minor(self.outstanding, self.currency)
                if outstanding_minor is None
                else outstanding_minor
            ),
            currency=self.currency,
            due_date=due_date or self.due_date,
            jurisdiction=self.jurisdiction,
            contacts=[Contact(c.contact_id, c.name, c.phone, c.relation) for c in self.contacts],
            risk_score=self.risk_score,
        )


# --- payments -------------------------------------------------------------------------------


class PaymentFields(BaseModel):
    """What every report of a payment received carries, from the API or a bank file."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    payment_id: Identifier = Field(description="The payment's unique id: the idempotency key.")
    loan_id: Identifier
    currency: Currency = Field(description="ISO 4217 code; must be the loan's.", examples=["USD"])
    amount: MajorAmount = Field(
        description=(
            "Amount in major units as a decimal string, at most the currency's decimal places"
            " (125.00 USD, 5000 JPY). JSON numbers are refused: a binary float cannot hold"
            " every amount of cents."
        ),
        examples=["125.00"],
    )
    reference: Reference | None = Field(
        default=None, description="The bank's reference, kept with the payment."
    )

    @property
    def amount_minor(self) -> int:
        return to_minor(self.amount, self.currency)


class BankLineIn(PaymentFields):
    """A bank-file line; ``paid_at`` may be a date, and a time without an offset is UTC."""

    model_config = ConfigDict(extra="ignore")  # the bank's other columns are its business
    paid_at: FileMoment
