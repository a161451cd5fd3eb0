"""``overdue report``: portfolio figures from the ledger, as tables, JSON or one HTML page."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
from overdue.report.figures import SPLITS, report
from overdue.report.html import write_html
from overdue.report.ledger import read_ledger
from overdue.report.rows import Period
from workflows.money import format_minor

DEFAULT_DAYS = 90


@app.command(name="report")
def report_command(
    since: Annotated[
        str | None,
        typer.Option(help="Start of the period: a date (its 00:00 UTC) or an ISO instant."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="End of the period: a date (through that whole day, UTC) or an ISO instant "
            "(excluded). Default: now; the period is 90 days unless --since says otherwise."
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Split the figures by strategy, jurisdiction or product.")
    ] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as one HTML page here.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Portfolio figures for a period: roll rates, cures, recovery, right-party contact,
    promises kept, contacts per cure and loans waiting for a person."""
    period = parse_period(since, until, datetime.now(UTC))
    if by is not None and by not in SPLITS:
        raise UserError(f"by: {by!r} is not one of {', '.join(SPLITS)}")
    config = ledger_config(data_dir)

    async def go() -> dict[str, Any]:
        async with ledger_pool(config) as pool:
            return report(await read_ledger(pool, period), period, by)

    figures = run_async(go())
    if html_file is not None:
        written = write_html(figures, html_file)
        figures["html"] = str(written.resolve())
    if as_json:
        emit_json(figures)
        return
    print_report(figures)
    if html_file is not None:
        err.print(f"report written to {figures['html']}")


def parse_period(since: str | None, until: str | None, now: datetime) -> Period:
    """The period the options name; a missing end is now, a missing start 90 days before it."""
    end = _instant("until", until, end_of_day=True) if until else now
    start = _instant("since", since, end_of_day=False) if since else end - timedelta(DEFAULT_DAYS)
    if start >= end:
        raise UserError(f"since: {start.isoformat()} is not before until {end.isoformat()}")
    return Period(start, end)


def _instant(name: str, value: str, *, end_of_day: bool) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO instant") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_report(figures: dict[str, Any]) -> None:
    """The figures as terminal tables, group by group."""
    period = figures["period"]
    out.print(f"[bold]Collections report[/] {period['since']} to {period['until']} (excluded)")
    for g in figures["groups"]:
        title = f"{figures['by']} {g['key']}" if figures["by"] else ""
        out.print(
            f"\n[bold]{title or 'all loans'}[/]: {g['loans']} loans, {g['collections']} collections"
        )
        rolls = Table(
            "stage",
            "loans",
            "rolled",
            "cured",
            "referred",
            "closed other",
            "stayed",
            title="Roll rates",
        )
        for r in g["roll_rates"]:
            s = r["shares"]
            rolls.add_row(
                r["stage"],
                str(r["loans"]),
                *(_pct(s[k]) for k in ("rolled", "cured", "referred", "closed_other", "stayed")),
            )
        out.print(rolls)
        cures = Table(
            "entry stage",
            "loans",
            "cured",
            "cure rate",
            "median days to cure",
            title="Cures by stage of entry",
        )
        for r in g["cures"]:
            days = r["median_days_to_cure"]
            cures.add_row(
                r["entry_stage"],
                str(r["loans"]),
                str(r["cured"]),
                _pct(r["cure_rate"]),
                "-" if days is None else f"{days}",
            )
        out.print(cures)
        recovery = Table(
            "currency",
            "loans",
            "overdue at opening",
            "recovered",
            "share",
            title="Recovery (collections opened in the period)",
        )
        for r in g["recovery"]:
            recovery.add_row(
                r["currency"],
                str(r["loans"]),
                format_minor(r["overdue_minor"], r["currency"]),
                format_minor(r["recovered_minor"], r["currency"]),
                _pct(r["share"]),
            )
        out.print(recovery)
        _print_contact(g["right_party_contact"])
        p, c, w = g["promises"], g["contacts_per_cure"], g["waiting_for_person"]
        out.print(
            f"promises: {p['made']} made, {p['settled']} settled, {p['kept']} kept, "
            f"{p['partially_kept']} partially kept, {p['broken']} broken; "
            f"kept rate {_pct(p['kept_rate'])}"
        )
        per_cure = c["contacts_per_cure"]
        out.print(
            f"contacts per cure: {'-' if per_cure is None else per_cure} "
            f"({c['contacts']} contacts, {c['cures']} cures)"
        )
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in w["by_reason"].items() if v)
        out.print(f"waiting for a person: {w['loans']}" + (f" ({reasons})" if reasons else ""))


def _print_contact(contact: dict[str, Any]) -> None:
    out.print(
        f"right-party contact: {_pct(contact['rate'])} "
        f"({contact['right_party']} of {contact['attempts']} phone attempts to borrowers)"
    )
    for key, title in (("by_slot", "slot"), ("by_hour", "local hour")):
        table = Table(
            title, "attempts", "right party", "rate", title=f"Right-party contact by {title}"
        )
        for r in contact[key]:
            table.add_row(
                str(r[key[3:]]), str(r["attempts"]), str(r["right_party"]), _pct(r["rate"])
            )
        if contact[key]:
            out.print(table)
