"""``overdue simulate``: strategies compared on one seeded portfolio, on the time-skipping server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from overdue.cli.common import (
    JsonOption,
    UserError,
    app,
    emit_json,
    err,
    load_config,
    out,
    run_async,
)
from overdue.simulate import SimulationError, resolve_arms, simulate
from overdue.simulate_figures import FIGURES
from overdue.simulate_html import LABELS, PERCENT


@app.command("simulate")
def simulate_command(
    strategy: Annotated[
        list[str],
        typer.Option(
            "--strategy",
            help="A strategy to compare (a name, packaged or in OVERDUE_STRATEGIES, or a TOML "
            "file); give it once per strategy. The first is the baseline of the differences.",
        ),
    ],
    loans: Annotated[int, typer.Option(help="Loans in the portfolio.", min=1, max=5000)] = 100,
    seed: Annotated[int, typer.Option(help="Portfolio, borrower and bootstrap seed.")] = 7,
    days: Annotated[int, typer.Option(help="Collection days to simulate.", min=1, max=60)] = 40,
    details: Annotated[bool, typer.Option(help="Add every loan's result to the JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Write the report to this HTML file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare strategies on one simulated portfolio, without waiting for real days."""
    config = load_config()
    try:
        arms = resolve_arms(strategy, config.strategies_dir)
    except SimulationError as problem:
        raise UserError(str(problem)) from None
    with Progress(
        TextColumn("{task.fields[arm]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json and not sys.stderr.isatty(),
    ) as progress:
        tasks = {arm.name: progress.add_task(arm.name, total=loans, arm=arm.name) for arm in arms}

        def show(arm: str, done: int, total: int) -> None:
            progress.update(tasks[arm], completed=done, total=total)

        report = run_async(
            simulate(
                arms,
                loans=loans,
                seed=seed,
                days=days,
                details=details,
                html=html.absolute() if html is not None else None,
                on_progress=show,
            )
        )
    if as_json:
        emit_json(report)
    else:
        print_report(report)
        if report.get("html"):
            out.print(f"report: {report['html']}")


def shown(value: float | None, figure: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if figure in PERCENT else f"{value:.2f}"


def print_report(report: dict[str, Any]) -> None:
    out.print(
        f"[bold]Simulation[/]: {report['loans']} loans per strategy, seed {report['seed']},"
        f" {report['days']} collection days, {report['elapsed_seconds']} s"
    )
    arms = report["arms"]
    table = Table("figure", *arms, title="Per strategy (95% interval)")
    for figure in FIGURES:
        cells = []
        for arm in arms.values():
            f = arm["figures"][figure]
            cells.append(
                f"{shown(f['estimate'], figure)} [{shown(f['low'], figure)},"
                f" {shown(f['high'], figure)}]"
            )
        table.add_row(LABELS[figure], *cells)
    out.print(table)
    for pair, diff in report["differences"].items():
        changes = Table("figure", "difference", "95% interval", title=pair)
        for figure in FIGURES:
            d = diff[figure]
            changes.add_row(
                LABELS[figure],
                shown(d["estimate"], figure),
                f"[{shown(d['low'], figure)}, {shown(d['high'], figure)}]",
            )
        out.print(changes)
    for name, arm in arms.items():
        out.print(
            f"{name}: cured {arm['cured']} of {arm['loans']}, open at the horizon"
            f" {arm['open_at_horizon']}, {arm['loans_per_minute']} loans a minute"
        )
    for loan in report.get("stage_disagreements", []):
        out.print(
            f"[red]ledger[/]: {loan['loan_id']} stands {loan['stage']} but its audit log says"
            f" {loan['audited_stage']}: the report counts it where the log says"
        )
    out.print(f"[dim]{report['methods']['cure_rate']}; others: {report['methods']['others']}[/]")
