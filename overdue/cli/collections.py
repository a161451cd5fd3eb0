"""Collections begun: start one loan, import a loan book, or scan the loan book for past-due
loans (the daily delinquency scan, at once)."""

from __future__ import annotations

import csv
import itertools
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.client import Client
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
from overdue.loans import LoanInvalid, loan_from_fields, loan_rows
from overdue.scan import ScanSettingsError, ScanTime, ensure_schedule, scan_now
from overdue.schemas import FieldError
from overdue.starts import start_all
from workflows.scan import SCHEDULE_ID
from workflows.types import Loan


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
    language: Annotated[
        str,
        typer.Option(help="Borrower's language, zh-CN or en-US (default: the jurisdiction's)."),
    ] = "",
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
        "language": language,
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
    """Begin collections for a loan book, 32 starts at a time. Bad rows are reported by line and
    field, and skipped. The file is read as the starts go, in flat memory however large."""
    check_day_seconds(day_seconds)
    outcomes: dict[str, list[str]] = {
        ops.StartOutcome.STARTED: [],
        ops.StartOutcome.ALREADY_RUNNING: [],
        ops.StartOutcome.ALREADY_ENDED: [],
    }
    errors: list[FieldError] = []
    taken: list[str] = []  # the loan ids in file order: the outcomes are listed so

    def good(rows: Iterator[Loan | FieldError]) -> Iterator[Loan]:
        for row in rows:
            if isinstance(row, FieldError):
                errors.append(row)
            else:
                taken.append(row.loan_id)
                yield row

    async def go() -> None:
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = sum(1 for _ in file) - 1  # a first pass, for the progress bar: about the rows
            file.seek(0)
            loans = good(loan_rows(file))
            first = next(loans, None)
            if first is None:
                return  # nothing to start: no connection needed
            async with services(load_config(data_dir)) as s:
                with Progress(
                    TextColumn("starting"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=err,
                    disable=as_json or not sys.stderr.isatty(),
                ) as progress:
                    task = progress.add_task("collections", total=max(rows, 1))

                    results = await start_all(
                        s.client,
                        itertools.chain([first], loans),
                        day_seconds=day_seconds,
                        on_started=lambda _loan, _outcome: progress.advance(task),
                    )
            for loan_id, outcome in zip(taken, results, strict=True):
                outcomes[outcome].append(loan_id)

    try:
        run_async(go())
    except OSError as problem:
        raise UserError(f"path: cannot read {path}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"path: {path} is not UTF-8 text") from None
    except csv.Error as problem:
        # The csv module refuses some garbage outright (a field over its size limit): that is a
        # file that is no loan book, not a crash ("error: Error: ..." with exit code 1).
        raise UserError(f"path: {path} is not a CSV loan book ({problem})") from None
    started, running = (
        outcomes[ops.StartOutcome.STARTED],
        outcomes[ops.StartOutcome.ALREADY_RUNNING],
    )
    rejected = [{"line": e.line, "field": e.field, "error": e.message} for e in errors]
    if as_json:
        emit_json({**outcomes, "rejected": rejected})
    else:
        out.print(
            f"started {len(started)}, already running {len(running)}, rejected rows {len(rejected)}"
        )
        for e in errors:
            err.print(f"  {path}:{e}")
    if errors:
        raise typer.Exit(1)


@app.command("scan")
def scan(
    now: Annotated[bool, typer.Option("--now", help="Run a scan at once.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="With --now: wait for it to finish.")
    ] = False,
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule",
            help="Create the daily schedule, or bring it to OVERDUE_SCAN_AT (a deploy job's step).",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """The daily delinquency scan: start a collection for every past-due loan of the book.

    Without --now, say when the schedule runs next.
    """
    if wait and not now:
        raise UserError("wait: only with --now")
    try:
        at = ScanTime.from_env()
    except ScanSettingsError as problem:
        raise UserError(str(problem)) from None

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir)) as s:
            if schedule:
                await ensure_schedule(s.client, at)
            if not now:
                return await _schedule_info(s.client)
            if wait:
                return await run_scan(s.client)
            handle = await scan_now(s.client)
            return {"workflow_id": handle.id, "started": True}

    report = run_async(go())
    if as_json:
        emit_json(report)
    elif "next_runs" in report:
        state = "paused" if report["paused"] else "active"
        out.print(f"schedule {SCHEDULE_ID} ({state}), next runs: {', '.join(report['next_runs'])}")
    elif "examined" in report:
        print_scan(report)
    else:
        out.print(f"started {report['workflow_id']}")


async def run_scan(client: Client) -> dict[str, Any]:
    """Run a scan now and wait for it: its workflow id and totals."""
    handle = await scan_now(client)
    return {"workflow_id": handle.id, **asdict(await handle.result())}


def print_scan(report: dict[str, Any]) -> None:
    out.print(
        f"{report['workflow_id']}: {report['examined']} loans examined,"
        f" {report['delinquent']} past due; {report['started']} collections started"
        f" ({report['started_again']} overdue again after a cure),"
        f" {report['already_running']} already running, {report['already_ended']} ended before;"
        f" {report['signalled']} running collections told of a change;"
        f" {report['escalated']} cases of ended collections escalated"
    )


async def _schedule_info(client: Client) -> dict[str, Any]:
    try:
        described = await client.get_schedule_handle(SCHEDULE_ID).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise UserError(
                f"schedule: {SCHEDULE_ID} does not exist; `overdue up` creates it"
            ) from None
        raise
    return {
        "schedule_id": SCHEDULE_ID,
        "paused": described.schedule.state.paused,
        "next_runs": [f"{t:%Y-%m-%d %H:%M} UTC" for t in described.info.next_action_times[:3]],
    }
