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
from datetime import UTC, datetime

from overdue.client import PaymentInvalid, UnknownLoan
from overdue.outbox import IncomingPayment, Outbox, PaymentIdConflict, TemporalUnavailable
from overdue.schemas import BankLineIn, CsvRows, FieldError, Invalid, cells, validate
from workflows.types import PaymentReceived

REQUIRED_COLUMNS = ("payment_id", "loan_id", "amount", "currency", "paid_at")
SOURCE = "bankfile"


class NotABankFile(ValueError):
    """The file is not a bank file at all (binary, another CSV): one problem, no lines."""


@dataclass
class BankLine:
    line: int
    incoming: IncomingPayment


@dataclass
class BankFile:
    lines: list[BankLine]
    errors: list[FieldError]


def payment_from_fields(
    values: Mapping[str, str | None], *, line: int, now: datetime
) -> IncomingPayment:
    """Build a payment from a bank line.

    Raises:
        overdue.schemas.Invalid: every bad field, each named with ``line``.
    """
    checked = validate(BankLineIn, cells(values), line=line, context={"now": now})
    return IncomingPayment(
        loan_id=checked.loan_id,
        payment=PaymentReceived(
            payment_id=checked.payment_id,
            amount_minor=checked.amount_minor,
            currency=checked.currency,
            paid_at=checked.paid_at,
            source=SOURCE,
        ),
        reference=checked.reference,
    )


def read_bank_file(text: str, *, now: datetime | None = None) -> BankFile:
    """Check every line of a bank file. Good lines become payments; bad lines become errors.

    Raises:
        NotABankFile: the text is not a CSV with the bank file's header.
    """
    now = now or datetime.now(UTC)
    text_rows = CsvRows(io.StringIO(text))
    reader = text_rows.reader
    try:
        header = reader.fieldnames
    except csv.Error as problem:
        raise NotABankFile(f"it is not CSV ({problem})") from None
    if not header:
        raise NotABankFile("it is empty")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    # A NUL in a file without the header is binary data; below a good header, it is one bad
    # line among good ones, refused by the field it is in.
    if missing and "\x00" in text:
        raise NotABankFile("it holds binary data, not CSV text")
    if missing:
        raise NotABankFile(
            f"its header lacks {', '.join(missing)} (expected {', '.join(REQUIRED_COLUMNS)},"
            " and optionally reference)"
        )
    lines: list[BankLine] = []
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    try:
        for line, row in text_rows.rows():
            if isinstance(row, FieldError):
                errors.append(row)
                continue
            if None in row:  # more cells than the header names
                errors.append(FieldError("line", "has more cells than the header", line))
                continue
            try:
                incoming = payment_from_fields(row, line=line, now=now)
            except Invalid as invalid:
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
