"""What others see of a collection: the ``status`` query, search attributes, the UI's details.

Nothing here changes the loan. ``publish`` is the one place that upserts search attributes and
sets the Web UI's current details; it upserts only the values that changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from workflows import clock, planner, queue
from workflows import search_attributes as sa
from workflows.collection import patches, rules
from workflows.collection.context import Collection
from workflows.money import amount_band, format_minor, to_major
from workflows.types import (
    CollectionState,
    CollectionStatus,
    CollectionSummary,
    Loan,
    NextAction,
)
from workflows.vocabulary import NextActionKind, Situation, SituationState, Stage, Target

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


def status(c: Collection) -> CollectionStatus:
    """Where the loan stands, without PII: the ``status`` query's answer."""
    state, loan = c.state, c.loan
    now = c.now()
    return CollectionStatus(
        loan_id=loan.loan_id,
        stage=state.stage,
        days_past_due=c.dpd(now),
        outstanding_minor=state.outstanding_minor,
        recovered_minor=state.recovered_minor,
        currency=loan.currency,
        situation=rules.situation_shown(state),
        jurisdiction=loan.jurisdiction,
        timezone=loan.borrower.timezone,
        attempt_count=state.attempt_count,
        last_outcome=state.last_outcome,
        next_action=next_action(c),
        collection_time=now,
        recent_attempts=list(state.history.attempts),
        applied_payment_ids=list(state.applied_payment_ids),
        notices=list(state.notices),
        broken_promises=state.broken_promises,
        promise=state.promise,
        complaint_cases=list(state.complaint_cases),
        days_paused=rules.paused(state, now).days,
        arrangement=state.arrangement,
        hold=state.hold,
        fees_minor=state.fees_minor,
        total_outstanding_minor=state.total_outstanding_minor,
        refusals=list(state.recent_refusals),
        cases=list(state.cases.open) if state.cases is not None else [],
        outreach=rules.outreach_shown(state),
        served_notices=list(state.served_notices),
    )


def opening_status(loan: Loan, zone: ZoneInfo, now: datetime) -> CollectionStatus:
    """The status before the loan is opened (the state exists after two activities), for a
    query that comes first: ``overdue pay`` or ``status`` right after ``start``."""
    return CollectionStatus(
        loan_id=loan.loan_id,
        stage=Stage.EARLY,
        days_past_due=clock.days_past_due(loan.due_date, now, zone),
        outstanding_minor=loan.outstanding_minor,
        recovered_minor=0,
        currency=loan.currency,
        situation=SituationState.NORMAL,
        jurisdiction=loan.jurisdiction,
        timezone=loan.borrower.timezone,
        attempt_count=0,
        last_outcome=None,
        next_action=NextAction(kind=NextActionKind.STAGE_REVIEW, at_utc=None, at_local=None),
        collection_time=now,
        recent_attempts=[],
        applied_payment_ids=[],
        notices=[],
        total_outstanding_minor=loan.total_outstanding_minor or loan.outstanding_minor,
        outreach=str(Situation.NONE),
    )


def next_action(c: Collection, *, checked: bool = True) -> NextAction:
    """The contact planned next, or why there is none.

    ``checked``: a plan is shown only while the current state allows it. A death report, a
    cease request, a dispute, a hold or an objection since it was made forbid it at once,
    though the loop drops it only when it plans again. (Histories older than
    ``patches.LEAN_HISTORY`` published it unchecked: their search attributes must stay so.)
    """
    state = c.state
    held = checked and c.machine.outreach_held
    if c.next is None or (checked and not _allowed_now(c)):
        if state.hold is not None:
            return NextAction(
                kind=NextActionKind.ON_HOLD,
                at_utc=None,
                at_local=None,
                detail=f"by {state.hold.operator}",
            )
        if c.budget_wait is not None and state.stage in Stage.OPEN and not held:
            at, rule = c.budget_wait
            return NextAction(
                kind=NextActionKind.BUDGET_WAIT,
                at_utc=at,
                at_local=clock.format_local(at, c.zone),
                detail=f"deferred by {rule}",
            )
        kind = NextActionKind.NONE if state.stage in Stage.CLOSED else NextActionKind.STAGE_REVIEW
        return NextAction(kind=kind, at_utc=None, at_local=None)
    intent, planned = c.next.intent, c.next.planned
    kind = (
        NextActionKind.CONTACT
        if intent.target == Target.CONTACT
        else NextActionKind(intent.channel)
    )
    detail = f"{intent.purpose} · {planned.slot} slot"
    # The details name the borrower-level rule when it is what deferred the contact (the last
    # one that pushed it: the one that set its moment).
    across = [d for d in planned.deferred_by if planner.ACROSS_LOANS in d]
    if across:
        detail += f" · deferred by {across[-1].split(' until ')[0]}"
    return NextAction(
        kind=kind,
        at_utc=planned.at,
        at_local=clock.format_local(planned.at, c.zone),
        detail=detail,
    )


def changed(c: Collection) -> None:
    """Something operators see changed. Older histories publish it at once; lean ones once per
    wake, when the main loop is about to sleep (``publish``): one upsert per workflow task."""
    if not c.lean:
        publish(c)


def _allowed_now(c: Collection) -> bool:
    assert c.next is not None
    intent, planned = c.next.intent, c.next.planned
    proposal = planner.Proposal(
        planned.at,
        intent.channel,
        intent.target,
        intent.target_id,
        c.number_of(intent.target, intent.target_id),
        c.loan.borrower.borrower_id,
    )
    return planner.plan_shown(
        c.profile, c.state.history, proposal, c.zone, outreach_held=c.machine.outreach_held
    )


def publish(c: Collection, *, ending: str | None = None) -> None:
    """Keep search attributes and the UI's current details in step with the state.

    ``ending``: the run is about to end (``closed: cured``, ``continued as new``). The caller
    has dropped the plan, so ``NextContactAt`` is unset and the details name no next action
    that this run will never take.
    """
    state, loan = c.state, c.loan
    now = c.now()
    upcoming = next_action(c, checked=c.lean)
    values: dict[SearchAttributeKey[Any], Any] = {
        sa.LOAN_ID: loan.loan_id,
        sa.COLLECTION_STAGE: state.stage,
        sa.DAYS_PAST_DUE: c.dpd(now),
        sa.OUTSTANDING_MINOR: state.outstanding_minor,
        sa.SITUATION: rules.situation_shown(state),
        sa.BROKEN_PROMISES: state.broken_promises,
        sa.NEXT_CONTACT_AT: upcoming.at_utc,
    }
    if c.lean:
        # Set once (continue-as-new carries it): older histories never upserted it.
        values[sa.DUE_DATE] = clock.day_starts(loan.due_date, 0, c.zone)
    if state.total_outstanding_minor is not None:
        # Collections from before the loan book never wrote it (``patches.LOAN_BOOK``).
        values[sa.TOTAL_OUTSTANDING_AMOUNT] = to_major(state.total_outstanding_minor, loan.currency)
    if state.strategy.assigned:
        # Collections from before the assignment rules never wrote it.
        values[sa.STRATEGY] = f"{state.strategy.name}@{state.strategy.version}"
    waiting_for = rules.waiting_for(state)
    if waiting_for is not None or sa.WAITING_FOR.name in c.published:
        # Only once a loan waits on someone: histories from before never wrote it.
        values[sa.WAITING_FOR] = waiting_for
    if state.cases is not None:
        # Collections from before the work queue never wrote it.
        values[sa.ASSIGNEE] = rules.assignee(state)
    if state.console:
        # Collections from before ``console-attributes`` never wrote them.
        values.update(console_values(c))
    if c.patched(patches.SEARCH_ATTRIBUTES_ON_CHANGE):
        # Only what changed since the last upsert (or since the run began: continue-as-new
        # carries the attributes over), so most workflow tasks upsert nothing.
        values = {k: v for k, v in values.items() if c.published.get(k.name) != v}
        c.published.update({k.name: v for k, v in values.items()})
    updates: list[SearchAttributeUpdate[Any]] = [
        key.value_set(value) if value is not None else key.value_unset()
        for key, value in values.items()
    ]
    c.show(updates, _details(c, now, upcoming, ending))


def console_values(c: Collection) -> dict[SearchAttributeKey[Any], Any]:
    """The console attributes: the list read as money, holds and legal notices findable."""
    state, loan = c.state, c.loan
    legal = next((n for n in state.served_notices if n.kind == rules.LEGAL_NOTICE), None)
    return {
        sa.CURRENCY: loan.currency,
        sa.OUTSTANDING_AMOUNT: to_major(state.outstanding_minor, loan.currency),
        sa.ON_HOLD: state.hold is not None,
        sa.LEGAL_NOTICE_AT: legal.served_at if legal is not None else None,
        sa.OUTREACH: rules.outreach_shown(state),
    }


def _details(c: Collection, now: datetime, upcoming: NextAction, ending: str | None) -> str:
    state, loan = c.state, c.loan
    owed = f"**Outstanding** {format_minor(state.outstanding_minor, loan.currency)} {loan.currency}"
    if state.total_outstanding_minor is not None:
        owed = f"**Overdue** {format_minor(state.outstanding_minor, loan.currency)}"
        if state.fees_minor:
            owed += f" (fees {format_minor(state.fees_minor, loan.currency)})"
        owed += (
            f" · **Total outstanding**"
            f" {format_minor(state.total_outstanding_minor, loan.currency)} {loan.currency}"
        )
    when = (
        f" at {upcoming.at_local} (UTC {upcoming.at_utc:%Y-%m-%d %H:%M})"
        if upcoming.at_utc is not None
        else ""
    )
    lines = [
        loan_summary(loan),
        f"**Stage** {state.stage} · **DPD** {c.dpd(now)}",
        owed,
        _situation_line(state),
        (
            f"**Next** none · {ending}"
            if ending is not None
            else f"**Next** {upcoming.kind} {upcoming.detail}".rstrip() + when
        ),
    ]
    if state.hold is not None:
        # The reason is an operator's free text and may name the borrower: it stays in the
        # (encrypted) payloads and the ledger, never in the details the UI shows in clear.
        since = clock.format_local(state.hold.since, c.zone)
        lines.append(f"**Paused** by {state.hold.operator} since {since} borrower-local")
    open_cases = state.cases.open if state.cases is not None else []
    case = queue.first_waited(open_cases)
    if case is not None:
        due = clock.format_local(case.deadline, c.zone)
        late = " · **escalated**" if case.escalated_at is not None else ""
        lines.append(
            f"**Waiting for** {case.kind} ({case.asked}) · **assignee** {case.assignee or '-'}"
            f" · due {due} borrower-local{late} · {len(open_cases)} open case(s)"
        )
    if state.recent_refusals:
        # The signal and the field only: the problem's wording may quote what was sent.
        last = state.recent_refusals[-1]
        at = clock.format_local(last.at, c.zone)
        field = last.problem.split(":", 1)[0]
        lines.append(
            f"**Refused** {last.message} ({field}) at {at} borrower-local"
            f" · {len(state.recent_refusals)} in status"
        )
    return "\n".join(lines + story(c))


def _situation_line(state: CollectionState) -> str:
    line = f"**Situation** {rules.situation_shown(state)}"
    outreach = rules.outreach_shown(state)
    if outreach is not None:
        line += f" · **Outreach** {outreach}"
    return line + f" · **Last outcome** {state.last_outcome or '-'}"


def story(c: Collection) -> list[str]:
    """The loan's story so far, for the newest run's details: an operator who lands on a run
    of seven events still sees the stages, payments and notices of every run before it.

    Dates only, borrower-local, and no text of any letter: the details are shown in clear.
    """
    state, loan = c.state, c.loan
    # A collection from before the moments were kept has the earlier stages' names only.
    undated = state.entered_stages[: max(0, len(state.entered_stages) - len(state.stages_entered))]
    stages = " → ".join(
        [
            *undated,
            *(f"{s.stage} {s.at.astimezone(c.zone):%Y-%m-%d}" for s in state.stages_entered),
        ]
    )
    lines = [f"**Stages** {stages}"]
    payments = len(state.applied_payment_ids)
    if payments:
        recovered = format_minor(state.recovered_minor, loan.currency)
        lines.append(f"**Payments** {payments} · recovered {recovered} {loan.currency}")
    served = {n.notice_key: n for n in state.served_notices}
    notices = [
        f"{served[key].kind} {served[key].served_at.astimezone(c.zone):%Y-%m-%d}"
        if key in served
        else key.rsplit(":", 1)[-1]
        for key in state.notices
    ]
    if notices:
        # The command prints the latest; any other by its kind (or its key, from the status
        # query's ``served_notices``).
        latest = state.notices[-1].rsplit(":", 1)[-1]
        lines.append(
            f"**Notices** {', '.join(notices)} · text:"
            f" `overdue notice show {loan.loan_id} {latest}`"
        )
    return lines


def summary(c: Collection) -> CollectionSummary:
    """The workflow's result when the collection ends."""
    state, loan = c.state, c.loan
    open_stages = [s for s in state.entered_stages if s in Stage.OPEN]
    return CollectionSummary(
        loan_id=loan.loan_id,
        final_stage=state.stage,
        resolved_in=open_stages[-1] if open_stages else Stage.EARLY,
        days_past_due=c.dpd(c.now()),
        outstanding_minor=state.outstanding_minor,
        recovered_minor=state.recovered_minor,
        currency=loan.currency,
        attempt_count=state.attempt_count,
        payments=len(state.applied_payment_ids),
        notices=list(state.notices),
        ended_at=c.now(),
        broken_promises=state.broken_promises,
        situation=rules.situation_shown(state),
        outreach=rules.outreach_shown(state),
    )


def loan_summary(loan: Loan) -> str:
    """What the Web UI shows for a collection at a glance: no PII, no exact balance.

    It is the static summary of the first run, and the first line of every run's current
    details: continue-as-new cannot carry a static summary to the next run.
    """
    band = amount_band(loan.outstanding_minor, loan.currency)
    return f"Loan {loan.loan_id} · {loan.product} · {band} · {loan.jurisdiction}"
