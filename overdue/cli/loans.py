"""``overdue loans sync``: the lender's loan book, from its core system into PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from overdue.cli.collections import print_scan, run_scan
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    err,
    ledger_config,
    ledger_pool,
    load_config,
    out,
    run_async,
    services,
)
from overdue.loanbook import SyncReport, read_rows, sync

loans_app = typer.Typer(
    help="The loan book: loans and their schedules, as the lender's core system keeps them.",
    no_args_is_help=True,
)
app.add_typer(loans_app, name="loans")


@loans_app.command("sync")
def sync_loans(
    path: Annotated[
        Path, typer.Argument(help="Loans as CSV (the loan-book columns) or JSON Lines (.jsonl).")
    ],
    scan: Annotated[
        bool,
        typer.Option(
            "--scan",
            help="Then run the delinquency scan at once and wait for it: start the past-due"
            " loans' collections and tell running ones what changed.",
        ),
    ] = False,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store each loan whose version is new; report every bad line by line and field.

    The file is read a line at a time, however large. Syncing it again changes nothing. The
    daily scan acts on what was synced; --scan runs it now.
    """
    if not path.is_file():
        raise UserError(f"path: {path} is not a file")
    config = ledger_config(data_dir)

    async def go() -> SyncReport:
        async with ledger_pool(config) as pool:
            with Progress(
                SpinnerColumn(),
                TextColumn("syncing: {task.completed} lines"),
                TimeElapsedColumn(),
                console=err,
                disable=as_json or not sys.stderr.isatty(),
                transient=True,
            ) as progress:
                task = progress.add_task("lines", total=None)
                return await sync(
                    pool,
                    read_rows(path),
                    on_row=lambda report: progress.update(task, completed=report.lines),
                )

    try:
        report = run_async(go())
    except UnicodeDecodeError:
        raise UserError(f"path: {path} is not UTF-8 text") from None
    rejected = [{"line": e.line, "field": e.field, "error": e.message} for e in report.errors]
    scanned = run_async(_scan(data_dir)) if scan else None
    if as_json:
        emit_json({**report.counts, "rejected": rejected, **({"scan": scanned} if scan else {})})
    else:
        counts = ", ".join(f"{change} {n}" for change, n in report.counts.items())
        out.print(f"{counts}, rejected lines {len({e.line for e in report.errors})}")
        for problem in report.errors:
            err.print(f"  {path}:{problem}", highlight=False)
        if scanned is not None:
            print_scan(scanned)
    if report.errors:
        raise typer.Exit(1)


async def _scan(data_dir: Path | None) -> dict[str, Any]:
    async with services(load_config(data_dir)) as s:
        return await run_scan(s.client)
