"""The collection's own rules, as pure functions: deadlines, pauses, plans and payments.

Nothing here runs an activity or reads a clock: every moment comes in as an argument, so each
rule is tested on its own (``tests/unit``) and the workflow only carries out what they answer.
The contact rules are the planner's (``workflows.planner``); the stages and situations are the
machine's (``workflows.machine``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from workflows import clock, queue
from workflows.machine import Action
from workflows.queue import PersonCase
from workflows.types import Arrangement, CollectionState, Instalment, Loan, PaymentReceived
from workflows.vocabulary import Review, Situation, Stage

# A person's decision, as the machine event it sends.
REVIEW_EVENTS = {
    (Review.DEATH_VERIFICATION, "verified"): "death_verified",
    (Review.DEATH_VERIFICATION, "not_verified"): "death_not_verified",
    (Review.HARDSHIP, "approved"): "forbearance_approved",
    (Review.HARDSHIP, "rejected"): "forbearance_rejected",
    (Review.ESTATE, "estate_claim"): "estate_claim_filed",
    (Review.ESTATE, "written_off"): "estate_written_off",
}
# The ``Situation`` label of each state of the machine's situation region but ``normal``.
REGION_LABELS = {
    "promised": Situation.PROMISE,
    "disputed": Situation.DISPUTE,
    "ceased": Situation.CEASED,
    "deceased_reported": Situation.DECEASED,
    "deceased_review": Situation.DECEASED,
    "estate_contact": Situation.DECEASED,
    "arrangement": Situation.HARDSHIP,
    "hardship_review": Situation.HARDSHIP,
    "forbearance": Situation.HARDSHIP,
}
# Labels of the normal situation: what outreach last revealed.
OUTREACH_LABELS = (
    Situation.NONE,
    Situation.NO_ANSWER,
    Situation.CONTACTED,
    Situation.REFUSAL,
    Situation.PROMISE_BROKEN,
)
# Labels that the next attempt's result replaces (a refusal stands until a conversation says
# more, or the situation moves).
ATTEMPT_LABELS = (
    Situation.NONE,
    Situation.NO_ANSWER,
    Situation.CONTACTED,
    Situation.PROMISE_BROKEN,
)
# The normal situation's label after the events that return to it.
LABEL_ON_RETURN = {
    "dispute_rejected": Situation.CONTACTED,
    "death_not_verified": Situation.CONTACTED,
    "forbearance_rejected": Situation.CONTACTED,
    "instalment_missed": Situation.PROMISE_BROKEN,
    "promise_kept": Situation.CONTACTED,
    "promise_broken": Situation.PROMISE_BROKEN,
}
# The message each stage's entry queues for the next outreach.
STAGE_MESSAGES = {Action.REMINDER_SMS: "early_reminder", Action.FIRM_SMS: "late_firm"}


def payment_problem(payment: PaymentReceived, currency: str) -> str | None:
    """Why a payment cannot be applied to a loan in ``currency``, naming the field; or None."""
    if payment.amount_minor <= 0:
        return f"amount_minor must be positive, got {payment.amount_minor}"
    if payment.currency != currency:
        return f"currency {payment.currency} does not match the loan's {currency}"
    return None


def paused(state: CollectionState, now: datetime) -> timedelta:
    """Collection time spent paused (disputes, death reports, plans, holds), one still open
    included."""
    spent = timedelta(seconds=state.paused_seconds)
    if state.paused_since is not None:
        spent += now - state.paused_since
    return spent


def track_pause(
    state: CollectionState, *, was_paused: bool, paused_now: bool, now: datetime
) -> None:
    """Start or close the pause the collection is in: paused time does not count towards the
    next stage."""
    if paused_now and not was_paused:
        state.paused_since = now
    elif was_paused and not paused_now and state.paused_since is not None:
        state.paused_seconds += (now - state.paused_since).total_seconds()
        state.paused_since = None


def broken_after(loan: Loan, state: CollectionState, zone: ZoneInfo, due_date: str) -> datetime:
    """When a promise or an instalment due on ``due_date`` is broken: local midnight after the
    date plus the strategy's grace days."""
    days = (date.fromisoformat(due_date) - date.fromisoformat(loan.due_date)).days
    return clock.day_starts(loan.due_date, days + 1 + state.strategy.promise_grace_days, zone)


def promise_deadline(loan: Loan, state: CollectionState, zone: ZoneInfo) -> datetime | None:
    """When the standing promise is broken, if one stands."""
    promise = state.promise
    return None if promise is None else broken_after(loan, state, zone, promise.due_date)


def next_instalment(state: CollectionState) -> Instalment | None:
    """The plan's first instalment not yet paid in full."""
    if state.arrangement is None:
        return None
    return next((i for i in state.arrangement.instalments if i.paid_minor < i.amount_minor), None)


def verification_deadline(state: CollectionState, situation: str) -> datetime | None:
    """When an unverified death report goes to a person, while one stands."""
    if situation != "deceased_reported" or not state.death_reported_at:
        return None
    return state.death_reported_at + timedelta(days=state.strategy.death_verification_days)


def deadlines(loan: Loan, state: CollectionState, situation: str, zone: ZoneInfo) -> list[datetime]:
    """Every moment a standing situation must be looked at again. An operator's hold defers
    them all: they are met once the loan is resumed."""
    if state.hold is not None:
        return []
    moments = [
        promise_deadline(loan, state, zone),
        verification_deadline(state, situation),
        first_contact_moment(loan, zone) if state.letters_waiting else None,
    ]
    instalment = next_instalment(state)
    if instalment is not None:
        moments.append(broken_after(loan, state, zone, instalment.due_date))
    return [m for m in moments if m is not None]


def instalment_plan(
    kind: str, key: str, state: CollectionState, today: date, number: int
) -> Arrangement:
    """Plan ``number`` of the collection keyed ``key`` (``Collection.key``): the outstanding
    balance in equal instalments (the remainder in the last), one every
    ``arrangement_interval_days``. Each instalment is a promise."""
    strategy = state.strategy
    count = (
        strategy.forbearance_instalments
        if kind == Action.FORBEARANCE
        else strategy.arrangement_instalments
    )
    share, remainder = divmod(state.outstanding_minor, count)
    return Arrangement(
        kind=kind,
        instalments=[
            Instalment(
                promise_id=f"{key}:plan:{number}:{n}",
                due_date=(
                    today + timedelta(days=strategy.arrangement_interval_days * n)
                ).isoformat(),
                amount_minor=share + (remainder if n == count else 0),
            )
            for n in range(1, count + 1)
        ],
    )


def pay_instalments(plan: Arrangement, amount_minor: int) -> list[Instalment]:
    """Put a payment on the plan's instalments in order. Returns the instalments it paid off."""
    paid_off = []
    for instalment in plan.instalments:
        if amount_minor <= 0:
            break
        owed = instalment.amount_minor - instalment.paid_minor
        if owed <= 0:
            continue
        paid = min(owed, amount_minor)
        instalment.paid_minor += paid
        amount_minor -= paid
        if instalment.paid_minor >= instalment.amount_minor:
            paid_off.append(instalment)
    return paid_off


def next_day_boundary(
    loan: Loan, state: CollectionState, now: datetime, zone: ZoneInfo
) -> datetime:
    """The next local midnight, or the moment the legal stage's referral falls due."""
    boundary = clock.day_starts(
        loan.due_date, clock.days_past_due(loan.due_date, now, zone) + 1, zone
    )
    if state.stage == Stage.LEGAL and state.stage_entered_at is not None:
        referral = state.stage_entered_at + timedelta(days=state.strategy.referral_after_days)
        # Once passed, the referral waits on a pause: the day boundary wakes the loan next.
        if referral > now:
            boundary = min(boundary, referral)
    return boundary


def stage_boundary(
    loan: Loan, state: CollectionState, now: datetime, zone: ZoneInfo, collection_dpd: int
) -> datetime | None:
    """The local midnight the next stage starts, or the moment the legal stage's referral falls
    due; None while collection is paused (the days do not count) or nothing is ahead.

    Lean histories wake for the calendar only then: a midnight that starts no stage calls for
    nothing, and days past due are refreshed by whatever wakes the loan next.
    """
    thresholds = {
        Stage.EARLY: state.strategy.stages.middle,
        Stage.MIDDLE: state.strategy.stages.late,
        Stage.LATE: state.strategy.stages.legal,
    }
    threshold = thresholds.get(state.stage)
    if threshold is not None:
        days_to_go = max(1, threshold - collection_dpd)
        dpd = clock.days_past_due(loan.due_date, now, zone)
        return clock.day_starts(loan.due_date, dpd + days_to_go, zone)
    if state.stage == Stage.LEGAL and state.stage_entered_at is not None:
        referral = state.stage_entered_at + timedelta(days=state.strategy.referral_after_days)
        if referral > now:
            return referral
    return None


def first_contact_moment(loan: Loan, zone: ZoneInfo) -> datetime:
    """No collection contact before the first day past due, borrower-local."""
    return clock.day_starts(loan.due_date, 1, zone)


# The notice a loan is served on entering legal; its serving is what ``LegalNoticeAt`` records.
LEGAL_NOTICE = "legal_notice"
# The operator named on a hold the collection put on itself when an activity gave up.
HELD_BY_THE_COLLECTION = "overdue"
# Every value ``waiting_for`` answers (the README's attribute table lists them).
WAITING_FOR_OPERATIONS = "operations"
WAITING_FOR_VALUES = (WAITING_FOR_OPERATIONS, *queue.CaseKind)


def waiting_for(state: CollectionState) -> str | None:
    """Whom the loan waits on (the ``WaitingFor`` search attribute), or None: ``operations``
    while an activity's failure holds it, else the kind of its first case
    (``queue.first_waited``)."""
    if state.hold is not None and state.hold.operator == HELD_BY_THE_COLLECTION:
        return WAITING_FOR_OPERATIONS
    case = _shown_case(state)
    return None if case is None else str(case.kind)


def assignee(state: CollectionState) -> str | None:
    """Who is on the case the loan shows it waits on (the ``Assignee`` search attribute)."""
    case = _shown_case(state)
    return None if case is None else case.assignee


def _shown_case(state: CollectionState) -> PersonCase | None:
    # A closed collection shows none: a complaint that outlives it is the ledger's to list
    # (``overdue queue``), and a closed run's attributes would never change again.
    if state.cases is None or state.stage in Stage.CLOSED:
        return None
    return queue.first_waited(state.cases.open)


def situation_label(state: CollectionState) -> Situation:
    """The ``Situation`` label operators see and filter by, derived from the machine.

    Each state of the situation region has its label; the normal one shows what outreach last
    revealed. A closed loan keeps the label of the situation it closed in. (A history recorded
    before ``situation-from-machine`` may show a label an outcome reported instead.)
    """
    if state.reported_label is not None:
        return state.reported_label
    return REGION_LABELS.get(state.situation_state, state.situation)


def situation_shown(state: CollectionState) -> str:
    """The ``Situation`` attribute and the status's ``situation``: the machine's situation
    state (``normal``, ``promised``, ``disputed``, ...), one vocabulary with the machine and
    the docs. Collections from before ``console-attributes`` keep showing the older labels."""
    if state.console:
        return state.situation_state
    return situation_label(state)


def outreach_shown(state: CollectionState) -> str | None:
    """The ``Outreach`` attribute and the status's ``outreach``: what outreach last revealed
    (``OUTREACH_LABELS``), kept through other situations so that a return to ``normal`` shows
    it again. None in collections from before ``console-attributes``."""
    if not state.console:
        return None
    # A label from code older than ``situation-from-machine`` is no outreach result.
    return str(state.situation) if state.situation in OUTREACH_LABELS else str(Situation.NONE)


def after_attempt(state: CollectionState) -> Situation:
    """The normal situation's label after an attempt, when no outcome has said more."""
    if state.situation not in ATTEMPT_LABELS:
        return state.situation
    if state.history.last_conversation_at is not None and state.history.unanswered_streak == 0:
        return Situation.CONTACTED
    if state.history.unanswered_streak > 0:
        return Situation.NO_ANSWER
    return state.situation
