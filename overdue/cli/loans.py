"""``overdue loans sync``: the lender's loan book, from its core system into PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    err,
    ledger_config,
    ledger_pool,
    out,
    run_async,
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
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store each loan whose version is new; report every bad line by line and field.

    The file is read a line at a time, however large. Syncing it again changes nothing.
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
    if as_json:
        emit_json({**report.counts, "rejected": rejected})
    else:
        counts = ", ".join(f"{change} {n}" for change, n in report.counts.items())
        out.print(f"{counts}, rejected lines {len({e.line for e in report.errors})}")
        for problem in report.errors:
            err.print(f"  {path}:{problem}", highlight=False)
    if report.errors:
        raise typer.Exit(1)
