"""Property tests of the contact planner: for any history and any IANA zone, the law holds.

Every property is checked for both jurisdiction profiles. The caps are re-counted here from the
raw attempts, independently of the planner's own helpers, so a planner that miscounts fails.
"""

from __future__ import annotations

import copy
import random
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from workflows import planner
from workflows.types import AttemptRecord, Channel, ContactHistory, Outcome, Target

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
    profile: planner.JurisdictionProfile
    zone: ZoneInfo
    now: datetime
    history: ContactHistory
    rng: random.Random


@st.composite
def attempts_before(draw: st.DrawFn, now: datetime) -> AttemptRecord:
    # Half the draws cluster on the last day, so the per-day caps actually bite.
    seconds = draw(
        st.one_of(st.integers(60, 10 * DAY_SECONDS), st.integers(60, DAY_SECONDS))
    )
    target = draw(st.sampled_from([Target.BORROWER, Target.CONTACT]))
    target_id = BORROWER_ID if target == Target.BORROWER else draw(st.sampled_from(CONTACT_IDS))
    return AttemptRecord(
        at=now - timedelta(seconds=seconds),
        channel=draw(st.sampled_from([Channel.CALL, Channel.SMS])),
        target=target,
        target_id=target_id,
        slot=draw(st.sampled_from(SLOT_NAMES)),
        outcome=draw(st.sampled_from(ALL_OUTCOMES)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    profile = planner.PROFILES[draw(st.sampled_from(sorted(planner.PROFILES)))]
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    now = draw(
        st.datetimes(
            min_value=datetime(2024, 1, 1),
            max_value=datetime(2030, 12, 31),
            timezones=st.just(UTC),
        )
    )
    attempts = draw(st.lists(attempts_before(now), max_size=40))
    attempts.sort(key=lambda a: a.at)
    last_conversation = draw(
        st.none() | st.integers(60, 10 * DAY_SECONDS).map(lambda s: now - timedelta(seconds=s))
    )
    history = ContactHistory(
        attempts=attempts,
        tried_slots=draw(st.lists(st.sampled_from(SLOT_NAMES), unique=True)),
        unanswered_streak=draw(st.integers(0, 12)),
        nudges_in_streak=draw(st.integers(0, 3)),
        last_conversation_at=last_conversation,
        contacted_third_parties=draw(st.lists(st.sampled_from(CONTACT_IDS), unique=True)),
        objected_third_parties=draw(st.lists(st.sampled_from(CONTACT_IDS), unique=True)),
    )
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    return Scenario(profile, zone, now, history, rng)


# --- independent re-counting of the rules -----------------------------------------------------


def _day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


def _in_local_window(at: datetime, profile: planner.JurisdictionProfile, zone: ZoneInfo) -> bool:
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
        assert at >= last + timedelta(minutes=STRATEGY.min_gap_minutes)


def _borrower_call_allowed(s: Scenario, at: datetime) -> bool:
    proposal = planner.Proposal(at, Channel.CALL, Target.BORROWER, BORROWER_ID)
    return planner.check(s.profile, s.history, proposal, s.zone).allowed


# --- properties --------------------------------------------------------------------------------


@SETTINGS
@given(scenarios())
def test_planned_borrower_call_is_lawful(s: Scenario) -> None:
    tried_before = list(s.history.tried_slots)
    planned = planner.plan_borrower_call(
        s.profile, STRATEGY, s.history, BORROWER_ID, s.now, s.zone, s.rng
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
    assert len(same_day_calls) < STRATEGY.max_calls_per_day

    # Slot rotation: an untried slot, unless every slot has been tried.
    assert planned.slot == planner.slot_of(planned.at, STRATEGY, s.zone)
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
    rotation = set(history.tried_slots)
    now = s.now
    for outcome in outcomes:
        planned = planner.plan_borrower_call(
            s.profile, STRATEGY, history, BORROWER_ID, now, s.zone, s.rng
        )
        assert planned is not None
        assert planned.slot not in rotation, f"{planned.slot} again before all slots were tried"
        assert _in_local_window(planned.at, s.profile, s.zone)
        rotation.add(planned.slot)
        if rotation >= set(SLOT_NAMES):
            rotation = set()
        planner.record_attempt(
            history,
            AttemptRecord(
                planned.at, Channel.CALL, Target.BORROWER, BORROWER_ID, planned.slot, outcome
            ),
            SLOT_NAMES,
        )
        assert set(history.tried_slots) == rotation
        now = planned.at


@SETTINGS
@given(scenarios())
def test_planned_sms_is_lawful(s: Scenario) -> None:
    proposal = planner.Proposal(s.now, Channel.SMS, Target.BORROWER, BORROWER_ID)
    planned = planner.plan_message(s.profile, STRATEGY, s.history, proposal, s.zone, s.rng)
    assert planned is not None
    _assert_gap(s, planned.at)
    assert _in_local_window(planned.at, s.profile, s.zone)
    assert planner.check(s.profile, s.history, _with_at(proposal, planned.at), s.zone).allowed
    assert planned.slot == planner.slot_of(planned.at, STRATEGY, s.zone)
    # The jitter spreads messages by at most 20 minutes after the first allowed moment.
    earliest = planner.earliest_next_attempt(s.history, s.now, STRATEGY)
    first = planner.next_allowed(s.profile, s.history, _with_at(proposal, earliest), s.zone)
    assert first is not None
    assert first <= planned.at <= first + timedelta(minutes=20)


def _with_at(proposal: planner.Proposal, at: datetime) -> planner.Proposal:
    return planner.Proposal(at, proposal.channel, proposal.target, proposal.target_id)


@SETTINGS
@given(scenarios(), st.sampled_from(CONTACT_IDS))
def test_planned_reference_call_is_lawful(s: Scenario, contact_id: str) -> None:
    proposal = planner.Proposal(s.now, Channel.CALL, Target.CONTACT, contact_id)
    planned = planner.plan_message(s.profile, STRATEGY, s.history, proposal, s.zone, s.rng)

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
