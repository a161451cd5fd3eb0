"""The work queue: cases waiting for a person (``queue``), taking one (``assign``), and
closing a complaint (``complaint resolve``)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from overdue import case_actions, cases
from overdue.cli.common import (
    DataDirOption,
    JsonOption,
    UserError,
    app,
    emit_json,
    load_config,
    out,
    run_async,
    services,
)
from workflows.queue import SUPERVISOR, CaseAction, CaseKind, ComplaintOutcome

complaint_app = typer.Typer(help="Complaint cases: a case of their own beside the repayment.")
app.add_typer(complaint_app, name="complaint")


@app.command("queue")
def queue_command(
    kind: Annotated[
        str | None, typer.Option(help=f"Only cases of this kind: {', '.join(CaseKind)}.")
    ] = None,
    assignee: Annotated[
        str | None,
        typer.Option(
            help=f"Only this person's cases; '{SUPERVISOR}' for escalated, '-' unassigned."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 500,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Loans and cases waiting for a person, oldest first, with deadline and what is asked."""
    if kind is not None and kind not in tuple(CaseKind):
        raise UserError(f"kind: expected one of {', '.join(CaseKind)}, got {kind!r}")
    now = datetime.now(UTC)

    async def go() -> list[cases.QueueRow]:
        async with services(load_config(data_dir), need_db=True) as s:
            assert s.pool is not None
            return await cases.open_cases(
                s.pool, kind=kind, assignee=assignee, now=now, limit=limit
            )

    rows = run_async(go())
    if as_json:
        emit_json([_row_json(r) for r in rows])
        return
    if not rows:
        out.print("no case waits for a person")
        return
    table = Table("opened", "case", "loan", "kind", "asked", "team", "assignee", "deadline")
    for r in rows:
        deadline = f"{r.deadline:%Y-%m-%d %H:%M} UTC"
        if r.past_deadline:
            deadline = f"[red]{deadline} past[/]"
        table.add_row(
            f"{r.opened_at:%Y-%m-%d %H:%M}",
            r.case_id,
            r.loan_id,
            r.kind,
            r.asked,
            r.team,
            r.assignee or "-",
            deadline,
        )
    out.print(table)


def _row_json(row: cases.QueueRow) -> dict[str, Any]:
    return {
        k: v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v
        for k, v in asdict(row).items()
    }


def _act(action: CaseAction, data_dir: Path | None, as_json: bool, done: str) -> None:
    async def go() -> None:
        async with services(load_config(data_dir), need_db=True) as s:
            assert s.pool is not None
            try:
                await case_actions.act(s.client, s.pool, action, datetime.now(UTC))
            except case_actions.CaseRefused as refused:
                raise UserError(str(refused)) from None

    run_async(go())
    if as_json:
        emit_json({"case_id": action.case_id, "action_id": action.action_id, "done": done})
    else:
        out.print(f"{action.case_id}: {done}")


def _action_id(given: str) -> str:
    return given or f"act-{uuid.uuid4().hex[:24]}"


@app.command()
def assign(
    case_id: Annotated[str, typer.Argument(help="The case, as `overdue queue` lists it.")],
    to: Annotated[str, typer.Option(help="Who takes it, e.g. ops:ann.")],
    by: Annotated[str, typer.Option(help="Who assigns it (kept in the audit log).")] = "ops:cli",
    action_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Assign a case to a person: the loan shows it (`Assignee`) and the audit log keeps it."""
    action = CaseAction(action_id=_action_id(action_id), case_id=case_id, operator=by, assign_to=to)
    _act(action, data_dir, as_json, f"assigned to {to}")


@complaint_app.command("resolve")
def complaint_resolve(
    case_id: Annotated[str, typer.Argument(help="The complaint case.")],
    outcome: Annotated[str, typer.Option(help=f"One of {', '.join(ComplaintOutcome.ALL)}.")],
    note: Annotated[str, typer.Option(help="What was found and done.")] = "",
    by: Annotated[str, typer.Option(help="Who resolves it (kept in the audit log).")] = "ops:cli",
    action_id: Annotated[str, typer.Option(help="An id that makes a retry harmless.")] = "",
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close a complaint case with its outcome; the repayment goes on as it was."""
    action = CaseAction(
        action_id=_action_id(action_id),
        case_id=case_id,
        operator=by,
        resolve_with=outcome,
        note=note,
    )
    _act(action, data_dir, as_json, f"resolved: {outcome}")
