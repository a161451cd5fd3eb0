"""Bank files: payments received, one CSV line each, imported through the payment outbox.

Columns: ``payment_id, loan_id, amount, currency, paid_at`` and an optional ``reference``.
Amounts are decimal strings in major units; ``paid_at`` is an ISO date (midnight UTC) or date and
time (UTC unless it carries an offset). Every problem is reported with its line and field, and a
line with a problem is never stored; the good lines go on.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from overdue.client import PaymentInvalid, UnknownLoan
from overdue.loans import ID_PATTERN, FieldError
from overdue.outbox import (
    CLOCK_SKEW,
    IncomingPayment,
    Outbox,
    PaymentIdConflict,
    TemporalUnavailable,
)
from workflows.money import AmountError, check_currency, to_minor
from workflows.types import PaymentReceived

REQUIRED_COLUMNS = ("payment_id", "loan_id", "amount", "currency", "paid_at")
MAX_REFERENCE = 140
SOURCE = "bankfile"


class NotABankFile(ValueError):
    """The file is not a bank file at all (binary, another CSV): one problem, no lines."""


@dataclass
class LineInvalid(ValueError):
    """A bank line that cannot be imported, with every problem found."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(map(str, self.errors))


@dataclass
class BankLine:
    line: int
    incoming: IncomingPayment


@dataclass
class BankFile:
    lines: list[BankLine]
    errors: list[FieldError]


def parse_paid_at(text: str) -> datetime:
    """An ISO date (midnight UTC) or date and time (UTC unless it carries an offset).

    Raises:
        ValueError: the message says what was expected.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date (2026-03-02) or date and time (2026-03-02T09:30:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def payment_from_fields(
    values: Mapping[str, str | None], *, line: int, now: datetime
) -> IncomingPayment:
    """Build a payment from a bank line, or raise ``LineInvalid`` naming every bad field."""
    errors: list[FieldError] = []

    def text(name: str) -> str:
        value = (values.get(name) or "").strip()
        if not value:
            errors.append(FieldError(name, "is required", line))
        return value

    ids = {name: text(name) for name in ("payment_id", "loan_id")}
    for name, value in ids.items():
        if value and not ID_PATTERN.match(value):
            errors.append(FieldError(name, "use letters, digits, _ . : - (at most 64)", line))
    currency = text("currency")
    if currency:
        try:
            currency = check_currency(currency)
        except AmountError as problem:
            errors.append(FieldError("currency", str(problem), line))
            currency = ""
    amount, amount_minor = text("amount"), 0
    if amount and currency:
        try:
            amount_minor = to_minor(amount, currency)
        except AmountError as problem:
            errors.append(FieldError("amount", str(problem), line))
    paid_text, paid_at = text("paid_at"), now
    if paid_text:
        try:
            paid_at = parse_paid_at(paid_text)
        except ValueError as problem:
            errors.append(FieldError("paid_at", str(problem), line))
        else:
            if paid_at > now + CLOCK_SKEW:
                errors.append(FieldError("paid_at", f"{paid_text} is in the future", line))
    reference = (values.get("reference") or "").strip() or None
    if reference is not None and len(reference) > MAX_REFERENCE:
        errors.append(FieldError("reference", f"at most {MAX_REFERENCE} characters", line))
    if errors:
        raise LineInvalid(errors)
    return IncomingPayment(
        loan_id=ids["loan_id"],
        payment=PaymentReceived(
            payment_id=ids["payment_id"],
            amount_minor=amount_minor,
            currency=currency,
            paid_at=paid_at,
            source=SOURCE,
        ),
        reference=reference,
    )


def read_bank_file(text: str, *, now: datetime | None = None) -> BankFile:
    """Check every line of a bank file. Good lines become payments; bad lines become errors.

    Raises:
        NotABankFile: the text is not a CSV with the bank file's header.
    """
    now = now or datetime.now(UTC)
    if "\x00" in text:
        raise NotABankFile("it holds binary data, not CSV text")
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames
    except csv.Error as problem:
        raise NotABankFile(f"it is not CSV ({problem})") from None
    if not header:
        raise NotABankFile("it is empty")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise NotABankFile(
            f"its header lacks {', '.join(missing)} (expected {', '.join(REQUIRED_COLUMNS)},"
            " and optionally reference)"
        )
    lines: list[BankLine] = []
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than the header names
                errors.append(FieldError("line", "has more cells than the header", line))
                continue
            try:
                incoming = payment_from_fields(row, line=line, now=now)
            except LineInvalid as invalid:
                errors.extend(invalid.errors)
                continue
            payment_id = incoming.payment.payment_id
            if payment_id in seen:
                errors.append(
                    FieldError(
                        "payment_id", f"{payment_id} is already on line {seen[payment_id]}", line
                    )
                )
                continue
            seen[payment_id] = line
            lines.append(BankLine(line, incoming))
    except csv.Error as problem:
        raise NotABankFile(f"it is not CSV (line {reader.line_num}: {problem})") from None
    return BankFile(lines, errors)


@dataclass
class ImportReport:
    """What became of each line of a bank file."""

    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    rejected: list[FieldError] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "applied": self.applied,
            "duplicates": self.duplicates,
            "queued": self.queued,
            "rejected": [
                {"line": e.line, "field": e.field, "error": e.message} for e in self.rejected
            ],
        }


async def import_bank_file(
    outbox: Outbox,
    bank_file: BankFile,
    *,
    on_line: Callable[[int], None] | None = None,
    concurrency: int = 8,
) -> ImportReport:
    """Submit every good line through the outbox; the file's errors are reported with them.

    Up to ``concurrency`` lines are in flight, but one loan's lines go in file order, so each
    balance moves as the file says. A payment id the outbox already holds with the same details
    is a duplicate: nothing is stored or applied again. Once Temporal proves unreachable, the
    remaining lines are stored without trying it again, for the relay to deliver.
    """
    by_loan: dict[str, list[BankLine]] = {}
    for item in bank_file.lines:
        by_loan.setdefault(item.incoming.loan_id, []).append(item)
    outcomes: dict[str, list[tuple[int, str]]] = {"applied": [], "duplicate": [], "queued": []}
    rejected = list(bank_file.errors)
    gate = asyncio.Semaphore(concurrency)
    reachable = True
    done = 0

    async def submit(item: BankLine) -> None:
        nonlocal reachable, done
        try:
            submitted = await outbox.submit(item.incoming, deliver=reachable)
        except UnknownLoan as unknown:
            rejected.append(_line_error(item.line, str(unknown.args[0])))
        except (PaymentIdConflict, PaymentInvalid, TemporalUnavailable) as problem:
            rejected.append(_line_error(item.line, str(problem)))
        else:
            reachable = reachable and not submitted.unreachable
            entry, result = submitted.entry, submitted.entry.result
            if entry.status == "rejected":
                rejected.append(_line_error(item.line, entry.last_error or "rejected"))
            else:
                duplicate = submitted.replayed or (result is not None and result.duplicate)
                kind = (
                    "duplicate"
                    if duplicate
                    else "queued"
                    if entry.status == "pending"
                    else "applied"
                )
                outcomes[kind].append((item.line, entry.payment.payment_id))
        done += 1
        if on_line is not None:
            on_line(done)

    async def in_order(items: list[BankLine]) -> None:
        for item in items:
            async with gate:
                await submit(item)

    try:
        async with asyncio.TaskGroup() as group:
            for items in by_loan.values():
                group.create_task(in_order(items))
    except ExceptionGroup as failed:  # the ledger went away: say why, not "a TaskGroup failed"
        raise failed.exceptions[0] from None

    def ids(kind: str) -> list[str]:
        return [payment_id for _, payment_id in sorted(outcomes[kind])]

    return ImportReport(
        applied=ids("applied"),
        duplicates=ids("duplicate"),
        queued=ids("queued"),
        rejected=sorted(rejected, key=lambda e: e.line or 0),
    )


def _line_error(line: int, message: str) -> FieldError:
    name, _, rest = message.partition(": ")
    if not rest or " " in name:
        return FieldError("payment", message, line)
    return FieldError(name, rest, line)
