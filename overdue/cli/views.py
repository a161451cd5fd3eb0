"""What a loan and a borrower look like: a loan's status and ledger record, and a borrower's
loans with their shared contact budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from overdue import borrowers, notices
from overdue import client as ops
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    checked_id,
    emit_json,
    ledger_config,
    ledger_pool,
    load_config,
    out,
    print_position,
    run_async,
    services,
)
from overdue.config import Config
from overdue.connection import connect
from workflows.clock import format_local

PLANS_TIMEOUT = 15.0  # seconds for the loans' plans before they are shown as unavailable


@app.command()
def status(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show where a loan stands, and every attempt, payment, promise and notice."""
    checked_id("loan_id", loan_id)

    async def go() -> dict[str, Any]:
        async with services(load_config(data_dir), need_db=True) as s:
            return await ops.loan_status(s.client, s.pool, loan_id)

    view = run_async(go())
    if as_json:
        emit_json(view)
    else:
        _print_status(view)


def _print_status(view: dict[str, Any]) -> None:
    print_position(view)
    _print_record(view)


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
        ("Cases waiting on a person", "cases"),
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
    checked_id("borrower_id", borrower_id)
    config = ledger_config(data_dir)
    limits = borrowers.default_strategy()

    async def go() -> dict[str, Any]:
        async with ledger_pool(config) as pool:
            found = await borrowers.read_loans(pool, borrower_id)
            if found is None:
                raise UserError(f"borrower_id: no borrower {borrower_id!r} in the ledger")
            # Temporal may be down: the ledger's part is shown all the same.
            plans = await _borrower_plans(config, [loan["loan_id"] for loan in found.loans])
            as_of, clock = borrowers.moment_of(plans, datetime.now(UTC))
            rows = await borrowers.read_budget(pool, found, as_of - borrowers.LOOK_BACK)
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


notice_app = typer.Typer(
    help="Notices served: the letters' text, read back from the ledger's copy.",
    no_args_is_help=True,
)
app.add_typer(notice_app, name="notice")


@notice_app.command("show")
def notice_show(
    loan_id: Annotated[str, typer.Argument(help="Loan id.")],
    notice_id: Annotated[
        str | None,
        typer.Argument(
            help="The notice's key (L-1001:legal_notice, as status lists it) or its kind"
            " (legal_notice: the latest of that kind). Default: the latest notice served."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a notice served for the loan, as the borrower received it.

    The text names the borrower: it is read from the file the worker wrote (on the machine the
    worker runs on), checked against the sha256 the ledger recorded, and shown nowhere else.
    """
    checked_id("loan_id", loan_id)
    config = ledger_config(data_dir)

    async def go() -> notices.ShownNotice:
        async with ledger_pool(config) as pool:
            try:
                return await notices.find_notice(pool, loan_id, notice_id)
            except notices.NoticeNotFound as problem:
                raise UserError(str(problem)) from None

    shown = run_async(go())
    if as_json:
        emit_json(shown.as_json())
        return
    out.print(
        f"[bold]{shown.notice_key}[/bold] · {shown.kind} · served {shown.issued_at:%Y-%m-%d %H:%M} UTC"
        f" · sha256 {shown.sha256[:12]}…",
        highlight=False,
    )
    out.print(shown.text, markup=False, highlight=False)
