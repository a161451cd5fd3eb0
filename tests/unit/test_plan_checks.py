"""The planner's checks of a plan already made: may it be shown, and does it still hold when
its timer fires (``planner.plan_shown``, ``rotation.slot_still_fits``)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows import planner, profiles, rotation
from workflows.planner import PlannedContact, Proposal
from workflows.profiles import PROFILES
from workflows.types import ContactHistory, SharedContacts
from workflows.vocabulary import Channel, Target

from .support import BORROWER_ID, CONTACT_IDS, default_strategy, local_dt

NEW_YORK = "America/New_York"
ZONE = ZoneInfo(NEW_YORK)
US = PROFILES["us"]
CN = PROFILES["cn"]
STRATEGY = default_strategy()
CONTACT = CONTACT_IDS[0]


def ny(*parts: int) -> datetime:
    return local_dt(NEW_YORK, *parts)


# A planned SMS to the borrower, a planned borrower call and a planned reference call, mid-day.
SMS = Proposal(ny(2026, 3, 10, 12, 5), Channel.SMS, Target.BORROWER, BORROWER_ID)
CALL = Proposal(ny(2026, 3, 10, 12, 5), Channel.CALL, Target.BORROWER, BORROWER_ID)
REFERENCE = Proposal(ny(2026, 3, 10, 12, 5), Channel.CALL, Target.CONTACT, CONTACT)


def shown(
    proposal: Proposal,
    history: ContactHistory | None = None,
    *,
    held: bool = False,
    profile: profiles.JurisdictionProfile = US,
) -> bool:
    return planner.plan_shown(
        profile, history or ContactHistory(), proposal, ZONE, outreach_held=held
    )


@pytest.mark.parametrize("proposal", [SMS, CALL, REFERENCE], ids=["sms", "call", "reference"])
def test_a_plan_the_state_allows_is_shown(proposal: Proposal) -> None:
    assert shown(proposal)


@pytest.mark.parametrize("proposal", [SMS, CALL, REFERENCE], ids=["sms", "call", "reference"])
def test_nothing_is_shown_while_the_machine_holds_outreach(proposal: Proposal) -> None:
    # A dispute, a promise, a hardship plan, a death report, an operator's hold, a closed loan.
    assert not shown(proposal, held=True)


@pytest.mark.parametrize(
    "facts",
    [
        {"borrower_deceased": True},
        {"cease_requested": True},
        {"dispute_open": True},
        {"shared": SharedContacts(borrower_deceased=True)},
        {"shared": SharedContacts(cease_requested=True)},
    ],
    ids=["death", "cease", "dispute", "death-on-another-loan", "cease-on-another-loan"],
)
@pytest.mark.parametrize("proposal", [SMS, CALL], ids=["sms", "call"])
def test_no_borrower_contact_is_shown_once_the_history_forbids_it(
    proposal: Proposal, facts: dict[str, object]
) -> None:
    # The machine may not have moved (a death report or a cease request during a dispute, or
    # learnt on another loan): the planner's facts alone are enough.
    history = replace(ContactHistory(), **facts)  # type: ignore[arg-type]
    assert not shown(proposal, history)


def test_a_reference_who_objected_is_not_shown() -> None:
    assert not shown(REFERENCE, ContactHistory(objected_third_parties=[CONTACT]))
    number = "n-reference"
    across = ContactHistory(shared=SharedContacts(objected_numbers=[number]))
    assert not shown(replace(REFERENCE, number=number), across)


def test_a_reference_is_not_shown_once_the_borrower_is_reachable_again_in_cn() -> None:
    assert shown(REFERENCE, ContactHistory(unanswered_streak=3), profile=CN)
    assert not shown(REFERENCE, ContactHistory(unanswered_streak=0), profile=CN)


def test_a_reference_is_still_shown_after_a_death_report() -> None:
    # References may be asked about a borrower reported dead: only the borrower is spared.
    assert shown(REFERENCE, ContactHistory(borrower_deceased=True))


# --- slot_still_fits -------------------------------------------------------------------------


def planned(slot: str, *parts: int) -> PlannedContact:
    return PlannedContact(at=ny(*parts), slot=slot)


def fits(
    plan: PlannedContact,
    at: datetime,
    channel: str = Channel.CALL,
    target: str = "",
    tried: tuple[str, ...] = (),
) -> bool:
    history = ContactHistory(tried_slots=list(tried), unanswered_streak=len(tried))
    return rotation.slot_still_fits(
        plan, channel, target or Target.BORROWER, at, STRATEGY, history, ZONE
    )


def test_a_borrower_call_on_time_or_late_within_its_slot_fits() -> None:
    plan = planned("midday", 2026, 3, 10, 12, 5)
    assert fits(plan, plan.at, tried=("morning",))
    assert fits(plan, ny(2026, 3, 10, 13, 59), tried=("morning",))


@pytest.mark.parametrize(
    "late",
    [
        ny(2026, 3, 10, 9, 0),  # a tried slot, the same day
        ny(2026, 3, 11, 9, 30),  # the next morning, tried
    ],
    ids=["tried-slot", "next-morning-tried"],
)
def test_a_borrower_call_that_slipped_into_a_tried_slot_does_not_fit(late: datetime) -> None:
    assert not fits(planned("midday", 2026, 3, 10, 12, 5), late, tried=("morning",))


def test_a_call_that_slipped_between_slots_is_left_to_the_check() -> None:
    # No slot of the rotation is spent; whether 22:30 is allowed is the contact window's to say.
    assert fits(planned("evening", 2026, 3, 10, 19, 5), ny(2026, 3, 10, 22, 30), tried=("morning",))


def test_a_call_that_slipped_into_another_untried_slot_keeps_the_rotation() -> None:
    # Morning was tried; the midday call fires in the afternoon, which was not: it is made.
    assert fits(planned("midday", 2026, 3, 10, 12, 5), ny(2026, 3, 10, 15, 0), tried=("morning",))


def test_messages_and_reference_calls_are_not_bound_to_a_slot() -> None:
    plan = planned("midday", 2026, 3, 10, 12, 5)
    late = plan.at + timedelta(hours=10)
    assert fits(plan, late, Channel.SMS, tried=("morning",))
    assert fits(plan, late, Channel.CALL, Target.CONTACT, tried=("morning",))


def test_a_late_call_is_planned_again_into_an_untried_slot() -> None:
    # Morning and midday were tried without an answer; the afternoon call fires in the morning.
    history = ContactHistory(tried_slots=["morning", "midday"], unanswered_streak=2)
    plan = planned("afternoon", 2026, 3, 10, 15, 0)
    late = ny(2026, 3, 11, 9, 30)
    assert not fits(plan, late, tried=("morning", "midday"))
    again = planner.plan_borrower_call(
        US, STRATEGY, history, BORROWER_ID, late, ZONE, random.Random(1)
    )
    assert again is not None
    assert again.slot not in history.tried_slots
    assert again.at >= late
