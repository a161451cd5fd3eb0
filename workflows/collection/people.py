"""The loan's side of the work queue: its cases opened, assigned, escalated and closed.

The rules are ``workflows.queue``'s; here they are carried out. Each turn of the main loop
(``keep``) opens the case the machine's situation waits on, closes the one it no longer waits on,
and escalates any case past its deadline to the supervisor queue. Operators assign cases and
resolve complaints through ``case_action`` messages (``apply_actions``). Every change is one
ledger write, keyed and audited (``activities.cases``).
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows import queue
from workflows.collection import patches, view
from workflows.collection.context import Collection
from workflows.collection.inbox import Inbox
from workflows.commands import CaseChange
from workflows.queue import CaseAction, CaseBook, CaseKind, PersonCase

with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities


def book(c: Collection) -> CaseBook | None:
    """The loan's cases, once its history keeps them (``patches.WORK_QUEUE``); else None."""
    state = c.state
    if state.cases is None and c.patched(patches.WORK_QUEUE):
        state.cases = CaseBook()
    return state.cases


async def keep(c: Collection) -> None:
    """Open the case the situation waits on, close the one it no longer does, and escalate
    every case past its deadline. A closed loan waits on nobody but its complainants."""
    cases = book(c)
    if cases is None:
        return
    machine, now = c.machine, c.now()
    wanted = None if machine.is_closed else queue.situation_wait(machine.situation)
    for case in [x for x in cases.open if x.kind != CaseKind.COMPLAINT]:
        if wanted is None or case.kind != wanted[0]:
            # What ended the wait: the situation the decision led to, or how the loan closed.
            ended = str(machine.stage) if machine.is_closed else machine.situation
            cases.open.remove(case)
            await _write(c, CaseChange.of("case_closed", case, c.loan.loan_id, now, outcome=ended))
    if wanted is not None and all(x.kind != wanted[0] for x in cases.open):
        kind, asked = wanted
        await open_case(c, kind, asked, now)
    for case in cases.open:
        if case.escalated_at is None and now >= case.deadline:
            escalated_from = case.assignee
            case.escalated_at, case.assignee = now, queue.SUPERVISOR
            note = f"from {escalated_from or '-'}"
            await _write(c, CaseChange.of("case_escalated", case, c.loan.loan_id, now, note=note))


async def open_case(
    c: Collection,
    kind: CaseKind,
    asked: str,
    now: datetime,
    *,
    case_id: str | None = None,
    team: str = "collections",
) -> None:
    """Open a case with its deadline from the strategy, when the loan keeps cases."""
    cases = book(c)
    if cases is None:
        return
    cases.opened += 1
    days = c.state.strategy.case_deadlines.days_for(kind)
    case = PersonCase(
        case_id=case_id or f"{c.key}:case:{cases.opened}",
        kind=kind,
        asked=asked,
        opened_at=now,
        deadline=queue.working_days_after(now, days, c.zone),
        team=team,
    )
    cases.open.append(case)
    await _write(c, CaseChange.of("case_opened", case, c.loan.loan_id, now))


def deadlines(c: Collection) -> list[datetime]:
    """When a case falls past its deadline: the loan wakes to escalate it, paused or not."""
    cases = c.state.cases
    if cases is None:
        return []
    return [x.deadline for x in cases.open if x.escalated_at is None]


async def apply_actions(c: Collection, inbox: Inbox) -> None:
    """Carry out what operators asked of the cases, in order; one refused now (the case
    closed meanwhile) is audited as a refused message."""
    while inbox.case_actions:
        action = inbox.case_actions[0]
        inbox.in_hand = action.action_id
        cases = c.state.cases
        problem = queue.action_problem(action, cases.open if cases is not None else [])
        if problem is not None or cases is None:
            inbox.refused.append(f"case_action: {problem}")
        else:
            await _take(c, cases, action)
        inbox.case_actions.pop(0)
        inbox.in_hand = None
        c.state.seen_signal_ids.append(action.action_id)
        view.changed(c)


async def _take(c: Collection, cases: CaseBook, action: CaseAction) -> None:
    case = queue.target(action, cases.open)
    assert case is not None  # ``action_problem`` said so
    if action.resolve_with:
        cases.open.remove(case)
    await _write(c, CaseChange.taken(action, case, c.loan.loan_id, c.now()))


async def _write(c: Collection, change: CaseChange) -> None:
    summary = f"{change.action.replace('_', ' ')} · {change.case.kind}"
    await c.write(CaseActivities.record_case_change, change, summary)
