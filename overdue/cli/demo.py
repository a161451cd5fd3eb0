"""``overdue demo``: a simulated portfolio collected end to end in compressed time, and its
report."""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from overdue import db
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    app,
    check_day_seconds,
    emit_json,
    err,
    load_config,
    out,
    run_async,
)
from overdue.config import Config
from overdue.connection import connect
from overdue.demo import portfolio, run_portfolio, summarise
from overdue.report.portfolio import write_portfolio_report
from overdue.stack import EmbeddedStack, register_search_attributes
from overdue.worker import build_worker


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
    check_day_seconds(day_seconds)
    config = load_config(data_dir)
    report = run_async(_demo(config, loans, seed, day_seconds, details, quiet=as_json))
    if as_json:
        emit_json(report)
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
        running = replace(stack.running_config, simulation_seed=seed)
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
                # The portfolio's own figures, plotted: kept under the data dir, path printed.
                written = await write_portfolio_report(
                    pool,
                    [loan.loan_id for loan in book],
                    config.home / "reports" / f"demo-{run_tag}.html",
                )
                report["report_path"] = str(written) if written is not None else None
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
    if report.get("report_path"):
        out.print(f"report: {report['report_path']}")
