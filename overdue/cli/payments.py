"""Payments reported: one (`overdue pay`) or a bank file, both through the payment outbox."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from overdue import client as ops
from overdue.bankfile import ImportReport, NotABankFile, import_bank_file, read_bank_file
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    checked_id,
    emit_json,
    err,
    ledger_pool,
    load_config,
    out,
    run_async,
)
from overdue.config import Config
from overdue.outbox import IncomingPayment, Outbox, Submission, TemporalClients, TemporalUnavailable
from workflows.money import format_minor

payments_app = typer.Typer(
    help="Payments from payment services: bank files, through the payment outbox.",
    no_args_is_help=True,
)
app.add_typer(payments_app, name="payments")


@asynccontextmanager
async def _outbox(config: Config) -> AsyncIterator[Outbox]:
    """The payment outbox, in the ledger. Temporal may be down: payments then wait there for
    the relay to deliver them."""
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    async with ledger_pool(config) as pool:
        yield Outbox(pool, TemporalClients(config))


@payments_app.command("import")
def import_payments(
    path: Annotated[Path, typer.Argument(help="Bank-file CSV.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply a bank file of payments received; bad lines are named by line and field.

    A payment id seen before is a duplicate and changes nothing. Payments Temporal cannot take
    now are stored and applied later by the relay of `overdue up` or `overdue api`.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"path: {path} is not a CSV bank file (not UTF-8 text)") from None
    except OSError as problem:
        raise UserError(f"path: cannot read {path}: {problem}") from None
    try:
        bank_file = read_bank_file(text)
    except NotABankFile as problem:
        raise UserError(f"path: {path} is not a CSV bank file: {problem}") from None
    config = load_config(data_dir).with_running_stack()

    async def go() -> ImportReport:
        async with _outbox(config) as outbox:
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                disable=as_json and not sys.stderr.isatty(),
            ) as progress:
                task = progress.add_task("payments", total=len(bank_file.lines))
                return await import_bank_file(
                    outbox, bank_file, on_line=lambda done: progress.update(task, completed=done)
                )

    report = run_async(go())
    if as_json:
        emit_json(report.as_json())
    else:
        out.print(
            f"applied {len(report.applied)}, duplicates {len(report.duplicates)},"
            f" queued {len(report.queued)}, rejected lines {len(report.rejected)}"
        )
        if report.queued:
            err.print(
                "  queued payments are stored; the relay of `overdue up` or `overdue api`"
                " applies them once Temporal answers"
            )
        for e in report.rejected:
            err.print(f"  {path}:{e}", highlight=False)
    if report.rejected:
        raise typer.Exit(1)


# `overdue pay`'s exit code when the payment is stored in the outbox but not applied yet.
QUEUED_EXIT = 3


# A negative amount (`pay L -5`) must reach the amount check and be reported as one line naming
# `amount`; without this the parser takes "-5" for an unknown option and prints a usage box.
@app.command(context_settings={"ignore_unknown_options": True})
def pay(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    amount: Annotated[str, typer.Argument(help="Amount in major units, e.g. 125.00.")],
    payment_id: Annotated[str, typer.Option(help="The payment's unique id (idempotency key).")],
    currency: Annotated[str | None, typer.Option(help="Currency (default: the loan's).")] = None,
    source: Annotated[str, typer.Option(help="Who reports the payment.")] = "cli",
    signal: Annotated[
        bool,
        typer.Option(
            "--signal",
            help="Store the payment, signal payment_received and do not wait for the answer"
            " (for a source that cannot wait for a worker); the collection applies it when it"
            " next runs.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a payment received and answer with the balance after it; idempotent by payment id.

    The payment is stored in the payment outbox first, as the HTTP API stores it, then applied
    through the `apply_payment` update (once the collection has ended, recorded in the ledger,
    what exceeds the balance kept as a credit to refund). When Temporal or every worker does not
    answer within 10 s, it stays in the outbox and the relay of `overdue up` or `overdue api`
    applies it later: exit code 3. With --signal it is stored, then signalled.
    """
    # Everything that does not depend on the loan is checked before connecting to anything.
    checked_id("loan_id", loan_id)
    ops.check_payment_arguments(amount, payment_id=payment_id, currency=currency, source=source)
    config = load_config(data_dir).with_running_stack()

    async def go() -> Submission:
        async with _outbox(config) as outbox:
            try:
                # The amount is read in the payment's currency, so the loan's is looked up only
                # when none is given; whether it is the loan's is the outbox's (the ledger's).
                payment = ops.payment_from_input(
                    amount,
                    currency or await outbox.loan_currency(loan_id),
                    payment_id=payment_id,
                    source=source,
                )
                incoming = IncomingPayment(loan_id, payment)
                if signal:
                    return await outbox.submit_by_signal(incoming)
                return await outbox.submit(incoming)
            except TemporalUnavailable as problem:  # the loan cannot be confirmed: nothing stored
                raise UserError(str(problem)) from None

    submitted = run_async(go())
    entry = submitted.entry
    if entry.status == "rejected":  # the collection or the ledger refused it for good
        raise UserError(entry.last_error or "payment: rejected")
    if as_json:
        emit_json(_reported(submitted, via="signal" if signal else "update"))
    else:
        _print_outcome(submitted)
    if entry.status == "pending" and not submitted.signalled:
        raise typer.Exit(QUEUED_EXIT)


def _print_outcome(submitted: Submission) -> None:
    entry, result = submitted.entry, submitted.entry.result
    payment_id, loan_id = entry.payment.payment_id, entry.loan_id
    if result is not None:
        balance = f"{format_minor(result.outstanding_minor, result.currency)} {result.currency}"
        if result.duplicate or submitted.replayed:
            out.print(f"payment {payment_id} was applied before; outstanding {balance}")
        else:
            out.print(
                f"payment {payment_id} applied to {loan_id}:"
                f" outstanding {balance}, stage {result.stage}"
            )
    elif submitted.signalled:
        out.print(f"payment {payment_id} signalled to collection-{loan_id}")
    else:
        out.print(
            f"payment {payment_id} kept in the outbox for delivery to {loan_id}, not applied"
            " yet: Temporal or its workers did not answer in time"
        )
        if entry.last_error:
            err.print(f"  last error: {entry.last_error}", highlight=False)
        err.print(
            "  the relay of `overdue up` or `overdue api` applies it once Temporal and a worker"
            " answer; `overdue pay` with the same payment id shows where it stands"
        )


def _reported(submitted: Submission, *, via: str) -> dict[str, Any]:
    """What `overdue pay --json` says of a payment, whichever way it went."""
    entry, result = submitted.entry, submitted.entry.result
    payment = entry.payment
    reported: dict[str, Any] = {
        "loan_id": entry.loan_id,
        "payment_id": payment.payment_id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "via": via,
        # applied; signalled (taken by Temporal, applied when the collection next runs); queued
        # (kept in the outbox for the relay).
        "status": entry.outcome if result or not submitted.signalled else "signalled",
        "replayed": submitted.replayed,
    }
    if via == "signal":
        reported["signalled"] = submitted.signalled
    if result is not None:
        # Said of this command: a repeat of a stored payment applied nothing new.
        reported.update(
            applied=result.applied and not submitted.replayed,
            duplicate=result.duplicate or submitted.replayed,
            outstanding_minor=result.outstanding_minor,
            outstanding=format_minor(result.outstanding_minor, result.currency),
            stage=result.stage,
        )
    elif entry.status == "pending":
        reported.update(
            attempts=entry.attempts,
            next_attempt_at=entry.next_attempt_at.isoformat(),
            last_error=entry.last_error,
        )
    return reported
