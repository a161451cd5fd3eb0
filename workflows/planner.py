"""The contact planner: the single gate for every outreach.

Given a loan's contact history and its jurisdiction profile, the planner answers two questions:
``check`` ("is this contact allowed at that moment, and if not, by which rule and until when?")
and the ``plan_*`` functions ("when is the next allowed moment for this kind of contact?").

The profiles are law, not tuning (``workflows.profiles``); the strategy may only be stricter than
the law (fewer calls a day, longer gaps), never looser. Where a call falls in the day's slots is
the rotation's (``workflows.rotation``). Everything is pure and deterministic: randomness comes in as an argument, which in
workflow code is ``workflow.random()``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from workflows import budget
from workflows.profiles import JurisdictionProfile
from workflows.rotation import slot_of, slots_to_avoid
from workflows.strategy import Strategy
from workflows.types import AttemptRecord, ContactHistory
from workflows.vocabulary import Channel, Outcome, Target

WEEK = timedelta(days=7)
HORIZON_DAYS = 21  # how far ahead the planner looks before it gives up on a contact


class Rule:
    """Names of the rules a denial cites; they are written to the audit log."""

    WINDOW = "window"
    UNANSWERED_PER_NUMBER_PER_DAY = "unanswered_per_number_per_day"
    CONVERSATIONS_PER_DAY = "conversations_per_day"
    CALLS_PER_WEEK = "calls_per_week"
    QUIET_AFTER_CONVERSATION = "quiet_after_conversation"
    THIRD_PARTY_OBJECTED = "third_party_objected"
    THIRD_PARTY_ONCE = "third_party_once"
    THIRD_PARTY_BORROWER_REACHABLE = "third_party_borrower_reachable"
    DISPUTE_PENDING = "dispute_pending"
    CEASE_REQUESTED = "cease_requested"
    BORROWER_DECEASED = "borrower_deceased"
    MIN_GAP = "min_gap"  # the strategy's least time between two attempts
    DAILY_CALLS = "daily_calls"  # the strategy's calls to the borrower a day
    NOT_YET_DUE = "not_yet_due"  # no collection contact before the first day past due


class CallLimits(Protocol):
    """The strategy's own limits per borrower: a ``Strategy``, or the ledger's ``BudgetTerms``."""

    @property
    def max_calls_per_day(self) -> int: ...

    @property
    def min_gap_minutes(self) -> int: ...


@dataclass(frozen=True)
class Proposal:
    """A contact the workflow would like to make.

    ``number`` is the key of the phone number it would reach and ``borrower_id`` the borrower it
    is about: the borrower-level budget counts by them. Empty, only this loan's attempts count.
    """

    at: datetime
    channel: str
    target: str
    target_id: str
    number: str = ""
    borrower_id: str = ""
    # Checked at the moment of the contact itself, not planned ahead: another loan's place is
    # then kept apart by the gap alone (a planned contact keeps the gap and a grace for
    # lateness), and another loan's contact in flight may be a conversation.
    at_contact: bool = False


@dataclass(frozen=True)
class Decision:
    """The planner's answer. ``not_before`` is None when the rule never lifts by itself.

    ``across_loans`` marks a denial that the borrower's other loans cause: this loan alone is
    within the rule.
    """

    allowed: bool
    rule: str | None = None
    not_before: datetime | None = None
    across_loans: bool = False


ALLOWED = Decision(allowed=True)


@dataclass(frozen=True)
class PlannedContact:
    """When a contact may happen, and which rules pushed it there (``rule until moment``)."""

    at: datetime
    slot: str
    deferred_by: tuple[str, ...] = ()
    # Why a borrower call aims at its slot: each slot and its draw (``workflows.slots``).
    slot_choice: tuple[tuple[str, str], ...] = ()


ACROSS_LOANS = "across the borrower's loans"


def describe(decision: Decision) -> str:
    """A denial as the audit log states it: the rule, and until when (or for good)."""
    until = decision.not_before.isoformat() if decision.not_before else "further notice"
    scope = f" {ACROSS_LOANS}" if decision.across_loans else ""
    return f"{decision.rule}{scope} until {until}"


def _note(trail: list[str] | None, decision: Decision) -> None:
    if trail is not None and not decision.allowed and describe(decision) not in trail:
        trail.append(describe(decision))


def _local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _window_opens(day: date, profile: JurisdictionProfile, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, profile.window_start, tzinfo=zone).astimezone(UTC)


def _in_window(at: datetime, profile: JurisdictionProfile, zone: ZoneInfo) -> bool:
    local_time = at.astimezone(zone).time()
    return profile.window_start <= local_time < profile.window_end


def _next_window_opening(at: datetime, profile: JurisdictionProfile, zone: ZoneInfo) -> datetime:
    day = _local_day(at, zone)
    opening = _window_opens(day, profile, zone)
    if opening > at:
        return opening
    return _window_opens(day + timedelta(days=1), profile, zone)


def _next_day_opening(at: datetime, profile: JurisdictionProfile, zone: ZoneInfo) -> datetime:
    return _window_opens(_local_day(at, zone) + timedelta(days=1), profile, zone)


def _borrower_calls(attempts: Iterable[AttemptRecord]) -> list[AttemptRecord]:
    return [a for a in attempts if a.channel == Channel.CALL and a.target == Target.BORROWER]


def borrower_unreachable(profile: JurisdictionProfile, history: ContactHistory) -> bool:
    """Unanswered long enough, or reported dead: the cases in which ``cn`` allows references."""
    return (
        history.borrower_deceased
        or history.unanswered_streak >= profile.unreachable_after_unanswered
    )


def check(
    profile: JurisdictionProfile,
    history: ContactHistory,
    proposal: Proposal,
    zone: ZoneInfo,
    strategy: CallLimits | None = None,
) -> Decision:
    """Whether ``proposal`` may happen at ``proposal.at``.

    Letters are not bound to the time of day. Calls and messages must fall in the window; calls
    also count against the profile's caps. Situations come first, and none lifts by itself: a
    dispute stops all collection outreach until it is resolved; a cease request stops calls and
    messages (notices remain); a borrower reported dead is not contacted at all.

    Every cap set per person or per number counts the borrower's other loans too
    (``history.shared``); a denial that only they cause says so (``across_loans``). With
    ``strategy``, its calls a day and minimum gap are checked as well, per borrower and number.
    """
    at = proposal.at
    if history.dispute_open:
        return Decision(False, Rule.DISPUTE_PENDING)
    reaching_out = proposal.channel in (Channel.CALL, Channel.SMS)
    ceased, ceased_elsewhere = budget.cease_requested(history)
    if ceased and reaching_out:
        return Decision(False, Rule.CEASE_REQUESTED, across_loans=ceased_elsewhere)
    deceased, deceased_elsewhere = budget.borrower_deceased(history)
    if deceased and proposal.target == Target.BORROWER:
        # Not even a letter: the family and the estate get letters of their own.
        return Decision(False, Rule.BORROWER_DECEASED, across_loans=deceased_elsewhere)
    if proposal.target == Target.CONTACT:
        third_party = check_third_party(profile, history, proposal.target_id, proposal.number)
        if not third_party.allowed:
            return third_party
    if proposal.channel == Channel.LETTER:
        return ALLOWED
    if not _in_window(at, profile, zone):
        return Decision(False, Rule.WINDOW, _next_window_opening(at, profile, zone))
    if strategy is not None:
        spaced = _check_gap(strategy, history, proposal)
        if not spaced.allowed:
            return spaced
    if proposal.channel != Channel.CALL:
        return ALLOWED
    return _check_call_caps(profile, history, proposal, zone, strategy)


def _check_gap(strategy: CallLimits, history: ContactHistory, proposal: Proposal) -> Decision:
    """No two attempts to one borrower or one number closer than the strategy's gap.

    The loan's own past attempts are spaced by the plan; another loan's attempt or reservation
    is spaced on both sides, since it may be planned after this one and still come first.
    """
    gap = timedelta(minutes=strategy.min_gap_minutes)
    at = proposal.at

    def apart(attempt: AttemptRecord) -> timedelta:
        # A plan keeps a grace beyond the gap around another loan's place, so that either
        # contact may run a little late and still keep the gap from the other.
        planned_place = attempt.outcome == budget.RESERVED and not proposal.at_contact
        return gap + budget.RESERVATION_GRACE if planned_place else gap

    blocking = [a.at + gap for a in history.attempts if a.at <= at and at < a.at + gap]
    blocking_others = [
        a.at + apart(a)
        for a in history.shared.attempts
        if _same_person_or_number(a, proposal) and abs(at - a.at) < apart(a)
    ]
    if not blocking and not blocking_others:
        return ALLOWED
    return Decision(
        False,
        Rule.MIN_GAP,
        max(blocking + blocking_others),
        across_loans=not blocking,
    )


def _same_person_or_number(attempt: AttemptRecord, proposal: Proposal) -> bool:
    return (bool(proposal.borrower_id) and attempt.borrower_id == proposal.borrower_id) or (
        budget.same_number(attempt, proposal.number, proposal.target_id)
    )


def _check_call_caps(
    profile: JurisdictionProfile,
    history: ContactHistory,
    proposal: Proposal,
    zone: ZoneInfo,
    strategy: CallLimits | None,
) -> Decision:
    at = proposal.at
    today = _local_day(at, zone)
    own = [a for a in history.attempts if a.at <= at and _local_day(a.at, zone) == today]
    others = [
        a
        for a in history.shared.attempts
        if budget.happened_by(a, at) and _local_day(a.at, zone) == today
    ]
    borrower_id = proposal.borrower_id

    def full_today(rule: str, cap: int | None, counted: budget.Counted) -> Decision | None:
        if cap is None or not counted.over(cap):
            return None
        return Decision(
            False,
            rule,
            _next_day_opening(at, profile, zone),
            across_loans=counted.only_with_others(cap),
        )

    def unanswered(a: AttemptRecord) -> bool:
        return (
            a.channel == Channel.CALL
            and budget.same_number(a, proposal.number, proposal.target_id)
            and a.outcome in (*Outcome.UNANSWERED, budget.RESERVED)
        )

    refusal = full_today(
        Rule.UNANSWERED_PER_NUMBER_PER_DAY,
        profile.max_unanswered_per_number_per_day,
        budget.count(map(unanswered, own), map(unanswered, others)),
    ) or full_today(
        Rule.CONVERSATIONS_PER_DAY,
        profile.max_conversations_per_day,
        budget.count(
            map(budget.is_conversation, own),
            (
                budget.may_be_conversation(a, proposal) and budget.of_borrower(a, borrower_id)
                for a in others
            ),
        ),
    )
    if refusal is not None:
        return refusal
    if proposal.target != Target.BORROWER:
        return ALLOWED
    if strategy is not None:
        refusal = full_today(
            Rule.DAILY_CALLS,
            strategy.max_calls_per_day,
            budget.count(
                (True for _ in _borrower_calls(own)),
                (budget.of_borrower(a, borrower_id) for a in _borrower_calls(others)),
            ),
        )
        if refusal is not None:
            return refusal
    if profile.quiet_after_conversation is not None:
        quiet = profile.quiet_after_conversation
        last, elsewhere = _last_conversation(history, proposal)
        if last is not None and at < last + quiet:
            return Decision(False, Rule.QUIET_AFTER_CONVERSATION, last + quiet, elsewhere)
    if profile.max_calls_per_week is not None:
        cap = profile.max_calls_per_week
        own_week = [a.at for a in _borrower_calls(history.attempts) if at - WEEK < a.at <= at]
        others_week = (
            [
                a.at
                for a in _borrower_calls(history.shared.attempts)
                if budget.of_borrower(a, borrower_id) and at - WEEK < a.at <= at
            ]
            if history.cross_loan.weekly_calls
            else []
        )
        week = sorted(own_week + others_week)
        if len(week) >= cap:
            # The window frees up when enough of the oldest calls in it fall out.
            excess = len(week) - cap
            return Decision(
                False,
                Rule.CALLS_PER_WEEK,
                week[excess] + WEEK + timedelta(seconds=1),
                across_loans=len(own_week) < cap,
            )
    return ALLOWED


def _last_conversation(history: ContactHistory, proposal: Proposal) -> tuple[datetime | None, bool]:
    """The last conversation by the proposal's moment, and whether it was about another loan."""
    at, borrower_id = proposal.at, proposal.borrower_id
    own = [a.at for a in history.attempts if budget.is_conversation(a) and a.at <= at]
    if history.last_conversation_at is not None and history.last_conversation_at <= at:
        own.append(history.last_conversation_at)
    others = (
        [
            a.at
            for a in history.shared.attempts
            if budget.may_be_conversation(a, proposal)
            and budget.of_borrower(a, borrower_id)
            and a.at <= at
        ]
        if history.cross_loan.quiet_period
        else []
    )
    last_own, last_other = max(own, default=None), max(others, default=None)
    if last_other is not None and (last_own is None or last_other > last_own):
        return last_other, True
    return last_own, False


def check_third_party(
    profile: JurisdictionProfile, history: ContactHistory, contact_id: str, number: str = ""
) -> Decision:
    """The rules for references. An objection, and having been asked once, hold for the person
    (by number) across all the borrower's loans."""
    if budget.objected(history, contact_id, number):
        return Decision(
            False,
            Rule.THIRD_PARTY_OBJECTED,
            across_loans=contact_id not in history.objected_third_parties,
        )
    if budget.already_asked(history, contact_id, number):
        # Both profiles: a reference is asked once (Regulation F: location information once).
        return Decision(
            False,
            Rule.THIRD_PARTY_ONCE,
            across_loans=contact_id not in history.contacted_third_parties,
        )
    if profile.third_party_needs_unreachable and not borrower_unreachable(profile, history):
        return Decision(False, Rule.THIRD_PARTY_BORROWER_REACHABLE)
    return ALLOWED


def next_allowed(
    profile: JurisdictionProfile,
    history: ContactHistory,
    proposal: Proposal,
    zone: ZoneInfo,
    *,
    limit: datetime | None = None,
    trail: list[str] | None = None,
    strategy: CallLimits | None = None,
) -> datetime | None:
    """The first moment at or after ``proposal.at`` when the proposal is allowed.

    Returns None when a rule never lifts by itself, or when nothing is allowed before ``limit``.
    Each denial met on the way is added to ``trail``, if given.
    """
    limit = limit or proposal.at + timedelta(days=HORIZON_DAYS)
    at = proposal.at
    while at <= limit:
        decision = check(profile, history, _at(proposal, at), zone, strategy)
        _note(trail, decision)
        if decision.allowed:
            return at
        if decision.not_before is None:
            return None
        at = max(decision.not_before, at + timedelta(minutes=1))
    return None


def _at(proposal: Proposal, at: datetime) -> Proposal:
    return replace(proposal, at=at)


def earliest_next_attempt(history: ContactHistory, now: datetime, strategy: Strategy) -> datetime:
    """No two attempts closer than the strategy's gap."""
    if not history.attempts:
        return now
    last = max(a.at for a in history.attempts)
    return max(now, last + timedelta(minutes=strategy.min_gap_minutes))


def plan_borrower_call(
    profile: JurisdictionProfile,
    strategy: Strategy,
    history: ContactHistory,
    borrower_id: str,
    now: datetime,
    zone: ZoneInfo,
    rng: random.Random,
    number: str = "",
    *,
    order: Sequence[str] | None = None,
) -> PlannedContact | None:
    """The next call to the borrower: a slot not yet tried in this rotation, minute jittered.

    Slots are tried earliest first. A candidate must fit the slot, the window, the strategy's
    gap and daily limit, and pass ``check``; otherwise the next candidate is tried.

    With ``order`` (learning slots, ``workflows.slots.choose``), only the slots it names are
    aimed at, and each day in its order, best first: the first day with a moment the rules
    allow gets the best of its slots still open. Learning chooses the slot; ``check`` still
    decides every moment.
    """
    if order is None:
        avoid = slots_to_avoid(history, strategy)
        ranked = sorted(strategy.slots, key=lambda s: s.start_minute)
    else:
        avoid = {s.name for s in strategy.slots} - set(order)
        by_name = {s.name: s for s in strategy.slots}
        ranked = [by_name[name] for name in order if name in by_name]
    earliest = earliest_next_attempt(history, now, strategy)
    trail: list[str] = []
    first_day = _local_day(earliest, zone)
    for offset in range(HORIZON_DAYS):
        day = first_day + timedelta(days=offset)
        calls_that_day = [
            a for a in _borrower_calls(history.attempts) if _local_day(a.at, zone) == day
        ]
        if len(calls_that_day) >= strategy.max_calls_per_day:
            continue
        for slot in ranked:
            if slot.name in avoid:
                continue
            candidate = _jittered_moment(
                day, slot.start_minute, slot.end_minute, profile, zone, earliest, rng
            )
            if candidate is None:
                continue
            proposal = Proposal(
                candidate, Channel.CALL, Target.BORROWER, borrower_id, number, borrower_id
            )
            decision = check(profile, history, proposal, zone, strategy)
            if decision.allowed:
                return PlannedContact(at=candidate, slot=slot.name, deferred_by=tuple(trail))
            _note(trail, decision)
            if decision.not_before is None:
                return None
            earliest = max(earliest, decision.not_before)
    return None


def _jittered_moment(
    day: date,
    start_minute: int,
    end_minute: int,
    profile: JurisdictionProfile,
    zone: ZoneInfo,
    earliest: datetime,
    rng: random.Random,
) -> datetime | None:
    """A random whole minute of ``day`` in [start, end) that is also in the window and not early.

    The pick is checked against the window in local time, so a daylight-saving change inside the
    slot cannot push a call outside it; if the pick fails, the first good minute is taken.
    """
    lo = max(start_minute, _minute_of_day(profile.window_start))
    hi = min(end_minute, _minute_of_day(profile.window_end))
    if _local_day(earliest, zone) == day:
        local_earliest = earliest.astimezone(zone)
        lo = max(lo, _minute_of_day(local_earliest.time()) + (1 if local_earliest.second else 0))
    elif _local_day(earliest, zone) > day:
        return None
    if lo >= hi:
        return None

    def usable(minute: int) -> datetime | None:
        moment = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone).astimezone(UTC)
        ok = (
            moment >= earliest
            and _in_window(moment, profile, zone)
            and _local_day(moment, zone) == day
        )
        return moment if ok else None

    picked = usable(rng.randint(lo, hi - 1))
    if picked is not None:
        return picked
    return next((m for m in map(usable, range(lo, hi)) if m is not None), None)


def _minute_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


def plan_message(
    profile: JurisdictionProfile,
    strategy: Strategy,
    history: ContactHistory,
    proposal: Proposal,
    zone: ZoneInfo,
    rng: random.Random,
) -> PlannedContact | None:
    """The next allowed moment for a message or a reference call, jittered by up to 20 minutes.

    Jitter spreads a portfolio's messages instead of sending them all as the window opens; the
    jittered moment is checked again, and the unjittered one is used if the jitter left the window.
    """
    earliest = earliest_next_attempt(history, proposal.at, strategy)
    trail: list[str] = []
    at = next_allowed(
        profile, history, _at(proposal, earliest), zone, trail=trail, strategy=strategy
    )
    if at is None:
        return None
    jittered = at + timedelta(minutes=rng.randint(0, 20))
    if check(profile, history, _at(proposal, jittered), zone, strategy).allowed:
        at = jittered
    return PlannedContact(at=at, slot=slot_of(at, strategy, zone), deferred_by=tuple(trail))


def plan_shown(
    profile: JurisdictionProfile,
    history: ContactHistory,
    proposal: Proposal,
    zone: ZoneInfo,
    *,
    outreach_held: bool,
) -> bool:
    """Whether a planned contact may be shown as the loan's next action in its current state.

    ``proposal`` is the plan at its planned moment. A plan is made in one state and shown in
    another: a death report, a cease request (on this loan or, through ``history.shared``, on
    another of the borrower's), a dispute, an operator's hold, a reference who objected or a
    closed loan forbid it from then on, though the workflow drops it only when it plans again.
    What is shown must pass the machine (``outreach_held``) and ``check`` as things are now.
    """
    if outreach_held:
        return False
    return check(profile, history, proposal, zone).allowed
