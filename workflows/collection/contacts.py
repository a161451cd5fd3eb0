"""Outreach: choosing the next contact, holding its place in the borrower's budget, making it.

The outreach module says what the stage calls for next, the planner says when the law and the
strategy allow it, and the ledger (``reserve_contact``) says whether the borrower's budget, shared
with their other loans, has room. The contact is then made by a channel activity, which checks the
place once more just before it dials.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from workflows import budget, clock, outreach, planner, rotation, slots
from workflows.collection import events, patches, people, rules
from workflows.collection.context import (
    OUTREACH_GIVES_UP_AFTER,
    Collection,
    PlannedOutreach,
    reason_of,
)
from workflows.commands import (
    BudgetTerms,
    ContactRequest,
    ContactReservation,
    LoadSlotPriors,
    ReservationResult,
    SiblingsQuery,
    SituationEvent,
)
from workflows.types import AttemptRecord, BorrowerChange, workflow_id_for
from workflows.vocabulary import Channel, Outcome, Target

with workflow.unsafe.imports_passed_through():
    from activities.budget import BudgetActivities
    from activities.channels import ChannelActivities
    from activities.situations import SituationActivities
    from activities.slots import SlotActivities

# Plans tried in one wake when the ledger refuses each one; then the loan waits for the budget.
MAX_PLANS_PER_WAKE = 3


async def plan(c: Collection, *, told: bool) -> datetime | None:
    """Choose the next outreach and return when to wake: the contact, a deadline, the next
    stage (or day), or None when only a message can wake the loan (it is paused, and nothing
    is planned).

    ``told``: another loan of the borrower said the shared budget changed since the last plan.
    """
    now = c.now()
    c.budget_wait = None
    # While a promise, a dispute or a cease request stands, the stage calls for nothing.
    intent = None if c.machine.outreach_held else _intent(c)
    budgeted = c.patched(patches.BORROWER_CONTACT_BUDGET)
    if intent is None:
        c.next = None
    elif not budgeted:
        planned = await _schedule(c, intent, now)
        c.next = None if planned is None else PlannedOutreach(intent, planned)
    else:
        held = c.next
        kept = (
            held if held is not None and held.intent == intent and held.planned.at > now else None
        )
        # A contact still ahead keeps its place in the ledger, which the other loans plan
        # around; when one of them changes what it may do, it says so (``told``), and the
        # loan asks the ledger again whether the place still stands.
        if kept is None or told:
            c.next = await _plan_within_budget(c, intent, now, kept)
    moments = [_calendar_wake(c, now)]
    if c.next is not None:
        moments.append(c.next.planned.at)
    elif c.budget_wait is not None and intent is not None:
        # Refused for now by the borrower's budget: look again when the rule lifts.
        moments.append(max(c.budget_wait[0], now))
    moments += [max(d, now) for d in rules.deadlines(c.loan, c.state, c.machine.situation, c.zone)]
    moments += [max(d, now) for d in people.deadlines(c)]
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _calendar_wake(c: Collection, now: datetime) -> datetime | None:
    """Older histories wake every local midnight; lean ones only when a stage starts (or the
    referral falls due), and never while collection is paused.

    A compressed clock (demos, tests) still wakes every collection midnight: its timers fire many
    collection hours late (a busy server's latency is most of a real second), and without the
    extra wakes a loan whose contacts the window keeps refusing at their late moments can wake at
    the same hour of the night every day and never reach anyone.
    """
    if not c.lean or c.state.clock.day_seconds is not None:
        return rules.next_day_boundary(c.loan, c.state, now, c.zone)
    if c.machine.collection_paused:
        return None
    return rules.stage_boundary(c.loan, c.state, now, c.zone, c.collection_dpd())


def _intent(c: Collection) -> outreach.Intent | None:
    state = c.state
    return outreach.next_intent(
        stage=c.machine.stage,
        strategy=state.strategy,
        profile=c.profile,
        history=state.history,
        queued_messages=state.queued_messages,
        nudges_in_streak=state.history.nudges_in_streak,
        borrower_id=c.loan.borrower.borrower_id,
        contact_ids=[contact.contact_id for contact in c.loan.contacts],
        contact_numbers={
            contact.contact_id: budget.number_key(contact.phone) for contact in c.loan.contacts
        },
    )


async def _plan_within_budget(
    c: Collection, intent: outreach.Intent, now: datetime, kept: PlannedOutreach | None
) -> PlannedOutreach | None:
    """Plan the contact (or keep the ``kept`` plan), and hold its place in the borrower's
    budget in the ledger.

    The ledger knows what the borrower's other loans have done and hold; when it refuses the
    planned moment, the loan plans again with that knowledge, from the moment the rule lifts.
    No collection contact is planned before the first day past due.
    """
    state = c.state
    if await _ceased_across_loans(c):
        return None
    earliest = max(now, rules.first_contact_moment(c.loan, c.zone))
    # The rules that pushed the plan past now, for the audit log and the Web UI.
    pushed_by: list[str] = []
    if earliest > now:
        pushed_by.append(f"{planner.Rule.NOT_YET_DUE} until {earliest.isoformat()}")
    for _ in range(MAX_PLANS_PER_WAKE):
        if kept is not None:  # still ahead: the caller keeps only such a plan
            planned = kept.planned
            kept = None
        else:
            fresh = await _schedule(c, intent, earliest)
            if fresh is None:
                return None
            planned = replace(fresh, deferred_by=(*pushed_by, *fresh.deferred_by))
        result = await _reserve(c, intent, planned.at, now)
        state.history.shared = result.shared
        if result.granted:
            return PlannedOutreach(intent, planned)
        if await _ceased_across_loans(c) or result.not_before is None:
            return None
        earliest = max(earliest, result.not_before)
        refusal = planner.Decision(False, result.rule, result.not_before, result.across_loans)
        pushed_by.append(planner.describe(refusal))
        c.budget_wait = (earliest, planner.describe(refusal).split(" until ")[0])
    return None


async def _reserve(
    c: Collection, intent: outreach.Intent, at: datetime, now: datetime
) -> ReservationResult:
    c.state.reservations += 1
    return await c.local_activity(
        BudgetActivities.reserve_contact,
        _reservation(c, intent, at, now, c.state.reservations),
        f"reserve {intent.channel} · borrower budget",
    )


def _reservation(
    c: Collection,
    intent: outreach.Intent,
    at: datetime,
    now: datetime,
    number: int,
    *,
    at_contact: bool = False,
) -> ContactReservation:
    state, loan = c.state, c.loan
    return ContactReservation(
        reservation_key=f"{c.key}:reservation:{number}",
        loan_id=loan.loan_id,
        borrower_id=loan.borrower.borrower_id,
        channel=intent.channel,
        target=intent.target,
        target_id=intent.target_id,
        number=c.number_of(intent.target, intent.target_id),
        at=at,
        expires_at=budget.reservation_lapses(at, state.clock.day_seconds),
        now=now,
        unanswered_streak=state.history.unanswered_streak,
        at_contact=at_contact,
        terms=BudgetTerms(
            jurisdiction=loan.jurisdiction,
            timezone=loan.borrower.timezone,
            max_calls_per_day=state.strategy.max_calls_per_day,
            min_gap_minutes=state.strategy.min_gap_minutes,
            cross_loan=state.history.cross_loan,
        ),
    )


async def _ceased_across_loans(c: Collection) -> bool:
    """A cease request on another of the borrower's loans covers this one too (strategy's
    cross-loan policy): the loan takes the ceased situation, on the record."""
    history = c.state.history
    if history.cease_requested or not (history.cross_loan.cease and history.shared.cease_requested):
        return False
    await events.situation_event(c, "cease_requested", "borrower", c.now())
    return True


async def tell_siblings(c: Collection, reason: str) -> None:
    """Tell the borrower's other running loans that the shared budget changed, so that none
    keeps a plan the change forbids (the quiet period, a cap, a cease request)."""
    if not c.patched(patches.TELL_SIBLINGS):
        return
    siblings = await c.local_activity(
        BudgetActivities.open_siblings,
        SiblingsQuery(c.loan.borrower.borrower_id, c.loan.loan_id),
        "the borrower's other loans",
    )
    change = BorrowerChange(reason, c.loan.loan_id, c.now())
    for loan_id in siblings:
        try:
            await c.signal(workflow_id_for(loan_id), "borrower_changed", change)
        except FailureError:
            # Ended meanwhile, or never started here: it has no plan to change.
            workflow.logger.info("loan %s was not told: not running", loan_id)


def count_conversation(c: Collection, at: datetime) -> None:
    """Fold a conversation someone reported into the history, as an answered call at ``at``."""
    state = c.state
    borrower_id = c.loan.borrower.borrower_id
    rotation.record_attempt(
        state.history,
        AttemptRecord(
            at,
            Channel.CALL,
            Target.BORROWER,
            borrower_id,
            rotation.slot_of(at, state.strategy, c.zone),
            Outcome.ANSWERED,
            number=c.number_of(Target.BORROWER, borrower_id),
            borrower_id=borrower_id,
            loan_id=c.loan.loan_id,
        ),
        c.slot_names(),
    )
    c.next = None  # the quiet period and the caps have moved: plan again


async def _schedule(
    c: Collection, intent: outreach.Intent, now: datetime
) -> planner.PlannedContact | None:
    state = c.state
    number = c.number_of(intent.target, intent.target_id)
    if intent.channel == Channel.CALL and intent.target == Target.BORROWER:
        learning = await _slot_learning(c)
        # Learning chooses which slots to aim for, best first (drawn before the planner draws
        # its minute); the planner still decides the moment, as for every contact.
        choice = None if learning is None else slots.choose(learning, c.slot_names(), c.random())
        planned = planner.plan_borrower_call(
            c.profile,
            state.strategy,
            state.history,
            intent.target_id,
            now,
            c.zone,
            c.random(),
            number=number,
            order=None if choice is None else choice.order,
        )
        if planned is None or choice is None:
            return planned
        return replace(planned, slot_choice=choice.reasons)
    proposal = planner.Proposal(
        now, intent.channel, intent.target, intent.target_id, number, c.loan.borrower.borrower_id
    )
    return planner.plan_message(
        c.profile, state.strategy, state.history, proposal, c.zone, c.random()
    )


async def _slot_learning(c: Collection) -> slots.SlotLearning | None:
    """What the collection learnt of the borrower's slots, or None where slots rotate blindly.

    A collection learns from the first borrower call it plans in a history that takes
    ``learning-slots``: the priors are read then, through a local activity (recorded in the
    history, so a replay uses the same ones), and carried in the state from then on. Later plans
    and runs read the state and ask no more.
    """
    state = c.state
    if state.slot_learning is not None:
        return state.slot_learning
    if not state.strategy.learn_slots or not c.patched(patches.LEARNING_SLOTS):
        return None
    loaded = await c.local_activity(
        SlotActivities.load_slot_priors,
        LoadSlotPriors(
            jurisdiction=c.loan.jurisdiction,
            borrower_id=c.loan.borrower.borrower_id,
            slots=c.slot_names(),
            as_of=c.now(),
        ),
        "slot priors · portfolio answer rates",
    )
    state.slot_learning = slots.SlotLearning.starting_from(loaded)
    return state.slot_learning


def _contact_moment(c: Collection, planned: planner.PlannedContact) -> datetime:
    """When the contact due now takes place: now, or on a compressed clock its planned moment.

    A compressed clock is a simulation, and a simulation runs on its plan: the server's timer
    latency, most of a real second when busy, is hours of a demo's day that no borrower lived.
    Taken as collection time, it would push nearly every call out of its slot, and the
    rotation, re-planning each one, would starve. Real clocks make the contact when it is made.
    """
    now = c.now()
    if (
        c.lean
        and c.state.clock.day_seconds is not None
        and planned.at < now
        and c.patched(patches.COMPRESSED_CLOCK_ON_PLAN)
    ):
        return planned.at
    return now


async def reach_out(c: Collection, planned_outreach: PlannedOutreach) -> None:
    """Make the planned contact, if the planner still allows it now (the timer may be late)."""
    state, loan = c.state, c.loan
    intent, planned = planned_outreach.intent, planned_outreach.planned
    now = _contact_moment(c, planned)
    budgeted = c.patched(patches.BORROWER_CONTACT_BUDGET)
    c.next = None
    proposal = planner.Proposal(
        now,
        intent.channel,
        intent.target,
        intent.target_id,
        c.number_of(intent.target, intent.target_id),
        loan.borrower.borrower_id,
        at_contact=True,
    )
    decision = planner.check(
        c.profile, state.history, proposal, c.zone, state.strategy if budgeted else None
    )
    if not decision.allowed:
        if c.patched(patches.AUDIT_DENIED_CONTACTS):
            await _audit_denial(c, intent, planner.describe(decision), now)
        return
    # A call that slipped into a slot already tried is planned again from now. A compressed
    # clock's calls take place in their planned slots (older demo histories made them where
    # they fell).
    if (
        c.lean
        and state.clock.day_seconds is None
        and not rotation.slot_still_fits(
            planned,
            intent.channel,
            intent.target,
            now,
            state.strategy,
            state.history,
            c.zone,
            state.slot_learning,
        )
    ):
        return
    state.attempt_count += 1
    slot = rotation.slot_of(now, state.strategy, c.zone)
    request = ContactRequest(
        idempotency_key=f"{c.key}:attempt:{state.attempt_count}",
        loan_id=loan.loan_id,
        borrower_id=loan.borrower.borrower_id,
        attempt_no=state.attempt_count,
        channel=intent.channel,
        target=intent.target,
        target_id=intent.target_id,
        slot=slot,
        purpose=intent.purpose,
        template=intent.template,
        stage=state.stage,
        at=now,
        at_local=clock.format_local(now, c.zone),
        timezone=loan.borrower.timezone,
        message=outreach.script(state.strategy, intent.template),
        scripts=outreach.translations(state.strategy, intent.template),
        outstanding_minor=state.outstanding_minor,
        currency=loan.currency,
        deferred_by=list(planned.deferred_by),
        reservation=(
            _reservation(c, intent, now, now, state.reservations, at_contact=True)
            if budgeted
            else None
        ),
        slot_choice=dict(planned.slot_choice),
    )
    method = (
        ChannelActivities.place_call
        if intent.channel == Channel.CALL
        else ChannelActivities.send_sms
    )
    # A short request to the provider, keyed by the attempt (a retry never reaches anyone
    # twice): in lean histories a local activity, inside the workflow task that woke for it.
    reach = c.local_activity if c.lean else c.activity
    try:
        result = await reach(method, request, attempt_summary(request), OUTREACH_GIVES_UP_AFTER)
    except (ActivityError, ApplicationError) as failure:
        # Not made within its limit: the attempt counts as failed, so the caps and the gaps
        # still hold and the next plan waits its turn, and the audit log says why.
        await _audit_failed_contact(c, intent, reason_of(failure), now)
        outcome = Outcome.FAILED
    else:
        if result.deferred is not None:
            # The budget filled up since the plan (another loan's contact came first): nothing
            # was sent, and the attempt number is free for the next plan.
            state.attempt_count -= 1
            state.history.shared = result.deferred.shared
            refusal = planner.Decision(
                False,
                result.deferred.rule,
                result.deferred.not_before,
                result.deferred.across_loans,
            )
            await _audit_denial(c, intent, planner.describe(refusal), now)
            return
        outcome = result.outcome
    rotation.record_attempt(
        state.history,
        AttemptRecord(
            now,
            intent.channel,
            intent.target,
            intent.target_id,
            slot,
            outcome,
            number=proposal.number if budgeted else "",
            borrower_id=loan.borrower.borrower_id if budgeted else "",
            loan_id=loan.loan_id if budgeted else "",
        ),
        c.slot_names(),
    )
    if (
        state.slot_learning is not None
        and intent.channel == Channel.CALL
        and intent.target == Target.BORROWER
    ):
        # Each call's outcome updates the slot's posterior: the borrower answering is a
        # success; no answer, busy and someone else answering are failures.
        state.slot_learning.record(slot, outcome)
    if budgeted and outcome == Outcome.ANSWERED and intent.target == Target.BORROWER:
        await tell_siblings(c, "conversation")
    if intent.template in state.queued_messages:
        state.queued_messages.remove(intent.template)
    if intent.template == outreach.NUDGE_TEMPLATE:
        state.history.nudges_in_streak += 1
    state.last_outcome = outcome
    state.situation = rules.after_attempt(state)


async def _audit_denial(c: Collection, intent: outreach.Intent, rule: str, now: datetime) -> None:
    """Every decision of the gate is on record: this one refused the contact."""
    state = c.state
    state.denials += 1
    await c.write(
        SituationActivities.record_situation_event,
        SituationEvent(
            c.loan.loan_id,
            f"{c.key}:contact_denied:{state.denials}",
            "contact_denied",
            now,
            {
                "channel": intent.channel,
                "target": intent.target,
                "purpose": intent.purpose,
                "rule": rule,
            },
        ),
        f"{intent.channel} denied · {rule.split(' until ')[0]}",
    )


async def _audit_failed_contact(
    c: Collection, intent: outreach.Intent, reason: str, now: datetime
) -> None:
    """A contact the provider could not make within its limit is on record, with why."""
    await c.write(
        SituationActivities.record_situation_event,
        SituationEvent(
            c.loan.loan_id,
            f"{c.key}:contact_failed:{c.state.attempt_count}",
            "contact_failed",
            now,
            {"channel": intent.channel, "target": intent.target, "reason": reason},
        ),
        f"{intent.channel} failed",
    )


def attempt_summary(request: ContactRequest) -> str:
    """The activity's summary in the Web UI: no PII."""
    who = "reference" if request.target == Target.CONTACT else "borrower"
    return f"{request.channel} #{request.attempt_no} · {who} · {request.slot} slot"
