"""Reading loans from the outside world: flags and loan-book CSV files.

Every problem is reported with the field it concerns (and the line, for a file), and a loan with
any problem is never started.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from workflows.money import AmountError, check_currency, to_minor
from workflows.planner import PROFILES
from workflows.types import Borrower, Contact, Loan

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 ()-]{5,19}$")
# Where a number written without its country code is read: the jurisdiction's country.
PHONE_REGIONS = {"cn": "CN", "us": "US"}
CSV_COLUMNS = (
    "loan_id",
    "borrower_id",
    "borrower_name",
    "phone",
    "timezone",
    "product",
    "principal",
    "outstanding",
    "currency",
    "due_date",
    "jurisdiction",
    "contacts",
)


@dataclass
class FieldError:
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}"


@dataclass
class LoanInvalid(ValueError):
    """A loan that cannot be started, with every problem found."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(map(str, self.errors))


def parse_contacts(text: str) -> list[Contact]:
    """Contacts as ``id|name|phone|relation`` items separated by ``;``."""
    contacts = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        parts = [p.strip() for p in item.split("|")]
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"{item!r} is not id|name|phone|relation")
        contact_id, name, phone, relation = parts
        if not ID_PATTERN.match(contact_id):
            raise ValueError(f"contact id {contact_id!r} is not a valid id")
        if not PHONE_PATTERN.match(phone):
            raise ValueError(f"contact phone {phone!r} is not a phone number")
        contacts.append(Contact(contact_id, name, phone, relation))
    if len({c.contact_id for c in contacts}) != len(contacts):
        raise ValueError("contact ids must be unique")
    return contacts


def e164(phone: str, region: str) -> str:
    """``phone`` in E.164 (``+8613800138000``); a number without its country code is read as
    one of ``region``'s. Budgets are kept per number, so one number is always written one way.
    """
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{phone!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{phone!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def loan_from_fields(values: Mapping[str, str | None], *, line: int | None = None) -> Loan:
    """Build a loan from text fields, or raise ``LoanInvalid`` naming every bad field."""
    errors: list[FieldError] = []

    def text(name: str) -> str:
        value = (values.get(name) or "").strip()
        if not value:
            errors.append(FieldError(name, "is required", line))
        return value

    def check(name: str, ok: bool, message: str) -> None:
        if not ok:
            errors.append(FieldError(name, message, line))

    loan_id, borrower_id = text("loan_id"), text("borrower_id")
    for name, value in (("loan_id", loan_id), ("borrower_id", borrower_id)):
        if value:
            check(name, bool(ID_PATTERN.match(value)), "use letters, digits, _ . : - (at most 64)")
    name, phone, product = text("borrower_name"), text("phone"), text("product")
    if phone:
        check("phone", bool(PHONE_PATTERN.match(phone)), f"{phone!r} is not a phone number")
    zone = text("timezone")
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError("timezone", f"{zone!r} is not an IANA time zone", line))
    jurisdiction = text("jurisdiction").lower()
    if jurisdiction:
        check("jurisdiction", jurisdiction in PROFILES, f"must be one of {', '.join(PROFILES)}")
    currency = text("currency")
    if currency:
        try:
            currency = check_currency(currency)
        except AmountError as problem:
            errors.append(FieldError("currency", str(problem), line))
            currency = ""
    amounts: dict[str, int] = {}
    for amount_field in ("principal", "outstanding"):
        raw = text(amount_field)
        if raw and currency:
            try:
                amounts[amount_field] = to_minor(raw, currency)
            except AmountError as problem:
                errors.append(FieldError(amount_field, str(problem), line))
    due = text("due_date")
    if due:
        try:
            date.fromisoformat(due)
        except ValueError:
            errors.append(FieldError("due_date", f"{due!r} is not a date (YYYY-MM-DD)", line))
    try:
        contacts = parse_contacts(values.get("contacts") or "")
    except ValueError as problem:
        errors.append(FieldError("contacts", str(problem), line))
        contacts = []
    region = PHONE_REGIONS.get(jurisdiction)
    if phone and region and PHONE_PATTERN.match(phone):
        try:
            phone = e164(phone, region)
        except ValueError as problem:
            errors.append(FieldError("phone", str(problem), line))
    if region:
        try:
            contacts = [replace(c, phone=e164(c.phone, region)) for c in contacts]
        except ValueError as problem:
            errors.append(FieldError("contacts", f"contact phone: {problem}", line))
    if errors:
        raise LoanInvalid(errors)
    return Loan(
        loan_id=loan_id,
        borrower=Borrower(borrower_id=borrower_id, name=name, phone=phone, timezone=zone),
        product=product,
        principal_minor=amounts["principal"],
        outstanding_minor=amounts["outstanding"],
        currency=currency,
        due_date=due,
        jurisdiction=jurisdiction,
        contacts=contacts,
    )


@dataclass
class LoanBook:
    loans: list[Loan]
    errors: list[FieldError]


def read_loan_book(text: str) -> LoanBook:
    """Validate every row of a loan-book CSV. Good rows become loans; bad rows become errors."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c != "contacts" and c not in (reader.fieldnames or [])]
    if missing:
        return LoanBook(
            [], [FieldError(c, "column is missing from the header", 1) for c in missing]
        )
    loans: list[Loan] = []
    errors: list[FieldError] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        try:
            loan = loan_from_fields(row, line=line)
        except LoanInvalid as invalid:
            errors.extend(invalid.errors)
            continue
        if loan.loan_id in seen:
            errors.append(FieldError("loan_id", f"{loan.loan_id} appears twice in the file", line))
            continue
        seen.add(loan.loan_id)
        loans.append(loan)
    return LoanBook(loans, errors)
