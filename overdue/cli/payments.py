"""Payments reported: one (`overdue pay`), or a bank file through the payment outbox."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from overdue import client as ops
from overdue import db
from overdue.bankfile import ImportReport, NotABankFile, import_bank_file, read_bank_file
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    checked_id,
    emit_json,
    err,
    load_config,
    out,
    run_async,
    services,
)
from overdue.outbox import Outbox, TemporalClients
from workflows.money import format_minor
from workflows.types import PaymentReceived, PaymentResult

# Seconds `overdue pay` waits for the collection's answer: an update waits for a worker.
PAY_TIMEOUT = 30.0


payments_app = typer.Typer(
    help="Payments from payment services: bank files, through the payment outbox.",
    no_args_is_help=True,
)
app.add_typer(payments_app, name="payments")


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
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")

    async def go() -> ImportReport:
        try:
            pool = await db.create_pool(config.database_url or "", max_size=4)
        except (OSError, asyncpg.PostgresError) as problem:
            raise UserError(f"cannot reach the ledger database ({problem})") from None
        try:
            # Temporal may be down: the lines are then stored for the relay to deliver.
            outbox = Outbox(pool, TemporalClients(config))
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
        finally:
            await pool.close()

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
            help="Signal payment_received and do not wait for the answer (for a source that"
            " cannot wait); the collection applies it when it next runs.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a payment received and answer with the balance after it; idempotent by payment id.

    It goes through the `apply_payment` update, as the HTTP API does, and waits for the
    collection's answer; once the collection has ended, the payment is recorded in the ledger
    (what exceeds the balance is kept as a credit to refund). With --signal it is signalled.
    """
    # Everything that does not depend on the loan is checked before connecting to anything.
    checked_id("loan_id", loan_id)
    ops.check_payment_arguments(amount, payment_id=payment_id, currency=currency, source=source)
    if signal:
        run_async(_signal_payment(loan_id, amount, payment_id, currency, source, data_dir, as_json))
        return

    async def go() -> tuple[PaymentReceived, PaymentResult]:
        async with services(load_config(data_dir)) as s:
            # The amount is read in the payment's currency, so the loan's is looked up only when
            # none is given; whether it is the loan's is the collection's (or ledger's) to say.
            payment = ops.payment_from_input(
                amount,
                currency or await ops.loan_currency(s.client, s.pool, loan_id),
                payment_id=payment_id,
                source=source,
            )
            try:
                result = await asyncio.wait_for(
                    ops.record_payment(s.client, s.pool, loan_id, payment), PAY_TIMEOUT
                )
            except TimeoutError:
                raise UserError(
                    f"loan_id: the collection of {loan_id} did not answer within"
                    f" {PAY_TIMEOUT:.0f} s (is a worker running?); the payment may still be"
                    " applied: repeat the command, which is idempotent by payment id"
                ) from None
        return payment, result

    payment, result = run_async(go())
    if result.rejection is not None:  # the ledger refused it (the id is another payment's)
        raise UserError(result.rejection)
    if as_json:
        emit_json(
            {
                **_reported(loan_id, payment, via="update"),
                "applied": result.applied,
                "duplicate": result.duplicate,
                "outstanding_minor": result.outstanding_minor,
                "outstanding": format_minor(result.outstanding_minor, result.currency),
                "stage": result.stage,
            }
        )
        return
    balance = f"{format_minor(result.outstanding_minor, result.currency)} {result.currency}"
    if result.duplicate:
        out.print(f"payment {payment.payment_id} was applied before; outstanding {balance}")
    else:
        out.print(
            f"payment {payment.payment_id} applied to {loan_id}:"
            f" outstanding {balance}, stage {result.stage}"
        )


async def _signal_payment(
    loan_id: str,
    amount: str,
    payment_id: str,
    currency: str | None,
    source: str,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    async with services(load_config(data_dir)) as s:
        payment = await ops.send_payment(
            s.client,
            loan_id,
            amount,
            payment_id=payment_id,
            currency=currency,
            source=source,
            pool=s.pool,
        )
    if as_json:
        emit_json({**_reported(loan_id, payment, via="signal"), "signalled": True})
    else:
        out.print(f"payment {payment.payment_id} signalled to collection-{loan_id}")


def _reported(loan_id: str, payment: PaymentReceived, *, via: str) -> dict[str, Any]:
    """What `overdue pay --json` says of any payment, whichever way it went."""
    return {
        "loan_id": loan_id,
        "payment_id": payment.payment_id,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "via": via,
    }
