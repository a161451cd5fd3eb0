"""Example tests of the contact planner, one rule at a time, at the rule's edges."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows import planner, profiles, rotation
from workflows.planner import Proposal, Rule
from workflows.profiles import PROFILES
from workflows.types import AttemptRecord, ContactHistory
from workflows.vocabulary import Channel, Outcome, Target

from .support import BORROWER_ID, CONTACT_IDS, call, default_strategy, local_dt, sms

NEW_YORK = "America/New_York"
SHANGHAI = "Asia/Shanghai"
US = PROFILES["us"]
CN = PROFILES["cn"]
STRATEGY = default_strategy()
SLOT_NAMES = [s.name for s in STRATEGY.slots]
CONTACT = CONTACT_IDS[0]


def borrower_call(at: datetime) -> Proposal:
    return Proposal(at, Channel.CALL, Target.BORROWER, BORROWER_ID)


def reference_call(at: datetime, contact_id: str = CONTACT) -> Proposal:
    return Proposal(at, Channel.CALL, Target.CONTACT, contact_id)


def decide(
    profile: profiles.JurisdictionProfile,
    proposal: Proposal,
    zone: str,
    history: ContactHistory | None = None,
) -> planner.Decision:
    return planner.check(profile, history or ContactHistory(), proposal, ZoneInfo(zone))


def ny(*parts: int) -> datetime:
    return local_dt(NEW_YORK, *parts)


def sh(*parts: int) -> datetime:
    return local_dt(SHANGHAI, *parts)


# --- the window ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [(7, 59, False), (8, 0, True), (20, 59, True), (21, 0, False), (21, 30, False)],
    ids=["0759-denied", "0800-allowed", "2059-allowed", "2100-denied", "2130-denied"],
)
@pytest.mark.parametrize("channel", [Channel.CALL, Channel.SMS])
def test_window_us_is_0800_to_2100_borrower_local(
    hour: int, minute: int, allowed: bool, channel: str
) -> None:
    at = ny(2026, 3, 4, hour, minute)
    decision = decide(US, Proposal(at, channel, Target.BORROWER, BORROWER_ID), NEW_YORK)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.rule == Rule.WINDOW


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [(7, 59, False), (8, 0, True), (21, 59, True), (22, 0, False)],
    ids=["0759-denied", "0800-allowed", "2159-allowed", "2200-denied"],
)
def test_window_cn_is_0800_to_2200_borrower_local(hour: int, minute: int, allowed: bool) -> None:
    decision = decide(CN, borrower_call(sh(2026, 3, 4, hour, minute)), SHANGHAI)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.rule == Rule.WINDOW


def test_window_uses_the_borrowers_zone_not_utc() -> None:
    # 14:00 UTC is 09:00 in New York but 23:00 in Tokyo.
    at = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)
    assert decide(US, borrower_call(at), NEW_YORK).allowed
    assert decide(US, borrower_call(at), "Asia/Tokyo").rule == Rule.WINDOW


def test_window_denial_names_the_next_opening() -> None:
    late = decide(US, borrower_call(ny(2026, 3, 4, 21, 0)), NEW_YORK)
    assert late.not_before == ny(2026, 3, 5, 8, 0)
    early = decide(US, borrower_call(ny(2026, 3, 4, 7, 59)), NEW_YORK)
    assert early.not_before == ny(2026, 3, 4, 8, 0)


def test_letters_are_not_bound_to_the_window() -> None:
    at = ny(2026, 3, 4, 3, 0)
    assert decide(US, Proposal(at, Channel.LETTER, Target.BORROWER, BORROWER_ID), NEW_YORK).allowed


# --- us: 7 calls in 7 days, 7 quiet days after a conversation --------------------------------


def _week_of_unanswered_calls(count: int) -> ContactHistory:
    """``count`` unanswered borrower calls, one a day at 10:00 New York, from 2026-04-01."""
    return ContactHistory(attempts=[call(ny(2026, 4, 1 + i, 10, 0)) for i in range(count)])


def test_us_seven_calls_in_seven_days() -> None:
    history = _week_of_unanswered_calls(7)  # March 1..7, 10:00
    eighth = borrower_call(ny(2026, 4, 7, 15, 0))
    decision = decide(US, eighth, NEW_YORK, history)
    assert not decision.allowed
    assert decision.rule == Rule.CALLS_PER_WEEK
    # The first call leaves the 7-day window a week after it was made.
    assert decision.not_before == ny(2026, 4, 8, 10, 0) + timedelta(seconds=1)
    assert decide(US, borrower_call(decision.not_before), NEW_YORK, history).allowed


def test_us_six_calls_in_seven_days_leave_room_for_a_seventh() -> None:
    history = _week_of_unanswered_calls(6)
    assert decide(US, borrower_call(ny(2026, 4, 7, 15, 0)), NEW_YORK, history).allowed


def test_us_weekly_cap_counts_only_calls_to_the_borrower() -> None:
    history = ContactHistory(
        attempts=[sms(ny(2026, 4, 1 + i, 10, 0)) for i in range(7)]
        + [
            call(ny(2026, 4, 1 + i, 11, 0), target=Target.CONTACT, target_id=CONTACT)
            for i in range(7)
        ]
    )
    assert decide(US, borrower_call(ny(2026, 4, 7, 15, 0)), NEW_YORK, history).allowed


def test_us_no_call_for_seven_days_after_a_conversation() -> None:
    talked = ny(2026, 4, 2, 10, 0)
    history = ContactHistory(attempts=[call(talked, Outcome.ANSWERED)])
    decision = decide(US, borrower_call(talked + timedelta(days=6, hours=8)), NEW_YORK, history)
    assert not decision.allowed
    assert decision.rule == Rule.QUIET_AFTER_CONVERSATION
    assert decision.not_before == talked + timedelta(days=7)
    assert decide(US, borrower_call(talked + timedelta(days=7)), NEW_YORK, history).allowed


def test_us_quiet_period_survives_pruned_attempts() -> None:
    # The attempt itself may have been forgotten; last_conversation_at still holds the rule.
    talked = ny(2026, 4, 2, 10, 0)
    history = ContactHistory(last_conversation_at=talked)
    decision = decide(US, borrower_call(talked + timedelta(days=3)), NEW_YORK, history)
    assert decision.rule == Rule.QUIET_AFTER_CONVERSATION


def test_us_quiet_period_does_not_stop_messages() -> None:
    talked = ny(2026, 4, 2, 10, 0)
    history = ContactHistory(attempts=[call(talked, Outcome.ANSWERED)])
    text = Proposal(talked + timedelta(days=1), Channel.SMS, Target.BORROWER, BORROWER_ID)
    assert decide(US, text, NEW_YORK, history).allowed


def test_cn_has_no_quiet_period_after_a_conversation() -> None:
    talked = sh(2026, 3, 2, 10, 0)
    history = ContactHistory(attempts=[call(talked, Outcome.ANSWERED)])
    assert decide(CN, borrower_call(talked + timedelta(hours=2)), SHANGHAI, history).allowed


def test_us_plan_waits_out_the_quiet_period() -> None:
    talked = ny(2026, 4, 2, 10, 0)
    history = ContactHistory(attempts=[call(talked, Outcome.ANSWERED)])
    planned = planner.plan_borrower_call(
        US,
        STRATEGY,
        history,
        BORROWER_ID,
        talked + timedelta(hours=2),
        ZoneInfo(NEW_YORK),
        random.Random(1),
    )
    assert planned is not None
    assert planned.at >= talked + timedelta(days=7)


# --- cn: 6 unanswered calls per number per day, 3 conversations per day ---------------------


def _unanswered_today(
    count: int, *, day: int = 4, outcome: str = Outcome.NO_ANSWER
) -> ContactHistory:
    return ContactHistory(
        attempts=[call(sh(2026, 3, day, 8 + i, 0), outcome) for i in range(count)],
        unanswered_streak=count,
    )


def test_cn_six_unanswered_calls_a_day_to_one_number() -> None:
    history = _unanswered_today(6)
    decision = decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history)
    assert not decision.allowed
    assert decision.rule == Rule.UNANSWERED_PER_NUMBER_PER_DAY
    assert decision.not_before == sh(2026, 3, 5, 8, 0)
    assert decide(CN, borrower_call(sh(2026, 3, 5, 8, 0)), SHANGHAI, history).allowed


def test_cn_busy_counts_as_unanswered() -> None:
    history = _unanswered_today(6, outcome=Outcome.BUSY)
    decision = decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history)
    assert decision.rule == Rule.UNANSWERED_PER_NUMBER_PER_DAY


def test_cn_five_unanswered_calls_leave_room_for_a_sixth() -> None:
    history = _unanswered_today(5)
    assert decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history).allowed


def test_cn_unanswered_cap_is_per_local_day() -> None:
    history = _unanswered_today(6, day=3)  # yesterday
    assert decide(CN, borrower_call(sh(2026, 3, 4, 8, 0)), SHANGHAI, history).allowed


def test_cn_unanswered_cap_is_per_number() -> None:
    history = _unanswered_today(6)  # streak 6: the borrower is unreachable, references allowed
    assert decide(CN, reference_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history).allowed


def test_us_has_no_unanswered_per_day_cap() -> None:
    history = ContactHistory(attempts=[call(ny(2026, 3, 4, 8 + i, 0)) for i in range(6)])
    assert decide(US, borrower_call(ny(2026, 3, 4, 15, 0)), NEW_YORK, history).allowed


def test_cn_three_conversations_a_day() -> None:
    history = ContactHistory(
        attempts=[call(sh(2026, 3, 4, 8 + i, 0), Outcome.ANSWERED) for i in range(3)]
    )
    decision = decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history)
    assert not decision.allowed
    assert decision.rule == Rule.CONVERSATIONS_PER_DAY
    assert decision.not_before == sh(2026, 3, 5, 8, 0)


def test_cn_two_conversations_leave_room_for_a_third() -> None:
    history = ContactHistory(
        attempts=[call(sh(2026, 3, 4, 8 + i, 0), Outcome.ANSWERED) for i in range(2)]
    )
    assert decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history).allowed


def test_cn_relayed_reference_calls_are_not_conversations() -> None:
    history = ContactHistory(
        attempts=[
            call(sh(2026, 3, 4, 8 + i, 0), Outcome.RELAYED, target=Target.CONTACT, target_id=c)
            for i, c in enumerate(CONTACT_IDS)
        ]
    )
    assert decide(CN, borrower_call(sh(2026, 3, 4, 15, 0)), SHANGHAI, history).allowed


# --- third parties ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [US, CN], ids=["us", "cn"])
def test_third_party_is_asked_once(profile: profiles.JurisdictionProfile) -> None:
    history = ContactHistory(unanswered_streak=10, contacted_third_parties=[CONTACT])
    decision = decide(profile, reference_call(sh(2026, 3, 4, 10, 0)), SHANGHAI, history)
    assert decision == planner.Decision(False, Rule.THIRD_PARTY_ONCE, None)
    other = reference_call(sh(2026, 3, 4, 10, 0), CONTACT_IDS[1])
    assert decide(profile, other, SHANGHAI, history).allowed


@pytest.mark.parametrize("profile", [US, CN], ids=["us", "cn"])
def test_third_party_who_objected_is_dropped(profile: profiles.JurisdictionProfile) -> None:
    history = ContactHistory(
        unanswered_streak=10,
        contacted_third_parties=[CONTACT],
        objected_third_parties=[CONTACT],
    )
    decision = decide(profile, reference_call(sh(2026, 3, 4, 10, 0)), SHANGHAI, history)
    assert decision == planner.Decision(False, Rule.THIRD_PARTY_OBJECTED, None)
    # Not by letter or message either, and never again by itself.
    letter = Proposal(sh(2026, 3, 4, 10, 0), Channel.LETTER, Target.CONTACT, CONTACT)
    assert decide(profile, letter, SHANGHAI, history).rule == Rule.THIRD_PARTY_OBJECTED
    assert planner.next_allowed(profile, history, letter, ZoneInfo(SHANGHAI)) is None


@pytest.mark.parametrize(("streak", "allowed"), [(0, False), (2, False), (3, True), (9, True)])
def test_cn_third_party_only_when_borrower_unreachable(streak: int, allowed: bool) -> None:
    history = ContactHistory(unanswered_streak=streak)
    decision = decide(CN, reference_call(sh(2026, 3, 4, 10, 0)), SHANGHAI, history)
    assert decision.allowed is allowed
    if not allowed:
        assert decision == planner.Decision(False, Rule.THIRD_PARTY_BORROWER_REACHABLE, None)
        planned = planner.plan_message(
            CN,
            STRATEGY,
            history,
            reference_call(sh(2026, 3, 4, 10, 0)),
            ZoneInfo(SHANGHAI),
            random.Random(0),
        )
        assert planned is None


def test_us_third_party_does_not_wait_for_unreachable() -> None:
    assert decide(US, reference_call(ny(2026, 3, 4, 10, 0)), NEW_YORK).allowed


def test_third_party_calls_keep_to_the_window() -> None:
    history = ContactHistory(unanswered_streak=5)
    decision = decide(CN, reference_call(sh(2026, 3, 4, 22, 0)), SHANGHAI, history)
    assert decision.rule == Rule.WINDOW


def test_recording_a_reference_call_marks_it_asked_and_objected() -> None:
    history = ContactHistory(unanswered_streak=5)
    at = sh(2026, 3, 4, 10, 0)
    rotation.record_attempt(
        history, call(at, Outcome.RELAYED, target=Target.CONTACT, target_id=CONTACT), SLOT_NAMES
    )
    other = CONTACT_IDS[1]
    rotation.record_attempt(
        history,
        call(at + timedelta(hours=2), Outcome.OBJECTED, target=Target.CONTACT, target_id=other),
        SLOT_NAMES,
    )
    assert history.contacted_third_parties == [CONTACT, other]
    assert history.objected_third_parties == [other]
    assert history.unanswered_streak == 5, "reference calls say nothing of the borrower"


# --- daylight saving time --------------------------------------------------------------------


def test_dst_spring_forward_new_york_window_follows_local_clock() -> None:
    # 2026-03-08: clocks go from 02:00 EST to 03:00 EDT; 08:00 local is 12:00 UTC, not 13:00.
    assert ny(2026, 3, 8, 8, 0) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    day_before_0700 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # 07:00 EST
    assert decide(US, borrower_call(day_before_0700), NEW_YORK).rule == Rule.WINDOW
    assert not decide(US, borrower_call(datetime(2026, 3, 8, 11, 59, tzinfo=UTC)), NEW_YORK).allowed
    assert decide(US, borrower_call(datetime(2026, 3, 8, 12, 0, tzinfo=UTC)), NEW_YORK).allowed
    # 21:00 EDT is 01:00 UTC the next day.
    assert decide(US, borrower_call(datetime(2026, 3, 9, 0, 59, tzinfo=UTC)), NEW_YORK).allowed
    assert not decide(US, borrower_call(datetime(2026, 3, 9, 1, 0, tzinfo=UTC)), NEW_YORK).allowed


def test_dst_spring_forward_new_york_next_allowed_is_local_0800() -> None:
    midnight = ny(2026, 3, 8, 0, 0)
    text = Proposal(midnight, Channel.SMS, Target.BORROWER, BORROWER_ID)
    assert planner.next_allowed(US, ContactHistory(), text, ZoneInfo(NEW_YORK)) == datetime(
        2026, 3, 8, 12, 0, tzinfo=UTC
    )


def test_dst_fall_back_new_york_window_follows_local_clock() -> None:
    # 2026-11-01: clocks go from 02:00 EDT back to 01:00 EST; 08:00 local is 13:00 UTC.
    assert not decide(
        US, borrower_call(datetime(2026, 11, 1, 12, 59, tzinfo=UTC)), NEW_YORK
    ).allowed
    assert decide(US, borrower_call(datetime(2026, 11, 1, 13, 0, tzinfo=UTC)), NEW_YORK).allowed
    # The same 12:59 UTC the day before is 08:59 EDT: allowed.
    assert decide(US, borrower_call(datetime(2026, 10, 31, 12, 59, tzinfo=UTC)), NEW_YORK).allowed


@pytest.mark.parametrize("day", [(2026, 3, 8), (2026, 11, 1)], ids=["spring", "fall"])
@pytest.mark.parametrize("seed", range(5))
def test_dst_day_plans_stay_in_the_local_window(day: tuple[int, int, int], seed: int) -> None:
    zone = ZoneInfo(NEW_YORK)
    now = ny(*day, 0, 30)
    planned = planner.plan_borrower_call(
        US, STRATEGY, ContactHistory(), BORROWER_ID, now, zone, random.Random(seed)
    )
    assert planned is not None
    local = planned.at.astimezone(zone)
    assert local.date() == datetime(*day).date()
    assert US.window_start <= local.time() < US.window_end
    assert planned.slot == "morning" == rotation.slot_of(planned.at, STRATEGY, zone)


# --- record_attempt ------------------------------------------------------------------------


def test_record_attempt_keeps_only_eight_days() -> None:
    now = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    old = [
        call(now - timedelta(days=9)),
        call(now - timedelta(days=8, seconds=1)),
        call(now - timedelta(days=8)),
        call(now - timedelta(days=1)),
    ]
    history = ContactHistory(attempts=list(old))
    latest = call(now, slot="midday")
    rotation.record_attempt(history, latest, SLOT_NAMES)
    assert history.attempts == [old[2], old[3], latest]


def test_record_attempt_conversation_resets_the_rotation() -> None:
    now = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    history = ContactHistory(
        tried_slots=["morning", "midday"], unanswered_streak=5, nudges_in_streak=1
    )
    rotation.record_attempt(history, call(now, Outcome.ANSWERED, slot="afternoon"), SLOT_NAMES)
    assert history.unanswered_streak == 0
    assert history.nudges_in_streak == 0
    assert history.tried_slots == []
    assert history.last_conversation_at == now


def test_record_attempt_unanswered_calls_rotate_slots() -> None:
    now = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    history = ContactHistory()
    for i, (slot, outcome) in enumerate(
        [("morning", Outcome.NO_ANSWER), ("morning", Outcome.BUSY), ("midday", Outcome.NO_ANSWER)]
    ):
        rotation.record_attempt(
            history, call(now + timedelta(hours=i), outcome, slot=slot), SLOT_NAMES
        )
    assert history.unanswered_streak == 3
    assert history.tried_slots == ["morning", "midday"]
    rotation.record_attempt(history, call(now + timedelta(hours=4), slot="afternoon"), SLOT_NAMES)
    rotation.record_attempt(history, call(now + timedelta(hours=5), slot="evening"), SLOT_NAMES)
    assert history.tried_slots == [], "all slots tried: a new rotation starts"
    assert history.unanswered_streak == 5, "the streak runs on across rotations"


def test_record_attempt_messages_do_not_touch_the_streak() -> None:
    now = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    history = ContactHistory(tried_slots=["morning"], unanswered_streak=2)
    rotation.record_attempt(history, sms(now), SLOT_NAMES)
    letter = AttemptRecord(
        now, Channel.LETTER, Target.BORROWER, BORROWER_ID, "letter", Outcome.SENT
    )
    rotation.record_attempt(history, letter, SLOT_NAMES)
    assert history.unanswered_streak == 2
    assert history.tried_slots == ["morning"]
    assert len(history.attempts) == 2


def test_unknown_jurisdiction_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown jurisdiction 'xx'"):
        profiles.profile_for("xx")


# --- situations: dispute, cease request, deceased borrower -----------------------------------

CHANNELS = [Channel.CALL, Channel.SMS, Channel.LETTER]
ESTATE = "estate"  # the id the workflow writes letters to the family or the estate under
TARGETS = [(Target.BORROWER, BORROWER_ID), (Target.CONTACT, CONTACT), (Target.ESTATE, ESTATE)]
TARGET_IDS = ["borrower", "reference", "estate"]
# In the window, and at 03:00 local: a situation is cited before the window.
SITUATION_TIMES = [(10, 0), (3, 0)]
PROFILE_ZONES = [(US, NEW_YORK), (CN, SHANGHAI)]
PROFILE_IDS = ["us", "cn"]


def _unreachable(**situation: bool) -> ContactHistory:
    """A history in which references may be asked under both profiles, plus ``situation``."""
    return ContactHistory(unanswered_streak=10, **situation)


def _plans(
    profile: profiles.JurisdictionProfile, zone: str, history: ContactHistory, proposal: Proposal
) -> tuple[planner.PlannedContact | None, planner.PlannedContact | None]:
    """The planned borrower call, and the planned ``proposal`` (message, letter or reference)."""
    tz = ZoneInfo(zone)
    call_plan = planner.plan_borrower_call(
        profile, STRATEGY, history, BORROWER_ID, proposal.at, tz, random.Random(0)
    )
    other = planner.plan_message(profile, STRATEGY, history, proposal, tz, random.Random(0))
    return call_plan, other


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("target", "target_id"), TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize(("hour", "minute"), SITUATION_TIMES, ids=["1000", "0300"])
def test_dispute_pending_denies_every_contact(
    profile: profiles.JurisdictionProfile,
    zone: str,
    channel: str,
    target: str,
    target_id: str,
    hour: int,
    minute: int,
) -> None:
    history = _unreachable(dispute_open=True)
    at = local_dt(zone, 2026, 3, 4, hour, minute)
    proposal = Proposal(at, channel, target, target_id)
    assert decide(profile, proposal, zone, history) == planner.Decision(
        False, Rule.DISPUTE_PENDING, None
    )
    assert planner.next_allowed(profile, history, proposal, ZoneInfo(zone)) is None
    assert _plans(profile, zone, history, proposal) == (None, None)


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("target", "target_id"), TARGETS, ids=TARGET_IDS)
def test_dispute_pending_comes_before_every_other_rule(
    channel: str, target: str, target_id: str
) -> None:
    history = ContactHistory(
        dispute_open=True,
        cease_requested=True,
        borrower_deceased=True,
        contacted_third_parties=[CONTACT],
        objected_third_parties=[CONTACT],
    )
    decision = decide(
        CN, Proposal(sh(2026, 3, 4, 23, 0), channel, target, target_id), SHANGHAI, history
    )
    assert decision == planner.Decision(False, Rule.DISPUTE_PENDING, None)


def test_a_resolved_dispute_lifts_the_rule() -> None:
    history = ContactHistory(dispute_open=True)
    proposal = borrower_call(ny(2026, 3, 4, 10, 0))
    assert decide(US, proposal, NEW_YORK, history).rule == Rule.DISPUTE_PENDING
    history.dispute_open = False
    assert decide(US, proposal, NEW_YORK, history).allowed


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("channel", [Channel.CALL, Channel.SMS])
@pytest.mark.parametrize(("target", "target_id"), TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize(("hour", "minute"), SITUATION_TIMES, ids=["1000", "0300"])
def test_cease_requested_denies_calls_and_sms(
    profile: profiles.JurisdictionProfile,
    zone: str,
    channel: str,
    target: str,
    target_id: str,
    hour: int,
    minute: int,
) -> None:
    history = _unreachable(cease_requested=True)
    at = local_dt(zone, 2026, 3, 4, hour, minute)
    proposal = Proposal(at, channel, target, target_id)
    assert decide(profile, proposal, zone, history) == planner.Decision(
        False, Rule.CEASE_REQUESTED, None
    )
    assert planner.next_allowed(profile, history, proposal, ZoneInfo(zone)) is None
    assert _plans(profile, zone, history, proposal) == (None, None)


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize(("target", "target_id"), TARGETS, ids=TARGET_IDS)
@pytest.mark.parametrize(("hour", "minute"), SITUATION_TIMES, ids=["1000", "0300"])
def test_cease_requested_allows_letters(
    profile: profiles.JurisdictionProfile,
    zone: str,
    target: str,
    target_id: str,
    hour: int,
    minute: int,
) -> None:
    history = _unreachable(cease_requested=True)
    at = local_dt(zone, 2026, 3, 4, hour, minute)
    letter = Proposal(at, Channel.LETTER, target, target_id)
    assert decide(profile, letter, zone, history).allowed
    assert planner.next_allowed(profile, history, letter, ZoneInfo(zone)) == at
    _, planned = _plans(profile, zone, history, letter)
    assert planned is not None


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
def test_cease_requested_letters_to_a_reference_keep_the_third_party_rules(
    profile: profiles.JurisdictionProfile, zone: str
) -> None:
    history = ContactHistory(
        unanswered_streak=10, cease_requested=True, objected_third_parties=[CONTACT]
    )
    letter = Proposal(local_dt(zone, 2026, 3, 4, 10, 0), Channel.LETTER, Target.CONTACT, CONTACT)
    assert decide(profile, letter, zone, history).rule == Rule.THIRD_PARTY_OBJECTED


def test_cease_requested_comes_before_deceased_and_the_window() -> None:
    history = ContactHistory(cease_requested=True, borrower_deceased=True)
    decision = decide(US, borrower_call(ny(2026, 3, 4, 23, 0)), NEW_YORK, history)
    assert decision == planner.Decision(False, Rule.CEASE_REQUESTED, None)


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize(("hour", "minute"), SITUATION_TIMES, ids=["1000", "0300"])
def test_borrower_deceased_denies_every_contact_to_the_borrower(
    profile: profiles.JurisdictionProfile, zone: str, channel: str, hour: int, minute: int
) -> None:
    # Letters too: the family and the estate get letters of their own.
    history = _unreachable(borrower_deceased=True)
    proposal = Proposal(
        local_dt(zone, 2026, 3, 4, hour, minute), channel, Target.BORROWER, BORROWER_ID
    )
    assert decide(profile, proposal, zone, history) == planner.Decision(
        False, Rule.BORROWER_DECEASED, None
    )
    assert planner.next_allowed(profile, history, proposal, ZoneInfo(zone)) is None
    assert _plans(profile, zone, history, proposal) == (None, None)


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("channel", [Channel.CALL, Channel.SMS])
def test_borrower_deceased_allows_references(
    profile: profiles.JurisdictionProfile, zone: str, channel: str
) -> None:
    history = _unreachable(borrower_deceased=True)
    at = local_dt(zone, 2026, 3, 4, 10, 0)
    proposal = Proposal(at, channel, Target.CONTACT, CONTACT)
    assert decide(profile, proposal, zone, history).allowed
    _, planned = _plans(profile, zone, history, proposal)
    assert planned is not None
    assert planned.at >= at


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
def test_borrower_deceased_references_keep_their_own_rules(
    profile: profiles.JurisdictionProfile, zone: str
) -> None:
    # Outside the window, already asked or objected. (In cn a death report is itself what
    # allows references: see test_cn_references_may_be_asked_once_the_borrower_is_reported_dead.)
    history = _unreachable(borrower_deceased=True)
    late = reference_call(local_dt(zone, 2026, 3, 4, 23, 30))
    assert decide(profile, late, zone, history).rule == Rule.WINDOW
    asked = _unreachable(borrower_deceased=True, contacted_third_parties=[CONTACT])
    proposal = reference_call(local_dt(zone, 2026, 3, 4, 10, 0))
    assert decide(profile, proposal, zone, asked).rule == Rule.THIRD_PARTY_ONCE
    reported_only = ContactHistory(borrower_deceased=True)
    assert decide(profile, proposal, zone, reported_only).allowed


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("cease", [False, True], ids=["", "ceased"])
def test_borrower_deceased_letters_to_the_borrower_cite_the_death(
    profile: profiles.JurisdictionProfile, zone: str, cease: bool
) -> None:
    # A cease request leaves letters alone, so a letter to a borrower reported dead is refused
    # for the death, whatever else stands (bar a dispute).
    history = ContactHistory(borrower_deceased=True, cease_requested=cease)
    letter = Proposal(
        local_dt(zone, 2026, 3, 4, 10, 0), Channel.LETTER, Target.BORROWER, BORROWER_ID
    )
    assert decide(profile, letter, zone, history) == planner.Decision(
        False, Rule.BORROWER_DECEASED, None
    )
    assert decide(profile, letter, zone, ContactHistory(cease_requested=cease)).allowed


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("deceased", [False, True], ids=["alive", "deceased"])
@pytest.mark.parametrize("cease", [False, True], ids=["", "ceased"])
@pytest.mark.parametrize(("hour", "minute"), SITUATION_TIMES, ids=["1000", "0300"])
def test_letters_to_the_estate_are_unaffected_by_the_death_or_a_cease_request(
    profile: profiles.JurisdictionProfile,
    zone: str,
    deceased: bool,
    cease: bool,
    hour: int,
    minute: int,
) -> None:
    history = ContactHistory(borrower_deceased=deceased, cease_requested=cease)
    at = local_dt(zone, 2026, 3, 4, hour, minute)
    letter = Proposal(at, Channel.LETTER, Target.ESTATE, ESTATE)
    assert decide(profile, letter, zone, history).allowed
    assert planner.next_allowed(profile, history, letter, ZoneInfo(zone)) == at
    _, planned = _plans(profile, zone, history, letter)
    assert planned is not None
    assert planned.at >= at


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
def test_letters_to_the_estate_are_not_third_party_contacts(
    profile: profiles.JurisdictionProfile, zone: str
) -> None:
    # A reachable borrower (cn), references asked and objected: none of it binds the estate.
    history = ContactHistory(
        borrower_deceased=True,
        contacted_third_parties=list(CONTACT_IDS),
        objected_third_parties=list(CONTACT_IDS),
    )
    letter = Proposal(local_dt(zone, 2026, 3, 4, 10, 0), Channel.LETTER, Target.ESTATE, ESTATE)
    assert decide(profile, letter, zone, history).allowed


def test_a_letter_to_the_estate_does_not_count_as_asking_a_reference() -> None:
    history = ContactHistory(borrower_deceased=True)
    at = ny(2026, 3, 4, 10, 0)
    rotation.record_attempt(
        history,
        AttemptRecord(at, Channel.LETTER, Target.ESTATE, ESTATE, "letter", Outcome.SENT),
        SLOT_NAMES,
    )
    assert history.contacted_third_parties == []
    assert history.unanswered_streak == 0
    assert decide(
        US, Proposal(at, Channel.LETTER, Target.ESTATE, ESTATE), NEW_YORK, history
    ).allowed


@pytest.mark.parametrize(("profile", "zone"), PROFILE_ZONES, ids=PROFILE_IDS)
@pytest.mark.parametrize("channel", CHANNELS)
def test_borrower_deceased_references_are_decided_as_if_alive(
    profile: profiles.JurisdictionProfile, zone: str, channel: str
) -> None:
    for history in (
        ContactHistory(),
        _unreachable(),
        _unreachable(contacted_third_parties=[CONTACT]),
        _unreachable(objected_third_parties=[CONTACT]),
    ):
        if not planner.borrower_unreachable(profile, history):
            continue  # cn: a death report is what makes references allowed (tested below)
        dead = replace(history, borrower_deceased=True)
        for hour in (3, 10, 23):
            proposal = Proposal(
                local_dt(zone, 2026, 3, 4, hour, 0), channel, Target.CONTACT, CONTACT
            )
            assert decide(profile, proposal, zone, dead) == decide(profile, proposal, zone, history)


def test_cn_references_may_be_asked_once_the_borrower_is_reported_dead() -> None:
    profile = profiles.PROFILES["cn"]
    reachable = ContactHistory(unanswered_streak=0)
    assert not planner.check_third_party(profile, reachable, "R1").allowed
    reported = ContactHistory(unanswered_streak=0, borrower_deceased=True)
    assert planner.check_third_party(profile, reported, "R1").allowed
