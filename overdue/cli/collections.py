"""Collections: start one loan or import a loan book, report payments (one, or a bank file),
conversation outcomes, dispute resolutions and review decisions, pause and resume, and show a
loan's status and a borrower's loans and contact budget."""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from activities.situations import outcome_facts
from overdue import borrowers, db
from overdue import client as ops
from overdue.bankfile import ImportReport, NotABankFile, import_bank_file, read_bank_file
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
from overdue.config import Config
from overdue.connection import connect
from overdue.loans import LoanInvalid, loan_from_fields, read_loan_book
from overdue.outbox import Outbox, TemporalClients
from overdue.outcomes import (
    DEFAULT_SOURCE,
    HARDSHIP_TERMS,
    SITUATION_CODES,
    decision_from_fields,
    outcome_from_fields,
    resolution_from_fields,
)
from overdue.schemas import ID_PATTERN, ID_RULE
from workflows.clock import format_local
from workflows.money import format_minor
from workflows.types import HoldRequest, PaymentReceived, PaymentResult
from workflows.vocabulary import CONVERSATION_CHANNELS, ComplaintCategory

T = TypeVar("T")
PLANS_TIMEOUT = 15.0  # seconds for the loans' plans before they are shown as unavailable
# Seconds `overdue pay` waits for the collection's answer: an update waits for a worker.
PAY_TIMEOUT = 30.0


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
                outcome = await ops.start_collection(s.client, loan, day_seconds=day_seconds)
                outcomes[outcome].append(loan.loan_id)
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
                "loan_id": loan_id,
                "payment_id": payment.payment_id,
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "via": "update",
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
        emit_json(
            {
                "loan_id": loan_id,
                "payment_id": payment.payment_id,
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "via": "signal",
                "signalled": True,
            }
        )
    else:
        out.print(f"payment {payment.payment_id} signalled to collection-{loan_id}")


@app.command()
def outcome(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    outcome_id: Annotated[str, typer.Option(help="The outcome's unique id (idempotency key).")],
    source: Annotated[str, typer.Option(help="Who reports, as kind:name.")] = DEFAULT_SOURCE,
    no_answer: Annotated[
        bool,
        typer.Option("--no-answer", help="Not a right-party conversation: not the borrower."),
    ] = False,
    situation: Annotated[
        str | None, typer.Option(help=f"Situation code: {', '.join(SITUATION_CODES)}.")
    ] = None,
    promise_amount: Annotated[
        str | None, typer.Option(help="Amount promised, in major units (12.50).")
    ] = None,
    promise_date: Annotated[
        str | None, typer.Option(help="Date promised, YYYY-MM-DD, borrower-local.")
    ] = None,
    complaint: Annotated[
        str | None, typer.Option(help=f"Complaint category: {', '.join(ComplaintCategory.ALL)}.")
    ] = None,
    dispute: Annotated[
        bool, typer.Option("--dispute", help="The borrower disputes the debt itself.")
    ] = False,
    hardship: Annotated[
        str | None, typer.Option(help=f"Hardship term: {' or '.join(HARDSHIP_TERMS)}.")
    ] = None,
    hardship_reason: Annotated[
        str | None, typer.Option(help="Why the borrower cannot pay.")
    ] = None,
    deceased_reported_by: Annotated[
        str | None, typer.Option(help="The borrower is reported dead, by this person.")
    ] = None,
    cease: Annotated[
        bool, typer.Option("--cease", help="The borrower asks that collection contact stop.")
    ] = False,
    refusal: Annotated[
        bool, typer.Option("--refusal", help="The borrower wilfully refuses to pay.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    channel: Annotated[
        str,
        typer.Option(
            help=f"How the conversation was held: {', '.join(CONVERSATION_CHANNELS)}."
            " A right-party one by phone counts for the borrower's conversation rules."
        ),
    ] = "call",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report what a conversation revealed: signals `contact_outcome`, idempotent by outcome id."""
    # The signal cannot refuse anything, so the outcome is checked against the running
    # collection first: the promise in the loan's currency, dated no earlier than the borrower's
    # today in collection time. The outcome takes the collection time as its own, so that
    # rules counted from a conversation (the us quiet period) hold under a compressed clock too.

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir)) as s:
            loan = await ops.loan_view(s.client, loan_id)
            reported = outcome_from_fields(
                loan,
                outcome_id=outcome_id,
                source=source,
                right_party=not no_answer,
                situation=situation,
                promise_amount=promise_amount,
                promise_date=promise_date,
                complaint=complaint,
                dispute=dispute,
                hardship=hardship,
                hardship_reason=hardship_reason,
                deceased_reported_by=deceased_reported_by,
                cease=cease,
                refusal=refusal,
                note=note,
                channel=channel,
            )
            await ops.send_outcome(s.client, loan_id, reported, pool=s.pool)
        return {
            "loan_id": loan_id,
            "outcome_id": reported.outcome_id,
            "source": reported.source,
            "channel": reported.channel,
            "at": reported.at.astimezone(UTC).isoformat(),
            "right_party": reported.right_party,
            "facts": outcome_facts(reported),
            "signalled": True,
        }

    result = run_async(go())
    if as_json:
        emit_json(result)
    else:
        out.print(f"outcome {result['outcome_id']} sent to collection-{loan_id}")


def _signal_at_collection_time(
    data_dir: Path | None,
    loan_id: str,
    build: Callable[[datetime], T],
    send: Callable[[Client, str, T], Awaitable[object]],
) -> T:
    """Build a message stamped with the loan's collection time, check it, and signal it."""

    async def go() -> T:
        async with services(load_config(data_dir)) as s:
            loan = await ops.loan_view(s.client, loan_id)
            message = build(loan.collection_time)
            await send(s.client, loan_id, message)
        return message

    return run_async(go())


@app.command("dispute-resolved")
def dispute_resolved(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    resolution_id: Annotated[
        str, typer.Option(help="The resolution's unique id (idempotency key).")
    ],
    upheld: Annotated[
        bool, typer.Option("--upheld", help="The dispute is upheld: the loan closes.")
    ] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="The dispute is rejected: collection resumes.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report the outcome of a dispute of the debt: signals `dispute_resolved`."""

    resolution = _signal_at_collection_time(
        data_dir,
        loan_id,
        lambda at: resolution_from_fields(
            resolution_id=resolution_id, upheld=upheld, rejected=rejected, at=at, note=note
        ),
        ops.resolve_dispute,
    )
    result = {
        "loan_id": loan_id,
        "resolution_id": resolution.resolution_id,
        "upheld": resolution.upheld,
        "at": resolution.at.astimezone(UTC).isoformat(),
        "signalled": True,
    }
    if as_json:
        emit_json(result)
    else:
        verdict = "upheld" if result["upheld"] else "rejected"
        out.print(f"dispute {verdict} ({result['resolution_id']}) sent to collection-{loan_id}")


@app.command()
def decide(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    review: Annotated[str, typer.Option(help="death_verification, hardship or estate.")],
    outcome: Annotated[
        str,
        typer.Option(help="verified|not_verified; approved|rejected; estate_claim|written_off."),
    ],
    decision_id: Annotated[str, typer.Option(help="The decision's unique id.")],
    by: Annotated[str, typer.Option(help="Who decided, e.g. ops:ann.")] = "ops:cli",
    note: Annotated[str | None, typer.Option(help="Free text.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a person's decision on a review: signals `review_decided`."""

    decision = _signal_at_collection_time(
        data_dir,
        loan_id,
        lambda at: decision_from_fields(
            decision_id=decision_id, review=review, outcome=outcome, by=by, at=at, note=note
        ),
        ops.send_decision,
    )
    result = {
        "loan_id": loan_id,
        "decision_id": decision.decision_id,
        "review": decision.review,
        "outcome": decision.outcome,
        "signalled": True,
    }
    if as_json:
        emit_json(result)
    else:
        out.print(f"{result['review']}: {result['outcome']} sent to collection-{loan_id}")


def _hold_command(
    loan_id: str, request: HoldRequest, data_dir: Path | None, as_json: bool, *, pause: bool
) -> None:
    change = ops.pause_collection if pause else ops.resume_collection

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir)) as s:
            return ops.status_view(await change(s.client, loan_id, request))

    view = run_async(go())
    if as_json:
        emit_json(view)
    else:
        _print_position(view)


@app.command()
def pause(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    by: Annotated[str, typer.Option(help="Who pauses, e.g. ops:ann.")] = "ops:cli",
    request_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause one loan: no outreach and no escalation until resumed; prints the new state."""
    request = HoldRequest(reason=reason, operator=by, request_id=request_id)
    _hold_command(loan_id, request, data_dir, as_json, pause=True)


@app.command()
def resume(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    by: Annotated[str, typer.Option(help="Who resumes, e.g. ops:ann.")] = "ops:cli",
    request_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused loan where it was; prints the new state."""
    request = HoldRequest(reason=reason, operator=by, request_id=request_id)
    _hold_command(loan_id, request, data_dir, as_json, pause=False)


@app.command()
def status(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show where a loan stands, and every attempt, payment, promise and notice."""

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir), need_db=True) as s:
            return await ops.loan_status(s.client, s.pool, loan_id)

    view = run_async(go())
    if as_json:
        emit_json(view)
    else:
        _print_status(view)


def _print_status(view: dict[str, Any]) -> None:
    _print_position(view)
    _print_record(view)


def _print_position(view: dict[str, Any]) -> None:
    """Where the loan stands: stage, balance, situation, a hold, and what comes next."""
    nxt = view.get("next_action") or {}
    out.print(
        f"[bold]{view['loan_id']}[/]  stage [bold]{view.get('stage')}[/]  DPD {view.get('days_past_due', '-')}"
    )
    out.print(
        f"outstanding {view.get('outstanding')} {view.get('currency')}  situation {view.get('situation', '-')}"
    )
    hold = view.get("hold")
    if hold:
        out.print(f"paused by {hold['operator']} since {hold['since']}: {hold['reason']}")
    if nxt.get("at_utc"):
        out.print(
            f"next: {nxt['kind']} {nxt.get('detail', '')} at {nxt['at_local']} (UTC {nxt['at_utc']})"
        )
    else:
        out.print(f"next: {nxt.get('kind', 'none')}")


def _print_record(view: dict[str, Any]) -> None:
    """The ledger's record: attempts, payments, promises, notices, cases, outcomes."""
    table = Table(
        "#",
        "UTC",
        "borrower-local",
        "channel",
        "target",
        "slot",
        "outcome",
        title="Contact attempts",
    )
    for a in view.get("attempts", []):
        table.add_row(
            str(a["attempt_no"]),
            a["at_utc"][:16],
            a["at_local"],
            a["channel"],
            a["target"],
            a["slot"],
            a["outcome"],
        )
    out.print(table)
    sections = (
        ("Payments", "payments"),
        ("Promises", "promises"),
        ("Notices", "notices"),
        ("Complaint cases", "complaint_cases"),
        ("Reported outcomes", "outcomes"),
    )
    for title, key in sections:
        rows = view.get(key, [])
        out.print(f"[bold]{title}[/]: {len(rows)}")
        for row in rows:
            out.print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))


@app.command()
def borrower(
    borrower_id: Annotated[str, typer.Argument(help="Borrower id.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one borrower across their loans: the shared contact budget used today and this
    week, places held in it, a cease request, and each loan's next contact."""
    if not ID_PATTERN.match(borrower_id):
        raise UserError(f"borrower_id: {ID_RULE}, got {borrower_id!r}")
    config = load_config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    limits = borrowers.default_strategy()

    async def go() -> dict[str, Any]:
        try:
            pool = await db.create_pool(config.database_url or "", max_size=4)
        except (OSError, asyncpg.PostgresError) as problem:
            raise UserError(f"cannot reach the ledger database ({problem})") from None
        try:
            found = await borrowers.read_loans(pool, borrower_id)
            if found is None:
                raise UserError(f"borrower_id: no borrower {borrower_id!r} in the ledger")
            # Temporal may be down: the ledger's part is shown all the same.
            plans = await _borrower_plans(config, [loan["loan_id"] for loan in found.loans])
            as_of, clock = borrowers.moment_of(plans, datetime.now(UTC))
            rows = await borrowers.read_budget(pool, found, as_of - borrowers.LOOK_BACK)
        finally:
            await pool.close()
        return borrowers.borrower_view(
            found,
            rows,
            plans,
            as_of=as_of,
            clock=clock,
            max_calls_per_day=limits.max_calls_per_day,
        )

    view = run_async(go())
    if as_json:
        emit_json(view)
    else:
        _print_borrower(view)


async def _borrower_plans(config: Config, loan_ids: list[str]) -> borrowers.Plans:
    """The loans' plans from Temporal, or why they are unavailable (never an error)."""
    if not loan_ids:
        return borrowers.Plans(True)
    try:
        async with asyncio.timeout(PLANS_TIMEOUT):
            client = await connect(config)
            return await borrowers.read_plans(client, loan_ids)
    except RuntimeError as problem:
        return borrowers.Plans.unavailable(
            f"temporal: cannot reach {config.temporal_address} ({problem})"
        )
    except TimeoutError:
        return borrowers.Plans.unavailable(f"temporal: no answer in {PLANS_TIMEOUT:.0f} s")


def _print_borrower(view: dict[str, Any]) -> None:
    """The borrower's loans, the shared budget next to its limits, held places, a cease request."""
    out.print(f"[bold]borrower {view['borrower_id']}[/]  time zone {view['timezone']}")
    out.print(f"[bold]Loans[/]: {len(view['loans'])}")
    for loan in view["loans"]:
        closed = f", closed {loan['closed_at'][:10]}" if loan["closed_at"] else ""
        out.print(
            f"  {loan['loan_id']}  {loan['product']}  stage {loan['stage']}"
            f"  outstanding {loan['outstanding']} {loan['currency']}  {loan['jurisdiction']}"
            f"  opened {loan['opened_at'][:10]}{closed}",
            highlight=False,
        )
        nxt = loan["next_contact"]
        if nxt is not None:
            detail = f" ({nxt['detail']})" if nxt.get("detail") else ""
            out.print(f"    next: {nxt['kind']} at {nxt['at_local']}{detail}", highlight=False)
        else:
            out.print(f"    next: none ({loan['workflow_status'] or 'plans unavailable'})")
    budget = view["budget"]
    table = Table(
        "shared budget",
        "today",
        "limit",
        "7 days",
        "limit",
        title=f"Contact budget at {budget['as_of_local']} ({budget['clock']} clock)",
    )

    def limit(entry: dict[str, Any], when: str) -> str:
        value = entry[f"{when}_limit"]
        return "-" if value is None else str(value)

    rules: dict[str, int] = {}
    for measure, title in borrowers.MEASURE_TITLES.items():
        entry = budget[measure]
        table.add_row(
            title,
            str(entry["today"]),
            limit(entry, "today"),
            str(entry["week"]),
            limit(entry, "week"),
        )
        for when in ("today", "week"):
            if entry[f"{when}_rule"]:
                rules[entry[f"{when}_rule"]] = entry[f"{when}_limit"]
    out.print(table)
    if rules:
        out.print("limits: " + ", ".join(f"{rule} {value}" for rule, value in rules.items()))
    zone = ZoneInfo(view["timezone"])

    def local(at: str) -> str:
        return format_local(datetime.fromisoformat(at), zone)

    last = budget["last_conversation_at"]
    out.print(f"last conversation: {local(last) if last else 'none in 7 days'}", highlight=False)
    if budget["quiet_until"]:
        out.print(
            f"no call to the borrower until {local(budget['quiet_until'])}"
            " (quiet_after_conversation)",
            highlight=False,
        )
    held = view["reservations"]
    out.print(f"[bold]Held reservations[/]: {len(held)}")
    for r in held:
        out.print(
            f"  {r['loan_id']}  {r['channel']} to {r['target']} at {r['at_local']}",
            highlight=False,
        )
    ceased = view["cease_requested_on"]
    out.print(
        f"cease request: stands, for all loans (made on {', '.join(ceased)})"
        if ceased
        else "cease request: none",
        highlight=False,
    )
    if not view["plans"]["available"]:
        out.print(f"[yellow]plans unavailable[/]: {view['plans']['problem']}", highlight=False)
