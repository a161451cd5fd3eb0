"""Many loans at once: ``list`` (a visibility query, sorted on the client) and ``signal`` (one
signal to every loan a query matches, through the server's batch operations; ``pause`` and
``resume`` take ``--query`` too, in ``steering``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from overdue import bulk, listing
from overdue.cli.batch import (
    ConfirmAboveOption,
    JobIdOption,
    QueryOption,
    YesOption,
    bulk_signal,
    job_id_or_new,
)
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    err,
    load_config,
    out,
    run_async,
    services,
)

# --- list -----------------------------------------------------------------------------------


@app.command("list")
def list_(
    query: QueryOption = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="A search attribute to sort by, e.g. -OutstandingMinor (- descending); "
            "loans without it come last.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Show the first N only (holds at most 2N rows while sorting)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List collections matching a query (default: the running ones), sorted on the client.

    The dev server refuses ORDER BY, so every page of matches is read and sorted here.
    """
    try:
        key = listing.SortKey.parse(sort) if sort else None
    except listing.ListingError as problem:
        raise UserError(str(problem)) from None
    full_query = listing.collection_query(query)

    async def go() -> tuple[list[dict[str, Any]], int]:
        async with services(load_config(data_dir)) as s:
            order = key or listing.SortKey("StartTime", descending=True)
            return await listing.list_sorted(s.client, full_query, order, limit)

    try:
        rows, matched = run_async(go())
    except listing.ListingError as problem:
        raise UserError(str(problem)) from None
    if as_json:
        emit_json(rows)
        return
    _print_rows(rows)
    shown = f"{len(rows)} of {matched}" if len(rows) < matched else str(matched)
    err.print(f"{shown} collection(s) match {full_query}", highlight=False)


def _outstanding(row: dict[str, Any]) -> str:
    """The balance in collection, in the loan's currency when the row carries it."""
    currency = row.get("Currency")
    amount = row.get("OutstandingAmount")
    if amount is not None:
        return f"{amount:,.2f} {currency or ''}".strip()
    minor = row.get("OutstandingMinor")
    if minor is None:
        return "-"
    return f"{minor} minor {currency}" if currency else f"{minor} minor"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    table = Table(show_lines=False)
    for title in (
        "loan",
        "stage",
        "DPD",
        "situation",
        "outstanding",
        "total outstanding",
        "next contact (UTC)",
        "waiting for",
        "status",
    ):
        justify = "right" if title in ("DPD", "outstanding", "total outstanding") else "left"
        table.add_column(title, justify=justify, no_wrap=title == "loan")  # type: ignore[arg-type]
    for row in rows:
        total = row.get("TotalOutstandingAmount")
        table.add_row(
            _text(row.get("LoanId") or row["workflow_id"]),
            _text(row.get("CollectionStage")),
            _text(row.get("DaysPastDue")),
            _text(row.get("Situation")),
            _outstanding(row),
            "-" if total is None else f"{total:,.2f}",
            _text(row.get("NextContactAt")),
            _text(row.get("WaitingFor")),
            _text(row.get("status")),
        )
    out.print(table)


@app.command("signal")
def signal_(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The signal, e.g. pause.")],
    query: Annotated[str, typer.Option("--query", help="A visibility query: which running loans.")],
    input_: Annotated[str, typer.Option("--input", help="The signal's message, as JSON.")] = "{}",
    by: Annotated[str, typer.Option(help="Who sends it, e.g. ops:ann.")] = "ops:cli",
    reason: Annotated[str, typer.Option(help="Why (kept with the job).")] = "",
    job_id: JobIdOption = None,
    yes: YesOption = False,
    confirm_above: ConfirmAboveOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one signal to every running loan a query matches, as a batch job of the server.

    The input is checked against the signal's message, as the workflow checks it, before
    anything is sent.
    """
    try:
        message = bulk.checked_message(name, bulk.parse_input(input_))
    except bulk.BulkError as problem:
        raise UserError(str(problem)) from None
    bulk_signal(
        signal=name,
        message=message,
        query=query,
        operator=by,
        reason=reason,
        job_id=job_id_or_new(job_id, name),
        yes=yes,
        confirm_above=confirm_above,
        data_dir=data_dir,
        as_json=as_json,
    )
