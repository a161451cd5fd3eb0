"""The ``overdue`` command line. Every command can print JSON on stdout with ``--json``.

Errors are reported in one line that names the field at fault, never as a traceback (set
``OVERDUE_DEBUG=1`` to see one). Every command leaves through ``os._exit`` after flushing its
output: the Temporal SDK can abort at interpreter exit (sdk-python#300).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from activities.situations import outcome_facts
from overdue import client as ops
from overdue import codec_server as codecs
from overdue import db
from overdue.api import ApiSettings, api_settings, run_api, stack_api_settings
from overdue.bankfile import ImportReport, NotABankFile, import_bank_file, read_bank_file
from overdue.codec import EncryptionKeyError, data_converter
from overdue.config import Config
from overdue.demo import portfolio, run_portfolio, summarise
from overdue.loans import LoanInvalid, loan_from_fields, read_loan_book
from overdue.metrics import MetricsUnavailable, worker_runtime
from overdue.outbox import Outbox, TemporalClients
from overdue.outcomes import (
    DEFAULT_SOURCE,
    HARDSHIP_TERMS,
    SITUATION_CODES,
    OutcomeInvalid,
    decision_from_fields,
    outcome_from_fields,
    resolution_from_fields,
)
from overdue.stack import EmbeddedStack, StackError, register_search_attributes
from overdue.worker import ConnectionSettingsError, build_worker, connect, run_worker
from workflows.types import ComplaintCategory, HoldRequest

app = typer.Typer(
    help="Collections orchestrator for overdue loans, on Temporal and PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data dir (default: $OVERDUE_HOME or ./.overdue).")
]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _config(data_dir: Path | None = None) -> Config:
    return Config.from_env(home=data_dir)


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _emit_json(data: Any) -> None:
    out.file.write(json.dumps(data, indent=2, default=str) + "\n")


@dataclass
class Services:
    client: Client
    pool: asyncpg.Pool | None


@asynccontextmanager
async def services(config: Config, *, need_db: bool = False) -> AsyncIterator[Services]:
    """Connect to Temporal (and the ledger) as configured, or to the running embedded stack."""
    config = config.with_running_stack()
    try:
        client = await connect(config)
    except RuntimeError as problem:
        raise UserError(
            f"cannot reach Temporal at {config.temporal_address} ({problem}); "
            "start the stack with `overdue up` or set TEMPORAL_ADDRESS"
        ) from None
    pool = None
    if config.database_url:
        try:
            pool = await db.create_pool(config.database_url, max_size=4)
        except (OSError, asyncpg.PostgresError) as problem:
            if need_db:
                raise UserError(f"cannot reach the ledger database ({problem})") from None
    elif need_db:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    try:
        yield Services(client, pool)
    finally:
        if pool is not None:
            await pool.close()


def _stop_on_signals() -> asyncio.Event:
    """An event that Ctrl-C, SIGTERM or SIGHUP sets: long-running commands stop in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    return stop


# --- the stack ------------------------------------------------------------------------------


@app.command()
def up(
    data_dir: DataDirOption = None,
    encrypt: Annotated[
        bool,
        typer.Option(
            "--encrypt",
            help="Encrypt payloads (key file in the data dir unless keys are configured) and"
            " serve a codec server for the Web UI.",
        ),
    ] = False,
) -> None:
    """Start the embedded stack (Temporal + UI, PostgreSQL) and a worker, until Ctrl-C."""
    _run(_up(_config(data_dir), encrypt=encrypt))


def _worker_metrics() -> tuple[Runtime | None, str | None]:
    """The worker's metrics runtime and URL; a taken address is the user's to fix."""
    try:
        return worker_runtime()
    except MetricsUnavailable as problem:
        raise UserError(str(problem)) from None


async def _up(config: Config, *, encrypt: bool = False) -> None:
    # Before anything starts: a metrics address that cannot be bound stops `up` at once.
    runtime, metrics = _worker_metrics()
    codec = codecs.prepare_stack_codec(config) if encrypt else None
    if codec is not None:
        config = codec.config
    stack = EmbeddedStack(config, codec_endpoint=codec.endpoint if codec else None)
    serving: list[asyncio.Task[None]] = []
    stop = _stop_on_signals()
    try:
        await stack.start()
        out.print(f"[bold]overdue[/] data dir   {config.home}")
        out.print(f"Temporal         {stack.temporal_address} (namespace {config.namespace})")
        if stack.ui_url:
            out.print(f"Temporal Web UI  {stack.ui_url}")
        out.print(f"PostgreSQL       {stack.database_url}")
        if codec is not None:
            serving.append(asyncio.create_task(codec.serve(stack.ui_url, stop)))
            keys = config.encryption_key_file or "OVERDUE_ENCRYPTION_KEYS"
            made = f", new key {codec.created_key}" if codec.created_key else ""
            out.print(f"Codec server     {codec.endpoint} (payloads encrypted; keys {keys}{made})")
        # The port is chosen just before it is bound: another `up` may have taken it meanwhile.
        api, token_at = _stack_api(config)
        serving.append(
            asyncio.create_task(
                run_api(
                    replace(
                        config,
                        temporal_address=stack.temporal_address,
                        database_url=stack.database_url,
                    ),
                    api,
                    stop,
                )
            )
        )
        out.print(f"HTTP API         {api.url} (docs {api.url}/docs; bearer token in {token_at})")
        out.print(f"Metrics          {metrics or 'off (OVERDUE_METRICS_ADDRESS=off)'}")
        out.print("Worker           task queue 'collections' — press Ctrl-C to stop")
        await run_worker(
            replace(
                config,
                temporal_address=stack.temporal_address,
                database_url=stack.database_url,
            ),
            stop,
            runtime=runtime,
        )
    finally:
        out.print("stopping…")
        stop.set()
        await asyncio.gather(*serving)
        await stack.stop()


@app.command("codec-server")
def codec_server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = codecs.DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = codecs.DEFAULT_PORT,
    origin: Annotated[
        list[str] | None,
        typer.Option(
            help="Web UI origin allowed by CORS; repeatable"
            " (default: $OVERDUE_CODEC_ORIGINS or the local UI on :8233)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve /encode and /decode with the configured keys, for the Web UI and `temporal`.

    Requests need `Authorization: Bearer $OVERDUE_CODEC_TOKEN` when that is set.
    """
    config = _config(data_dir).with_running_stack()
    codec = codecs.codec_for(config)
    origins = [o.rstrip("/") for o in origin] if origin else codecs.origins_from_env()
    token = os.environ.get(codecs.TOKEN_ENV) or None

    async def serve() -> None:
        stop = _stop_on_signals()
        err.print(
            f"codec server: http://{host}:{port} for {', '.join(origins)}"
            f" ({'bearer token required' if token else 'no token: keep it on a private address'})"
        )
        await codecs.run_codec_server(
            codec, host=host, port=port, origins=origins, stop=stop, token=token
        )

    _run(serve())


def _stack_api(config: Config) -> tuple[ApiSettings, str]:
    """The API of `overdue up`, and where its token is; a bad setting stops `up` at once."""
    try:
        return stack_api_settings(config)
    except ValueError as problem:
        raise UserError(str(problem)) from None


@app.command("api")
def api_command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: $OVERDUE_API_ADDRESS's).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: $OVERDUE_API_ADDRESS's, or 8000).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Serve the HTTP API for payment services, and relay queued payments, until Ctrl-C.

    Requests need `Authorization: Bearer $OVERDUE_API_TOKEN`; without that token it does not
    start.
    """
    config = _config(data_dir).with_running_stack()
    try:
        settings = api_settings(config, host=host, port=port)
    except ValueError as problem:
        raise UserError(str(problem)) from None
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")

    async def serve() -> None:
        stop = _stop_on_signals()
        err.print(f"HTTP API: {settings.url} (docs {settings.url}/docs)")
        await run_api(config, settings, stop)

    _run(serve())


@app.command()
def worker(data_dir: DataDirOption = None) -> None:
    """Run a worker alone against the configured services."""
    run_worker_command(data_dir)


def run_worker_command(data_dir: Path | None = None) -> None:
    config = _config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL is not set and no embedded stack is running (`overdue up`)")
    runtime, metrics = _worker_metrics()

    async def serve() -> None:
        stop = _stop_on_signals()
        err.print(f"worker: Temporal {config.temporal_address}, task queue 'collections'")
        err.print(f"worker: metrics {metrics or 'off (OVERDUE_METRICS_ADDRESS=off)'}")
        await run_worker(config, stop, runtime=runtime)

    _run(serve())


@app.command()
def migrate(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Apply the ledger's pending migrations to DATABASE_URL; safe to run on every deploy."""
    # The embedded stack migrates as it starts; an external database is migrated here, once per
    # deploy, before any worker or API replica uses it (the advisory lock also serialises runs).
    config = _config(data_dir).with_running_stack()
    if not config.database_url:
        raise UserError("DATABASE_URL: not set, and no embedded stack is running")

    async def go() -> list[str]:
        assert config.database_url is not None
        try:
            pool = await db.create_pool(config.database_url, min_size=1, max_size=1)
        except (OSError, asyncpg.PostgresError) as problem:
            raise UserError(f"DATABASE_URL: cannot reach the ledger database ({problem})") from None
        try:
            return await db.migrate(pool)
        finally:
            await pool.close()

    applied = _run(go())
    if as_json:
        _emit_json({"applied": applied})
    else:
        out.print(f"applied {', '.join(applied)}" if applied else "the ledger is up to date")


# --- collections ----------------------------------------------------------------------------


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
    _check_day_seconds(day_seconds)

    async def go() -> str:
        async with services(_config(data_dir)) as s:
            return await ops.start_collection(s.client, loan, day_seconds=day_seconds)

    outcome = _run(go())
    result = {
        "loan_id": loan.loan_id,
        "outcome": outcome,
        "started": outcome == ops.StartOutcome.STARTED,
        "already_running": outcome == ops.StartOutcome.ALREADY_RUNNING,
    }
    if as_json:
        _emit_json(result)
    elif outcome == ops.StartOutcome.STARTED:
        out.print(f"started collection-{loan.loan_id}")
    elif outcome == ops.StartOutcome.ALREADY_RUNNING:
        out.print(f"collection-{loan.loan_id} is already running; nothing started")
    else:
        out.print(f"collection-{loan.loan_id} has already ended; nothing started")


def _check_day_seconds(day_seconds: float | None) -> None:
    if day_seconds is not None and not 0.05 <= day_seconds <= 86400:
        raise UserError("day_seconds: must be between 0.05 and 86400")


@app.command("import")
def import_loans(
    path: Annotated[Path, typer.Argument(help="Loan-book CSV file.")],
    day_seconds: Annotated[float | None, typer.Option(help="Compress time (see `start`).")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Begin collections for a loan book. Bad rows are reported by line and field, and skipped."""
    _check_day_seconds(day_seconds)
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
        async with services(_config(data_dir)) as s:
            for loan in book.loans:
                outcome = await ops.start_collection(s.client, loan, day_seconds=day_seconds)
                outcomes[outcome].append(loan.loan_id)
        return outcomes

    outcomes = _run(go())
    started, running = (
        outcomes[ops.StartOutcome.STARTED],
        outcomes[ops.StartOutcome.ALREADY_RUNNING],
    )
    rejected = [{"line": e.line, "field": e.field, "error": e.message} for e in book.errors]
    if as_json:
        _emit_json({**outcomes, "rejected": rejected})
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
    config = _config(data_dir).with_running_stack()
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

    report = _run(go())
    if as_json:
        _emit_json(report.as_json())
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
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report a payment received: signals `payment_received`, idempotent by payment id."""

    async def go() -> dict[str, Any]:
        async with services(_config(data_dir)) as s:
            payment = await ops.send_payment(
                s.client, loan_id, amount, payment_id=payment_id, currency=currency, source=source
            )
        return {
            "loan_id": loan_id,
            "payment_id": payment.payment_id,
            "amount_minor": payment.amount_minor,
            "currency": payment.currency,
            "signalled": True,
        }

    result = _run(go())
    if as_json:
        _emit_json(result)
    else:
        out.print(f"payment {result['payment_id']} sent to collection-{loan_id}")


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
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report what a conversation revealed: signals `contact_outcome`, idempotent by outcome id."""
    # The signal cannot refuse anything, so the outcome is checked against the running
    # collection first: the promise in the loan's currency, dated no earlier than the borrower's
    # today in collection time. The outcome takes the collection time as its own, so that
    # rules counted from a conversation (the us quiet period) hold under a compressed clock too.

    async def go() -> dict[str, Any]:
        async with services(_config(data_dir)) as s:
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
            )
            await ops.send_outcome(s.client, loan_id, reported, pool=s.pool)
        return {
            "loan_id": loan_id,
            "outcome_id": reported.outcome_id,
            "source": reported.source,
            "at": reported.at.astimezone(UTC).isoformat(),
            "right_party": reported.right_party,
            "facts": outcome_facts(reported),
            "signalled": True,
        }

    result = _run(go())
    if as_json:
        _emit_json(result)
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
        async with services(_config(data_dir)) as s:
            loan = await ops.loan_view(s.client, loan_id)
            message = build(loan.collection_time)
            await send(s.client, loan_id, message)
        return message

    return _run(go())


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
        _emit_json(result)
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
        _emit_json(result)
    else:
        out.print(f"{result['review']}: {result['outcome']} sent to collection-{loan_id}")


def _hold_command(
    loan_id: str, request: HoldRequest, data_dir: Path | None, as_json: bool, *, pause: bool
) -> None:
    change = ops.pause_collection if pause else ops.resume_collection

    async def go() -> dict[str, Any]:
        async with services(_config(data_dir)) as s:
            return ops.status_view(await change(s.client, loan_id, request))

    view = _run(go())
    if as_json:
        _emit_json(view)
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
        async with services(_config(data_dir), need_db=True) as s:
            return await ops.loan_status(s.client, s.pool, loan_id)

    view = _run(go())
    if as_json:
        _emit_json(view)
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


# --- the demo -------------------------------------------------------------------------------


@app.command()
def demo(
    loans: Annotated[int, typer.Option(help="How many loans.", min=1, max=2000)] = 30,
    seed: Annotated[int, typer.Option(help="Portfolio and simulation seed.")] = 7,
    day_seconds: Annotated[float, typer.Option(help="Real seconds per collection day.")] = 2.0,
    details: Annotated[bool, typer.Option(help="Add every loan's status to the JSON.")] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Collect a simulated portfolio end to end in compressed time, on the embedded stack."""
    _check_day_seconds(day_seconds)
    config = _config(data_dir)
    report = _run(_demo(config, loans, seed, day_seconds, details, quiet=as_json))
    if as_json:
        _emit_json(report)
    else:
        _print_report(report)


async def _demo(
    config: Config, count: int, seed: int, day_seconds: float, details: bool, *, quiet: bool
) -> dict[str, Any]:
    running = config.with_running_stack()
    stack = None
    if not running.database_url or not await _reachable(running):
        stack = EmbeddedStack(config)
        await stack.start()
        running = replace(
            config,
            temporal_address=stack.temporal_address,
            database_url=stack.database_url,
            simulation_seed=seed,
        )
        if stack.ui_url:
            err.print(
                f"Temporal Web UI: {stack.ui_url}  (the loans are visible there while the demo runs)"
            )
    else:
        running = Config(**{**running.__dict__, "simulation_seed": seed})
    try:
        client = await connect(running)
        await register_search_attributes(client, running.namespace)
        assert running.database_url is not None
        pool = await db.create_pool(running.database_url, max_size=10)
        try:
            async with build_worker(client, pool, running, max_concurrent_activities=50):
                run_tag = f"{datetime.now(UTC):%H%M%S}{uuid.uuid4().hex[:4]}"
                book = portfolio(count, seed, run_tag, datetime.now(UTC))
                with Progress(
                    TextColumn("collecting"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[finals]}"),
                    TimeElapsedColumn(),
                    console=err,
                    disable=quiet and not sys.stderr.isatty(),
                ) as progress:
                    task = progress.add_task("loans", total=len(book), finals="")

                    def show(done: int, finals: Any) -> None:
                        text = " ".join(f"{k}:{v}" for k, v in sorted(finals.items()))
                        progress.update(task, completed=done, finals=text)

                    result = await run_portfolio(
                        client, book, day_seconds=day_seconds, seed=seed, on_progress=show
                    )
                    progress.update(task, completed=len(book))
                report = await summarise(pool, result, client=client, details=details)
        finally:
            await pool.close()
    finally:
        if stack is not None:
            await stack.stop()
    report.update(seed=seed, day_seconds=day_seconds)
    return report


async def _reachable(config: Config) -> bool:
    try:
        await asyncio.wait_for(connect(config), timeout=3)
    except (RuntimeError, TimeoutError):
        return False
    return True


def _print_report(report: dict[str, Any]) -> None:
    out.print(
        f"[bold]Demo[/]: {report['loans']} loans in {report['elapsed_seconds']} s "
        f"(seed {report['seed']}, {report['day_seconds']} s per collection day)"
    )
    table = Table("final state", "loans", title="Outcomes")
    for state, n in report["final_states"].items():
        table.add_row(state, str(n))
    out.print(table)
    situations = Table("situation", "loans", title="Final situations")
    for situation, n in report.get("situations", {}).items():
        situations.add_row(situation, str(n))
    out.print(situations)
    out.print("recovered: " + ", ".join(f"{v} {c}" for c, v in report["recovered"].items()))
    attempts = Table("channel", "outcome", "attempts", title="Attempts")
    for channel, outcomes in report["attempts"].items():
        for outcome, n in outcomes.items():
            attempts.add_row(channel, outcome, str(n))
    out.print(attempts)
    out.print("escalations: " + ", ".join(f"{k} {v}" for k, v in report["escalations"].items()))
    office = report.get("back_office", {})
    decided = "; ".join(
        f"{review} " + ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items())
        for review, outcomes in office.get("decisions", {}).items()
    )
    out.print(
        f"back office: {decided or 'nothing to decide'};"
        f" instalments paid by standing order {office.get('instalments_paid', 0)}"
    )
    personas = Table("persona", "final states", title="By persona")
    for persona, finals in report["by_persona"].items():
        personas.add_row(persona, ", ".join(f"{k} {v}" for k, v in finals.items()))
    out.print(personas)


# --- engineers ------------------------------------------------------------------------------


@app.command()
def replay(
    files: Annotated[list[Path] | None, typer.Argument(help="History JSON files.")] = None,
    workflow_id: Annotated[
        str | None, typer.Option(help="Replay every run of this workflow.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            help="Replay every run a visibility query matches, e.g. 'CollectionStage=\"late\"'."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay workflow histories with the current code; exits 1 on any non-determinism."""
    from overdue.replay import HistoryReplayer, ReplayResult

    if not files and not workflow_id and not query:
        raise UserError("give history files, --workflow-id or --query")
    missing = [str(f) for f in files or [] if not f.is_file()]
    if missing:
        raise UserError(f"files: no such file {missing[0]}")

    async def go() -> list[ReplayResult]:
        if not workflow_id and not query:
            # Exports of an encrypted deployment need the keys: the configured ones decode them.
            converter = data_converter(_config(data_dir).with_running_stack())
            return await HistoryReplayer(converter).replay_files(files or [])
        async with services(_config(data_dir)) as s:
            # The client's converter decodes what the server holds (and an encrypted export).
            replayer = HistoryReplayer(s.client.data_converter)
            results = await replayer.replay_files(files or [])
            if workflow_id:
                results += await replayer.replay_workflow(s.client, workflow_id)
            if query:
                results += await _visible(replayer.replay_query(s.client, query), query)
        return results

    results = _run(go())
    failed = [r for r in results if not r.ok]
    if as_json:
        _emit_json(
            {
                "replayed": len(results),
                "failed": len(failed),
                "results": [asdict(r) | {"ok": r.ok} for r in results],
            }
        )
    else:
        for r in results:
            run = f" run {r.run_id}" if r.run_id else ""
            if r.ok:
                out.print(f"ok   {r.workflow_id}{run} ({r.source})", highlight=False)
                continue
            at = (
                f" first diverging event {r.diverging.event_id} ({r.diverging.event_type})"
                if r.diverging
                else ""
            )
            out.print(f"FAIL {r.workflow_id}{run} ({r.source}){at}: {r.error}", highlight=False)
        out.print(f"{len(results)} replayed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


async def _visible(listing: Awaitable[T], query: str) -> T:
    """Await a visibility listing, turning a malformed query into one line naming it."""
    try:
        return await listing
    except RPCError as error:
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UserError(f"query: {error.message}") from None
        raise


history_app = typer.Typer(
    help="Workflow histories, for the replay test corpus.", no_args_is_help=True
)
app.add_typer(history_app, name="history")


@history_app.command("export")
def history_export(
    workflow_id: Annotated[str | None, typer.Option(help="Every run of this workflow.")] = None,
    query: Annotated[
        str | None, typer.Option(help="Every run this visibility query matches.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write <workflow id>@<run id>.json files in.")
    ] = Path("tests/replay/histories"),
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write histories as JSON files (the Temporal CLI's form) for `overdue replay` and the corpus."""
    from overdue.replay import export_histories, quoted

    if bool(workflow_id) == bool(query):
        raise UserError("give either --workflow-id or --query")
    wanted = query or f"WorkflowId = {quoted(workflow_id or '')}"

    async def go() -> list[Path]:
        async with services(_config(data_dir)) as s:
            return await _visible(export_histories(s.client, wanted, out_dir), wanted)

    written = _run(go())
    if not written:
        raise UserError(f"query: no workflow matches {wanted}")
    if as_json:
        _emit_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            out.print(str(path), highlight=False)
        out.print(f"{len(written)} histories written to {out_dir}")


# --- entry point ----------------------------------------------------------------------------


def _guarded(fn: Callable[[], Any]) -> int:
    """Run a command and turn every failure into one clear line and an exit code."""
    try:
        fn()
        return 0
    except SystemExit as done:  # usage errors and typer.Exit, already reported
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except typer.Exit as done:
        return int(done.exit_code)
    except (
        UserError,
        LoanInvalid,
        ops.PaymentInvalid,
        ops.HoldRefused,
        OutcomeInvalid,
        ops.UnknownLoan,
        StackError,
        EncryptionKeyError,
        ConnectionSettingsError,
    ) as problem:
        message = problem.args[0] if isinstance(problem, ops.UnknownLoan) else str(problem)
        err.print(f"[red]error:[/] {message}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as problem:
        if os.environ.get("OVERDUE_DEBUG"):
            traceback.print_exc()
        err.print(f"[red]error:[/] {type(problem).__name__}: {problem}", highlight=False)
        return 1


def main() -> None:
    """Console entry point: run, flush, and leave without interpreter teardown."""
    code = _guarded(app)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
