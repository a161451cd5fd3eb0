"""Reading loans from the outside world: flags and loan-book CSV files.

Every field is checked by ``overdue.schemas.LoanIn``; every problem is reported with the field it
concerns (and the line, for a file), and a loan with any problem is never started.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TextIO

from overdue.schemas import CsvRows, FieldError, Invalid, LoanIn, cells, validate
from workflows.types import Loan

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


class LoanInvalid(Invalid):
    """A loan that cannot be started, with every problem found."""


def loan_from_fields(values: Mapping[str, str | None], *, line: int | None = None) -> Loan:
    """Build a loan from text fields, or raise ``LoanInvalid`` naming every bad field."""
    try:
        return validate(LoanIn, cells(values), line=line).to_loan()
    except Invalid as invalid:
        raise LoanInvalid(invalid.errors) from None


@dataclass
class LoanBook:
    loans: list[Loan]
    errors: list[FieldError]


def read_loan_book(text: str) -> LoanBook:
    """Validate every row of a loan-book CSV. Good rows become loans; bad rows become errors.

    Raises:
        csv.Error: the csv module refuses the text outright (its header, or a line it cannot
            read past).
    """
    book = LoanBook([], [])
    for item in loan_rows(io.StringIO(text)):
        if isinstance(item, FieldError):
            book.errors.append(item)
        else:
            book.loans.append(item)
    return book


def loan_rows(file: TextIO) -> Iterator[Loan | FieldError]:
    """Each row of a loan-book CSV, checked, a line at a time: its loan, or each of its problems.

    Only the loan ids seen are kept, to refuse one that appears twice: a file of any size streams.

    Raises:
        csv.Error: the csv module refuses the text outright (its header, or a line it cannot
            read past).
    """
    text_rows = CsvRows(file)
    reader = text_rows.reader
    missing = [c for c in CSV_COLUMNS if c != "contacts" and c not in (reader.fieldnames or [])]
    if missing:
        yield from (FieldError(c, "column is missing from the header", 1) for c in missing)
        return
    seen: set[str] = set()
    for line, row in text_rows.rows():
        if isinstance(row, FieldError):
            yield row
            continue
        try:
            loan = loan_from_fields(row, line=line)
        except LoanInvalid as invalid:
            yield from invalid.errors
            continue
        if loan.loan_id in seen:
            yield FieldError("loan_id", f"{loan.loan_id} appears twice in the file", line)
            continue
        seen.add(loan.loan_id)
        yield loan
