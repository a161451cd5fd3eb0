"""The loan book: the lender's loans, synced in from its core system (``overdue loans sync``).

The core system stays the source of truth. Each loan arrives with a version; a sync stores a
loan, its borrower, its references and its repayment schedule (``book`` schema, migration 0005)
when the version is new, and changes nothing when the same version comes again. A row is read,
checked and written on its own, in one transaction, so a file of any size streams through in
flat memory and a bad row never half-writes a loan: it is reported by line and field.

Two formats: the loan-book CSV of ``overdue import`` (``version``, ``schedule`` and ``payments``
are optional columns; a row without a schedule is one instalment of ``outstanding`` due on
``due_date``), and JSON Lines, one loan object per line with the same fields (``schedule`` and
``payments`` lists of objects).

``payments`` are what the core system received for the loan, each with its id: the scan passes
the ones a version lists for the first time to the loan's running collection, which applies each
once, whichever source reported it first. A payment listed once stays listed: a later version
that leaves it out changes nothing, and one that lists its id with another amount is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from overdue.languages import DEFAULT_BY_JURISDICTION
from overdue.schemas import (
    CsvRows,
    FieldError,
    FileMoment,
    Identifier,
    Invalid,
    LoanIn,
    MajorAmount,
    ScheduleDate,
    _amount_is_text,
    cell_items,
    cells,
    invalid,
    validate,
)
from workflows.limits import MAX_BOOK_PAYMENTS
from workflows.money import AmountError, format_minor, to_minor
from workflows.schedule import CORE_SYSTEM, ScheduledInstalment, oldest_unpaid, outstanding
from workflows.types import Loan, PaymentReceived

MAX_VERSION = 2**31 - 1  # the column is an integer
MAX_INSTALMENTS = 600  # fifty years of monthly instalments


def _in_loan_currency(value: str, info: ValidationInfo) -> str:
    # An instalment has no currency of its own: the loan's comes in the validation context.
    code = (info.context or {}).get("currency")
    if code is not None:
        try:
            to_minor(value, code, allow_zero=info.field_name == "amount_paid")
        except AmountError as problem:
            raise invalid(str(problem)) from None
    return value


InstalmentAmount = Annotated[
    str, BeforeValidator(_amount_is_text), AfterValidator(_in_loan_currency)
]


class InstalmentIn(BaseModel):
    """One instalment of the schedule; in a CSV cell, ``due_date|amount_due|amount_paid``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    due_date: ScheduleDate
    amount_due: InstalmentAmount
    amount_paid: InstalmentAmount = "0"


_SCHEDULE = TypeAdapter(list[InstalmentIn], config=ConfigDict(defer_build=True))


class BookPaymentIn(BaseModel):
    """A payment the core system received; in a CSV cell, ``payment_id|amount|paid_at``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    payment_id: Identifier
    amount: InstalmentAmount
    paid_at: FileMoment


_PAYMENTS = TypeAdapter(list[BookPaymentIn], config=ConfigDict(defer_build=True))


class BookLoanIn(LoanIn):
    """A loan as the core system syncs it: a loan-book row with a version and a schedule."""

    version: int = Field(default=1, ge=1, le=MAX_VERSION)
    # Given by the schedule when there is one (optional here, unlike a row to ``start``).
    outstanding: MajorAmount | None = None  # type: ignore[assignment]
    # A loan of the book may not be due yet: its dates have the schedule's window.
    due_date: ScheduleDate | None = None  # type: ignore[assignment]
    schedule: list[InstalmentIn] = Field(default_factory=list)
    payments: list[BookPaymentIn] = Field(default_factory=list)

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = cell_items(
                value,
                ("due_date", "amount_due", "amount_paid"),
                shape="due_date|amount_due|amount_paid",
                optional=1,
            )
        if isinstance(value, list) and len(value) > MAX_INSTALMENTS:
            raise invalid(f"has {len(value)} instalments; at most {MAX_INSTALMENTS}")
        schedule = _SCHEDULE.validate_python(value, context={"currency": info.data.get("currency")})
        if len({i.due_date for i in schedule}) != len(schedule):
            raise invalid("has two instalments due on one date")
        code = info.data.get("currency")
        for n, instalment in enumerate(schedule):
            if code is not None and to_minor(instalment.amount_paid, code, allow_zero=True) > (
                to_minor(instalment.amount_due, code)
            ):
                raise invalid("is more than amount_due", at=(n, "amount_paid"))
        return schedule

    @field_validator("payments", mode="before")
    @classmethod
    def _payments(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = cell_items(
                value, ("payment_id", "amount", "paid_at"), shape="payment_id|amount|paid_at"
            )
        if isinstance(value, list) and len(value) > MAX_BOOK_PAYMENTS:
            raise invalid(f"has {len(value)} payments; at most {MAX_BOOK_PAYMENTS}")
        payments = _PAYMENTS.validate_python(value, context={"currency": info.data.get("currency")})
        if len({p.payment_id for p in payments}) != len(payments):
            raise invalid("lists one payment id twice")
        return payments

    @model_validator(mode="after")
    def _schedule_or_balance(self) -> BookLoanIn:
        if not self.schedule and (self.outstanding is None or self.due_date is None):
            raise invalid("give a schedule, or due_date and outstanding", at="schedule")
        if self.schedule and self.outstanding is not None:
            unpaid = outstanding(self.instalments())
            if self._minor(self.outstanding) != unpaid:
                raise invalid(
                    f"does not match the schedule's unpaid total, {format_minor(unpaid, self.currency)}",
                    at="outstanding",
                )
        return self

    def _minor(self, amount: str) -> int:
        return to_minor(amount, self.currency, allow_zero=True)

    def instalments(self) -> list[ScheduledInstalment]:
        """The schedule in minor units, by due date; without one, ``outstanding`` due on
        ``due_date``."""
        if not self.schedule:
            assert self.outstanding is not None and self.due_date is not None
            return [ScheduledInstalment(self.due_date, self._minor(self.outstanding))]
        return sorted(
            (
                ScheduledInstalment(
                    i.due_date, self._minor(i.amount_due), self._minor(i.amount_paid)
                )
                for i in self.schedule
            ),
            key=lambda i: i.due_date,
        )

    def to_book_loan(self) -> BookLoan:
        """The loan as the book keeps it: its balance and due date are the schedule's (the
        oldest unpaid instalment's date; the last one's once all are paid)."""
        schedule = self.instalments()
        oldest = oldest_unpaid(schedule) or schedule[-1]
        loan = self.to_loan(outstanding_minor=outstanding(schedule), due_date=oldest.due_date)
        payments = [
            PaymentReceived(
                p.payment_id, self._minor(p.amount), self.currency, p.paid_at, CORE_SYSTEM
            )
            for p in self.payments
        ]
        return BookLoan(loan, self.version, schedule, payments)


@dataclass(frozen=True)
class BookLoan:
    """A loan of the book: the collection's ``Loan``, its version and its schedule."""

    loan: Loan
    version: int
    schedule: list[ScheduledInstalment]
    payments: list[PaymentReceived] = field(default_factory=list)

    def digest(self) -> str:
        """A digest of everything synced, to tell the same version's content apart."""
        # Fields added since a version was first synced are left out while unset, so that the
        # same content keeps the digest it was stored with.
        loan = {k: v for k, v in _plain(self.loan).items() if v is not None}
        # The language a row without the column is given (the jurisdiction's) is left out too:
        # the same row synced before languages keeps its digest.
        if loan["borrower"]["language"] in (
            "",
            DEFAULT_BY_JURISDICTION.get(self.loan.jurisdiction),
        ):
            del loan["borrower"]["language"]
        synced: dict[str, Any] = {
            "loan": loan,
            "schedule": [_plain(i) for i in self.schedule],
        }
        if self.payments:  # without, the digest is the one versions synced before had
            synced["payments"] = [_plain(p) for p in self.payments]
        content = json.dumps(synced, sort_keys=True, default=str)
        return hashlib.sha256(content.encode()).hexdigest()


def _plain(value: Any) -> Any:
    return asdict(value)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a sync file: the loan it holds, or what is wrong with it."""

    line: int
    loan: BookLoan | None = None
    errors: list[FieldError] = field(default_factory=list)


def read_rows(path: Path) -> Iterator[Row]:
    """Each loan of a CSV or JSON Lines file (by its suffix), checked, one line at a time."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _json_lines(path)
    else:
        yield from _csv_rows(path)


def _checked(values: dict[str, Any], line: int) -> Row:
    try:
        return Row(line, validate(BookLoanIn, values, line=line).to_book_loan())
    except Invalid as problem:
        return Row(line, errors=list(problem.errors))


def _csv_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        # A line the csv module cannot read is one bad line; the lines after it are read on.
        for line, row in CsvRows(file).rows():
            if isinstance(row, FieldError):
                yield Row(line, errors=[row])
            else:
                yield _checked(cells(row), line)


def _json_lines(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig") as file:
        for line_no, text in enumerate(file, 1):
            if not text.strip():
                continue
            try:
                values = json.loads(text)
            except json.JSONDecodeError as problem:
                yield Row(
                    line_no, errors=[FieldError("line", f"is not JSON ({problem.msg})", line_no)]
                )
                continue
            if not isinstance(values, dict):
                yield Row(line_no, errors=[FieldError("line", "is not a JSON object", line_no)])
                continue
            yield _checked(values, line_no)


# --- writing --------------------------------------------------------------------------------


class Change:
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"  # an older version than the book holds: skipped


async def store(pool: asyncpg.Pool, book_loan: BookLoan, *, line: int | None = None) -> str:
    """Write one loan to the book, in one transaction. Returns the ``Change``.

    Raises:
        Invalid: the book holds this version with other content.
    """
    loan, digest, now = book_loan.loan, book_loan.digest(), datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        # One writer per loan at a time: two syncs (or PUTs) of a loan the book does not hold
        # yet would both find no row, and the second would overwrite the first unchecked.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('book.loans:' || $1))", loan.loan_id
        )
        stored = await conn.fetchrow(
            "SELECT version, content_digest FROM book.loans WHERE loan_id = $1 FOR UPDATE",
            loan.loan_id,
        )
        if stored is not None:
            if book_loan.version < stored["version"]:
                return Change.STALE
            if book_loan.version == stored["version"]:
                if stored["content_digest"] == digest:
                    return Change.UNCHANGED
                raise Invalid(
                    [
                        FieldError(
                            "version",
                            f"{loan.loan_id} version {book_loan.version} was synced with other"
                            " content; send it as a new version",
                            line,
                        )
                    ]
                )
        borrower = loan.borrower
        await conn.execute(
            "INSERT INTO book.borrowers (borrower_id, name, phone, timezone, synced_at, language)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (borrower_id) DO UPDATE SET"
            " name = EXCLUDED.name, phone = EXCLUDED.phone, timezone = EXCLUDED.timezone,"
            " synced_at = EXCLUDED.synced_at, language = EXCLUDED.language",
            borrower.borrower_id,
            borrower.name,
            borrower.phone,
            borrower.timezone,
            now,
            borrower.language,
        )
        await conn.execute(
            "INSERT INTO book.loans (loan_id, version, borrower_id, product, principal_minor,"
            " currency, jurisdiction, content_digest, synced_at, risk_score)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (loan_id) DO UPDATE SET"
            " version = EXCLUDED.version, borrower_id = EXCLUDED.borrower_id,"
            " product = EXCLUDED.product, principal_minor = EXCLUDED.principal_minor,"
            " currency = EXCLUDED.currency, jurisdiction = EXCLUDED.jurisdiction,"
            " content_digest = EXCLUDED.content_digest, synced_at = EXCLUDED.synced_at,"
            " risk_score = EXCLUDED.risk_score",
            loan.loan_id,
            book_loan.version,
            borrower.borrower_id,
            loan.product,
            loan.principal_minor,
            loan.currency,
            loan.jurisdiction,
            digest,
            now,
            loan.risk_score,
        )
        await conn.execute("DELETE FROM book.contacts WHERE loan_id = $1", loan.loan_id)
        await conn.execute("DELETE FROM book.instalments WHERE loan_id = $1", loan.loan_id)
        await conn.executemany(
            "INSERT INTO book.contacts (loan_id, contact_id, name, phone, relation)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(loan.loan_id, c.contact_id, c.name, c.phone, c.relation) for c in loan.contacts],
        )
        await conn.executemany(
            "INSERT INTO book.instalments (loan_id, seq, due_date, amount_due_minor,"
            " amount_paid_minor) VALUES ($1, $2, $3::text::date, $4, $5)",
            [
                (loan.loan_id, n, i.due_date, i.amount_due_minor, i.amount_paid_minor)
                for n, i in enumerate(book_loan.schedule, 1)
            ],
        )
        await _store_payments(conn, book_loan, line)
    return Change.UPDATED if stored is not None else Change.ADDED


async def _store_payments(conn: asyncpg.Connection, book_loan: BookLoan, line: int | None) -> None:
    """Keep the payments a version lists, each once, with the first version that listed it.

    Raises:
        Invalid: a payment id the book holds with another amount or time (the transaction,
            and so the whole line, is rolled back).
    """
    loan_id = book_loan.loan.loan_id
    held = {
        r["payment_id"]: (r["amount_minor"], r["paid_at"])
        for r in await conn.fetch(
            "SELECT payment_id, amount_minor, paid_at FROM book.payments"
            " WHERE loan_id = $1 AND payment_id = ANY($2)",
            loan_id,
            [p.payment_id for p in book_loan.payments],
        )
    }
    for n, payment in enumerate(book_loan.payments):
        if payment.payment_id in held and held[payment.payment_id] != (
            payment.amount_minor,
            payment.paid_at,
        ):
            raise Invalid(
                [
                    FieldError(
                        f"payments[{n}]",
                        f"{payment.payment_id} was synced before with another amount or time",
                        line,
                    )
                ]
            )
    await conn.executemany(
        "INSERT INTO book.payments (loan_id, payment_id, amount_minor, paid_at, first_version)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (loan_id, payment_id) DO NOTHING",
        [
            (loan_id, p.payment_id, p.amount_minor, p.paid_at, book_loan.version)
            for p in book_loan.payments
            if p.payment_id not in held
        ],
    )


@dataclass
class SyncReport:
    """What a sync did: loans by change, and every rejected line."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (Change.ADDED, Change.UPDATED, Change.UNCHANGED, Change.STALE), 0
        )
    )
    errors: list[FieldError] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(self.counts.values()) + len({e.line for e in self.errors})


async def sync(pool: asyncpg.Pool, rows: Iterator[Row], on_row: Any = None) -> SyncReport:
    """Store every good row, report every bad one; ``on_row(report)`` after each line."""
    report = SyncReport()
    for row in rows:
        if row.loan is None:
            report.errors.extend(row.errors)
        else:
            try:
                report.counts[await store(pool, row.loan, line=row.line)] += 1
            except Invalid as conflict:
                report.errors.extend(conflict.errors)
        if on_row is not None:
            on_row(report)
    return report
