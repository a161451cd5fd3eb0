"""Property tests of the contact planner: for any history and any IANA zone, the law holds.

Every property is checked for both jurisdiction profiles. The caps are re-counted here from the
raw attempts, independently of the planner's own helpers, so a planner that miscounts fails.
"""

from __future__ import annotations

import copy
import random
import zoneinfo
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from workflows import planner, profiles, rotation, slots
from workflows.strategy import Strategy
from workflows.types import AttemptRecord, ContactHistory
from workflows.vocabulary import Channel, Outcome, Target

from .support import BORROWER_ID, CONTACT_IDS, default_strategy

STRATEGY = default_strategy()
SLOT_NAMES = [s.name for s in STRATEGY.slots]
ALL_OUTCOMES = [
    Outcome.NO_ANSWER,
    Outcome.BUSY,
    Outcome.ANSWERED,
    Outcome.RELAYED,
    Outcome.OBJECTED,
    Outcome.DELIVERED,
    Outcome.FAILED,
    Outcome.SENT,
]
UNANSWERED = {Outcome.NO_ANSWER, Outcome.BUSY}
DAY_SECONDS = 24 * 3600
WEEK = timedelta(days=7)


def _loadable(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


ZONES = [name for name in sorted(zoneinfo.available_timezones()) if _loadable(name)]

SETTINGS = settings(max_examples=200, deadline=None)


@dataclass
class Scenario:
    profile: profiles.JurisdictionProfile
    strategy: Strategy
    zone: ZoneInfo
    now: datetime
    history: ContactHistory
    rng: random.Random


# The strategy may only be stricter than the law. A lax strategy (many calls a day, short gaps)
# leaves the law's own caps as the only limit, so the properties must hold for it too.
LAX_STRATEGY = default_strategy()
LAX_STRATEGY.name = "lax"
LAX_STRATEGY.max_calls_per_day = 20
LAX_STRATEGY.min_gap_minutes = 1

# Strategies are built once: re-building them inside every draw dominated the runtime.
# Offsets cluster on the last hours and the last day, so the per-day caps actually bite; the
# weighted choices make borrower calls common.
OFFSETS = st.one_of(
    st.integers(60, 10 * DAY_SECONDS), st.integers(60, DAY_SECONDS), st.integers(60, 6 * 3600)
)


def _attempt_parts(outcomes: list[str]) -> st.SearchStrategy[list[tuple[int, str, str, str, str]]]:
    return st.lists(
        st.tuples(
            OFFSETS,
            st.sampled_from([BORROWER_ID] * 4 + list(CONTACT_IDS)),
            st.sampled_from([Channel.CALL] * 3 + [Channel.SMS]),
            st.sampled_from(SLOT_NAMES),
            st.sampled_from(outcomes),
        ),
        max_size=40,
    )


# Histories with conversations in them, and histories of calls nobody answered.
ATTEMPT_PARTS = _attempt_parts(ALL_OUTCOMES + [Outcome.ANSWERED] * 4 + [Outcome.NO_ANSWER] * 4) | (
    _attempt_parts([Outcome.NO_ANSWER, Outcome.BUSY, Outcome.DELIVERED])
)
PROFILE_CODES = st.sampled_from(sorted(profiles.PROFILES))
ZONE_NAMES = st.sampled_from(ZONES)
NOWS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
LAST_CONVERSATION = st.none() | st.integers(60, 10 * DAY_SECONDS)
TRIED_SLOTS = st.lists(st.sampled_from(SLOT_NAMES), unique=True)
THIRD_PARTIES = st.lists(st.sampled_from(CONTACT_IDS), unique=True)
SEEDS = st.integers(0, 2**32 - 1)
STRATEGIES = st.sampled_from([STRATEGY, LAX_STRATEGY])
STREAKS = st.integers(0, 12)
NUDGES = st.integers(0, 3)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    profile = profiles.PROFILES[draw(PROFILE_CODES)]
    strategy = draw(STRATEGIES)
    zone = ZoneInfo(draw(ZONE_NAMES))
    now = draw(NOWS)
    attempts = [
        AttemptRecord(
            at=now - timedelta(seconds=offset),
            channel=channel,
            target=Target.BORROWER if target_id == BORROWER_ID else Target.CONTACT,
            target_id=target_id,
            slot=slot,
            outcome=outcome,
        )
        for offset, target_id, channel, slot, outcome in draw(ATTEMPT_PARTS)
    ]
    attempts.sort(key=lambda a: a.at)
    conversation_offset = draw(LAST_CONVERSATION)
    last_conversation = (
        None if conversation_offset is None else now - timedelta(seconds=conversation_offset)
    )
    history = ContactHistory(
        attempts=attempts,
        tried_slots=draw(TRIED_SLOTS),
        unanswered_streak=draw(STREAKS),
        nudges_in_streak=draw(NUDGES),
        last_conversation_at=last_conversation,
        contacted_third_parties=draw(THIRD_PARTIES),
        objected_third_parties=draw(THIRD_PARTIES),
    )
    rng = random.Random(draw(SEEDS))
    return Scenario(profile, strategy, zone, now, history, rng)


# --- independent re-counting of the rules -----------------------------------------------------


def _day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _in_local_window(at: datetime, profile: profiles.JurisdictionProfile, zone: ZoneInfo) -> bool:
    local = at.astimezone(zone).time()
    return profile.window_start <= local < profile.window_end


def _is_borrower_call(a: AttemptRecord) -> bool:
    return a.channel == Channel.CALL and a.target == Target.BORROWER


def _is_conversation(a: AttemptRecord) -> bool:
    return _is_borrower_call(a) and a.outcome == Outcome.ANSWERED


def _assert_caps(s: Scenario, at: datetime, target_id: str) -> None:
    """The law's caps and the strategy's daily limit hold for a call at ``at``."""
    attempts = [a for a in s.history.attempts if a.at <= at]
    same_day = [a for a in attempts if _day(a.at, s.zone) == _day(at, s.zone)]
    if s.profile.code == "cn":
        unanswered = [
            a
            for a in same_day
            if a.channel == Channel.CALL and a.target_id == target_id and a.outcome in UNANSWERED
        ]
        assert len(unanswered) < 6, "cn: 6 unanswered calls a day to one number"
        conversations = [a for a in same_day if _is_conversation(a)]
        assert len(conversations) < 3, "cn: 3 conversations a day"
    elif s.profile.code == "us":
        week_calls = [a for a in attempts if _is_borrower_call(a) and at - WEEK < a.at]
        if target_id == BORROWER_ID:
            assert len(week_calls) < 7, "us: 7 calls in 7 days"
            conversations = [a.at for a in attempts if _is_conversation(a)]
            if s.history.last_conversation_at is not None:
                conversations.append(s.history.last_conversation_at)
            assert all(at >= c + WEEK for c in conversations if c <= at), "us: 7 quiet days"
    else:  # pragma: no cover - a new profile needs its own rules here
        raise AssertionError(f"no independent rules for profile {s.profile.code}")


def _assert_gap(s: Scenario, at: datetime) -> None:
    assert at >= s.now
    if s.history.attempts:
        last = max(a.at for a in s.history.attempts)
        assert at >= last + timedelta(minutes=s.strategy.min_gap_minutes)


def _borrower_call_allowed(s: Scenario, at: datetime) -> bool:
    proposal = planner.Proposal(at, Channel.CALL, Target.BORROWER, BORROWER_ID)
    return planner.check(s.profile, s.history, proposal, s.zone).allowed


# --- properties --------------------------------------------------------------------------------


@SETTINGS
@given(scenarios())
def test_planned_borrower_call_is_lawful(s: Scenario) -> None:
    tried_before = list(s.history.tried_slots)
    planned = planner.plan_borrower_call(
        s.profile, s.strategy, s.history, BORROWER_ID, s.now, s.zone, s.rng
    )
    # Every rule lifts within a week and the history is at most ten days old, so the
    # 21-day horizon always finds a call.
    assert planned is not None
    assert planned.at.tzinfo is not None
    _assert_gap(s, planned.at)
    assert _in_local_window(planned.at, s.profile, s.zone)
    assert _borrower_call_allowed(s, planned.at)
    _assert_caps(s, planned.at, BORROWER_ID)

    same_day_calls = [
        a
        for a in s.history.attempts
        if _is_borrower_call(a) and _day(a.at, s.zone) == _day(planned.at, s.zone)
    ]
    assert len(same_day_calls) < s.strategy.max_calls_per_day

    # Slot rotation: an untried slot, unless every slot has been tried.
    assert planned.slot == rotation.slot_of(planned.at, s.strategy, s.zone)
    if not set(tried_before) >= set(SLOT_NAMES):
        assert planned.slot not in tried_before
    assert s.history.tried_slots == tried_before, "planning must not change the history"


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.lists(st.sampled_from(sorted(UNANSWERED)), min_size=1, max_size=6))
def test_unanswered_calls_rotate_through_the_slots(s: Scenario, outcomes: list[str]) -> None:
    history = copy.deepcopy(s.history)
    if set(history.tried_slots) >= set(SLOT_NAMES):
        # Unreachable through record_attempt, which starts a new rotation once all are tried.
        history.tried_slots = []
    tried = set(history.tried_slots)
    now = s.now
    for outcome in outcomes:
        planned = planner.plan_borrower_call(
            s.profile, s.strategy, history, BORROWER_ID, now, s.zone, s.rng
        )
        assert planned is not None
        assert planned.slot not in tried, f"{planned.slot} again before all slots were tried"
        assert _in_local_window(planned.at, s.profile, s.zone)
        tried.add(planned.slot)
        if tried >= set(SLOT_NAMES):
            tried = set()
        rotation.record_attempt(
            history,
            AttemptRecord(
                planned.at, Channel.CALL, Target.BORROWER, BORROWER_ID, planned.slot, outcome
            ),
            SLOT_NAMES,
        )
        assert set(history.tried_slots) == tried
        now = planned.at


@SETTINGS
@given(scenarios())
def test_planned_sms_is_lawful(s: Scenario) -> None:
    proposal = planner.Proposal(s.now, Channel.SMS, Target.BORROWER, BORROWER_ID)
    planned = planner.plan_message(s.profile, s.strategy, s.history, proposal, s.zone, s.rng)
    assert planned is not None
    _assert_gap(s, planned.at)
    assert _in_local_window(planned.at, s.profile, s.zone)
    assert planner.check(s.profile, s.history, _with_at(proposal, planned.at), s.zone).allowed
    assert planned.slot == rotation.slot_of(planned.at, s.strategy, s.zone)
    # The jitter spreads messages by at most 20 minutes after the first allowed moment.
    earliest = planner.earliest_next_attempt(s.history, s.now, s.strategy)
    first = planner.next_allowed(s.profile, s.history, _with_at(proposal, earliest), s.zone)
    assert first is not None
    assert first <= planned.at <= first + timedelta(minutes=20)


def _with_at(proposal: planner.Proposal, at: datetime) -> planner.Proposal:
    return planner.Proposal(at, proposal.channel, proposal.target, proposal.target_id)


@SETTINGS
@given(scenarios(), st.sampled_from(CONTACT_IDS))
def test_planned_reference_call_is_lawful(s: Scenario, contact_id: str) -> None:
    proposal = planner.Proposal(s.now, Channel.CALL, Target.CONTACT, contact_id)
    planned = planner.plan_message(s.profile, s.strategy, s.history, proposal, s.zone, s.rng)

    objected = contact_id in s.history.objected_third_parties
    already_asked = contact_id in s.history.contacted_third_parties
    reachable = s.profile.code == "cn" and (
        s.history.unanswered_streak < s.profile.unreachable_after_unanswered
    )
    if objected or already_asked or reachable:
        assert planned is None
        return
    assert planned is not None
    _assert_gap(s, planned.at)
    assert _in_local_window(planned.at, s.profile, s.zone)
    assert planner.check(s.profile, s.history, _with_at(proposal, planned.at), s.zone).allowed
    _assert_caps(s, planned.at, contact_id)


@SETTINGS
@given(
    scenarios(),
    st.sampled_from([Channel.CALL, Channel.SMS, Channel.LETTER]),
    st.sampled_from([BORROWER_ID, *CONTACT_IDS]),
    st.integers(0, 3 * DAY_SECONDS),
    st.none() | st.integers(0, 30 * DAY_SECONDS),
)
def test_next_allowed_is_allowed(
    s: Scenario, channel: str, target_id: str, offset: int, limit_after: int | None
) -> None:
    target = Target.BORROWER if target_id == BORROWER_ID else Target.CONTACT
    at = s.now + timedelta(seconds=offset)
    limit = None if limit_after is None else at + timedelta(seconds=limit_after)
    proposal = planner.Proposal(at, channel, target, target_id)
    found = planner.next_allowed(s.profile, s.history, proposal, s.zone, limit=limit)
    if planner.check(s.profile, s.history, proposal, s.zone).allowed:
        assert found == at
    if found is None:
        return
    assert found >= at
    if limit is not None:
        assert found <= limit
    assert planner.check(s.profile, s.history, _with_at(proposal, found), s.zone).allowed
    if channel != Channel.LETTER:
        assert _in_local_window(found, s.profile, s.zone)


# --- situations: no rule lifts by itself -------------------------------------------------------

SITUATION_SETTINGS = settings(max_examples=100, deadline=None)
PROPOSALS = st.tuples(
    st.sampled_from([Channel.CALL, Channel.SMS, Channel.LETTER]),
    st.sampled_from([BORROWER_ID, *CONTACT_IDS]),
    st.integers(0, 3 * DAY_SECONDS),
)


def _proposal(s: Scenario, channel: str, target_id: str, offset: int) -> planner.Proposal:
    target = Target.BORROWER if target_id == BORROWER_ID else Target.CONTACT
    return planner.Proposal(s.now + timedelta(seconds=offset), channel, target, target_id)


def _borrower_call_plan(s: Scenario, history: ContactHistory) -> planner.PlannedContact | None:
    return planner.plan_borrower_call(
        s.profile, s.strategy, history, BORROWER_ID, s.now, s.zone, copy.deepcopy(s.rng)
    )


def _message_plan(
    s: Scenario, history: ContactHistory, proposal: planner.Proposal
) -> planner.PlannedContact | None:
    return planner.plan_message(
        s.profile, s.strategy, history, proposal, s.zone, copy.deepcopy(s.rng)
    )


@SITUATION_SETTINGS
@given(scenarios(), st.booleans(), st.booleans(), st.lists(PROPOSALS, min_size=1, max_size=4))
def test_an_open_dispute_denies_every_contact(
    s: Scenario, cease: bool, deceased: bool, proposals: list[tuple[str, str, int]]
) -> None:
    history = replace(
        s.history, dispute_open=True, cease_requested=cease, borrower_deceased=deceased
    )
    for channel, target_id, offset in proposals:
        proposal = _proposal(s, channel, target_id, offset)
        decision = planner.check(s.profile, history, proposal, s.zone)
        assert decision == planner.Decision(False, planner.Rule.DISPUTE_PENDING, None)
        assert planner.next_allowed(s.profile, history, proposal, s.zone) is None
        assert _message_plan(s, history, proposal) is None
    assert _borrower_call_plan(s, history) is None


@SITUATION_SETTINGS
@given(scenarios(), st.booleans(), st.lists(PROPOSALS, min_size=1, max_size=4))
def test_a_cease_request_stops_calls_and_sms(
    s: Scenario, deceased: bool, proposals: list[tuple[str, str, int]]
) -> None:
    history = replace(s.history, cease_requested=True, borrower_deceased=deceased)
    assert _borrower_call_plan(s, history) is None
    for channel, target_id, offset in proposals:
        proposal = _proposal(s, channel, target_id, offset)
        decision = planner.check(s.profile, history, proposal, s.zone)
        if channel == Channel.LETTER:
            # Notices remain: a letter is what it would be without the cease request.
            plain = replace(s.history, borrower_deceased=deceased)
            assert decision == planner.check(s.profile, plain, proposal, s.zone)
            if target_id == BORROWER_ID:
                # A letter reaches a living borrower; one reported dead gets none at all.
                assert decision == (
                    planner.Decision(False, planner.Rule.BORROWER_DECEASED, None)
                    if deceased
                    else planner.ALLOWED
                )
            continue
        assert decision == planner.Decision(False, planner.Rule.CEASE_REQUESTED, None)
        assert _message_plan(s, history, proposal) is None


@SITUATION_SETTINGS
@given(scenarios(), st.sampled_from(CONTACT_IDS), st.integers(0, 3 * DAY_SECONDS))
def test_a_deceased_borrower_is_not_called_but_references_may_be(
    s: Scenario, contact_id: str, offset: int
) -> None:
    history = replace(s.history, borrower_deceased=True)
    assert _borrower_call_plan(s, history) is None
    for channel in (Channel.CALL, Channel.SMS, Channel.LETTER):
        # Not even a letter: the family and the estate get letters of their own.
        proposal = _proposal(s, channel, BORROWER_ID, offset)
        decision = planner.check(s.profile, history, proposal, s.zone)
        assert decision == planner.Decision(False, planner.Rule.BORROWER_DECEASED, None)
        assert planner.next_allowed(s.profile, history, proposal, s.zone) is None
        assert _message_plan(s, history, proposal) is None
    # References: as if the borrower were alive and unreachable (cn allows references once the
    # borrower is reported dead; the reference call property above shows a lawful plan).
    alive_unreachable = replace(
        s.history,
        unanswered_streak=max(s.history.unanswered_streak, s.profile.unreachable_after_unanswered),
    )
    reference = planner.Proposal(s.now, Channel.CALL, Target.CONTACT, contact_id)
    assert _message_plan(s, history, reference) == _message_plan(s, alive_unreachable, reference)
    later = _proposal(s, Channel.CALL, contact_id, offset)
    assert planner.check(s.profile, history, later, s.zone) == planner.check(
        s.profile, alive_unreachable, later, s.zone
    )


@SITUATION_SETTINGS
@given(scenarios(), st.booleans(), st.booleans(), st.integers(0, 3 * DAY_SECONDS))
def test_letters_to_the_estate_are_unaffected_by_a_death_or_a_cease_request(
    s: Scenario, deceased: bool, cease: bool, offset: int
) -> None:
    # Whatever the history holds (bar a dispute), a letter to the estate may go when proposed.
    history = replace(s.history, borrower_deceased=deceased, cease_requested=cease)
    at = s.now + timedelta(seconds=offset)
    letter = planner.Proposal(at, Channel.LETTER, Target.ESTATE, "estate")
    assert planner.check(s.profile, history, letter, s.zone) == planner.ALLOWED
    assert planner.next_allowed(s.profile, history, letter, s.zone) == at
    planned = _message_plan(s, history, letter)
    assert planned is not None
    assert planned.at >= at


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(1, 3 * DAY_SECONDS))
def test_a_late_borrower_call_never_lands_in_a_slot_already_tried(
    s: Scenario, late_by: int
) -> None:
    """Whatever the timer's lateness, the call made is in a slot the rotation has not tried:
    either it still fits at the real moment (its own slot, or another untried one), or it is
    planned again from there, into an untried slot."""
    history = copy.deepcopy(s.history)
    if set(history.tried_slots) >= set(SLOT_NAMES):
        history.tried_slots = []  # unreachable through record_attempt, as above
    tried = set(history.tried_slots)
    planned = planner.plan_borrower_call(
        s.profile, s.strategy, history, BORROWER_ID, s.now, s.zone, s.rng
    )
    if planned is None:
        return
    assert planned.slot not in tried
    late = planned.at + timedelta(seconds=late_by)
    if rotation.slot_still_fits(
        planned, Channel.CALL, Target.BORROWER, late, s.strategy, history, s.zone
    ):
        assert rotation.slot_of(late, s.strategy, s.zone) not in tried
        return
    again = planner.plan_borrower_call(
        s.profile, s.strategy, history, BORROWER_ID, late, s.zone, s.rng
    )
    if again is None:
        return
    assert again.at >= late
    assert again.slot not in tried, f"{again.slot} again before all slots were tried"


# --- learning slots -------------------------------------------------------------------------------

TALLIES = st.dictionaries(st.sampled_from(SLOT_NAMES), st.integers(1, 6), max_size=4)
PORTFOLIO = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 500)).map(lambda t: (min(t), max(t))),
    min_size=len(SLOT_NAMES),
    max_size=len(SLOT_NAMES),
)


@st.composite
def learnings(draw: st.DrawFn) -> slots.SlotLearning:
    """Any priors the ledger may give and any outcomes the borrower may have had."""
    priors = [
        slots.prior_for(name, answered, calls)
        for name, (answered, calls) in zip(SLOT_NAMES, draw(PORTFOLIO), strict=True)
    ]
    return slots.SlotLearning(priors, draw(TALLIES), draw(TALLIES))


@SETTINGS
@given(scenarios(), learnings())
def test_learning_never_plans_a_moment_the_planner_refuses(
    s: Scenario, learning: slots.SlotLearning
) -> None:
    """Learning only chooses which slot to aim for: every moment it plans is one the planner's
    ``check`` allows (window, caps, gaps, the strategy's limits), in a slot it chose."""
    choice = slots.choose(learning, SLOT_NAMES, s.rng)
    planned = planner.plan_borrower_call(
        s.profile, s.strategy, s.history, BORROWER_ID, s.now, s.zone, s.rng, order=choice.order
    )
    # The sampler never empties the choice, so the horizon finds a call as without learning.
    assert choice.order
    assert planned is not None
    proposal = planner.Proposal(planned.at, Channel.CALL, Target.BORROWER, BORROWER_ID)
    assert planner.check(s.profile, s.history, proposal, s.zone, s.strategy).allowed
    _assert_gap(s, planned.at)
    assert _in_local_window(planned.at, s.profile, s.zone)
    _assert_caps(s, planned.at, BORROWER_ID)
    assert planned.slot == rotation.slot_of(planned.at, s.strategy, s.zone)
    assert planned.slot in choice.order
    # While untried slots are explored, slots tried without an answer wait.
    assert planned.slot not in slots.waiting_slots(learning, SLOT_NAMES)
