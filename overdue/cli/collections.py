"""Collections begun: start one loan, or import a loan book."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from temporalio.service import RPCError, RPCStatusCode

from overdue import client as ops
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    check_day_seconds,
    emit_json,
    err,
    load_config,
    out,
    run_async,
    services,
)
from overdue.loans import LoanInvalid, loan_from_fields, read_loan_book
from overdue.schemas import FieldError


@app.command()
def start(
    loan_id: Annotated[str, typer.Option(help="Loan id.")],
    borrower_id: Annotated[str, typer.Option(help="Borrower id.")],
    name: Annotated[str, typer.Option(help="Borrower's name.")],
    phone: Annotated[str, typer.Option(help="Borrower's phone number.")],
    timezone: Annotated[str, typer.Option(help="Borrower's IANA time zone.")],
    outstanding: Annotated[str, typer.Option(help="Overdue balance, in major units (12.50).")],
    currency: Annotated[str, typer.Option(help="ISO 4217 currency code.")],
    due_date: Annotated[str, typer.Option(help="Missed due date, YYYY-MM-DD.")],
    jurisdiction: Annotated[str, typer.Option(help="Contact rules: cn or us.")],
    principal: Annotated[str | None, typer.Option(help="Principal (default: outstanding).")] = None,
    product: Annotated[str, typer.Option(help="Product name.")] = "personal",
    contact: Annotated[
        list[str] | None, typer.Option(help="Reference as id|name|phone|relation; repeatable.")
    ] = None,
    day_seconds: Annotated[
        float | None, typer.Option(help="Compress time: a collection day lasts this many seconds.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Begin the collection of one loan."""
    fields = {
        "loan_id": loan_id,
        "borrower_id": borrower_id,
        "borrower_name": name,
        "phone": phone,
        "timezone": timezone,
        "product": product,
        "principal": principal or outstanding,
        "outstanding": outstanding,
        "currency": currency,
        "due_date": due_date,
        "jurisdiction": jurisdiction,
        "contacts": ";".join(contact or []),
    }
    try:
        loan = loan_from_fields(fields)
    except LoanInvalid as invalid:
        raise UserError(str(invalid)) from None
    check_day_seconds(day_seconds)

    async def go() -> str:
        async with services(load_config(data_dir)) as s:
            return await ops.start_collection(s.client, loan, day_seconds=day_seconds)

    outcome = run_async(go())
    result = {
        "loan_id": loan.loan_id,
        "outcome": outcome,
        "started": outcome == ops.StartOutcome.STARTED,
        "already_running": outcome == ops.StartOutcome.ALREADY_RUNNING,
    }
    if as_json:
        emit_json(result)
    elif outcome == ops.StartOutcome.STARTED:
        out.print(f"started collection-{loan.loan_id}")
    elif outcome == ops.StartOutcome.ALREADY_RUNNING:
        out.print(f"collection-{loan.loan_id} is already running; nothing started")
    else:
        out.print(f"collection-{loan.loan_id} has already ended; nothing started")


@app.command("import")
def import_loans(
    path: Annotated[Path, typer.Argument(help="Loan-book CSV file.")],
    day_seconds: Annotated[float | None, typer.Option(help="Compress time (see `start`).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Begin collections for a loan book. Bad rows are reported by line and field, and skipped."""
    check_day_seconds(day_seconds)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as problem:
        raise UserError(f"path: cannot read {path}: {problem}") from None
    try:
        book = read_loan_book(text)
    except csv.Error as problem:
        # The csv module refuses some garbage outright (a field over its size limit): that is a
        # file that is no loan book, not a crash ("error: Error: ..." with exit code 1).
        raise UserError(f"path: {path} is not a CSV loan book ({problem})") from None

    async def go() -> dict[str, list[str]]:
        outcomes: dict[str, list[str]] = {
            ops.StartOutcome.STARTED: [],
            ops.StartOutcome.ALREADY_RUNNING: [],
            ops.StartOutcome.ALREADY_ENDED: [],
        }
        if not book.loans:
            return outcomes
        async with services(load_config(data_dir)) as s:
            for loan in book.loans:
                try:
                    outcome = await ops.start_collection(s.client, loan, day_seconds=day_seconds)
                except RPCError as refused:
                    # Temporal refused this loan alone: its line is reported, the others go on.
                    if refused.status != RPCStatusCode.INVALID_ARGUMENT:
                        raise
                    line = book.lines[loan.loan_id]
                    book.errors.append(FieldError("loan", refused.message, line))
                    continue
                outcomes[outcome].append(loan.loan_id)
        book.errors.sort(key=lambda e: e.line or 0)
        return outcomes

    outcomes = run_async(go())
    started, running = (
        outcomes[ops.StartOutcome.STARTED],
        outcomes[ops.StartOutcome.ALREADY_RUNNING],
    )
    rejected = [{"line": e.line, "field": e.field, "error": e.message} for e in book.errors]
    if as_json:
        emit_json({**outcomes, "rejected": rejected})
    else:
        out.print(
            f"started {len(started)}, already running {len(running)}, rejected rows {len(rejected)}"
        )
        for e in book.errors:
            err.print(f"  {path}:{e}")
    if book.errors:
        raise typer.Exit(1)
