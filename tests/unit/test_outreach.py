"""What outreach comes next: stage messages, calls, SMS nudges and references."""

from __future__ import annotations

import dataclasses
import re

import pytest

from workflows import outreach
from workflows.outreach import Intent, next_intent
from workflows.profiles import PROFILES, JurisdictionProfile
from workflows.strategy import Strategy
from workflows.types import ContactHistory
from workflows.vocabulary import Channel, Stage, Target

from .support import BORROWER_ID, CONTACT_IDS, default_strategy

STRATEGY = default_strategy()
US = PROFILES["us"]
CN = PROFILES["cn"]
SMS_AFTER = STRATEGY.sms_after_unanswered  # 4
CONTACTS_AFTER = STRATEGY.contacts_after_unanswered  # 8


def intent(
    stage: str = Stage.EARLY,
    *,
    streak: int = 0,
    nudges: int = 0,
    queued: list[str] | None = None,
    contacts: list[str] | None = None,
    contacted: list[str] | None = None,
    objected: list[str] | None = None,
    profile: JurisdictionProfile = CN,
    strategy: Strategy = STRATEGY,
) -> Intent | None:
    history = ContactHistory(
        unanswered_streak=streak,
        nudges_in_streak=nudges,
        contacted_third_parties=list(contacted or []),
        objected_third_parties=list(objected or []),
    )
    return next_intent(
        stage=stage,
        strategy=strategy,
        profile=profile,
        history=history,
        queued_messages=list(queued or []),
        nudges_in_streak=nudges,
        borrower_id=BORROWER_ID,
        contact_ids=list(CONTACT_IDS if contacts is None else contacts),
    )


def borrower_call(purpose: str) -> Intent:
    return Intent(Channel.CALL, Target.BORROWER, BORROWER_ID, purpose, f"call_{purpose}")


NUDGE = Intent(
    Channel.SMS, Target.BORROWER, BORROWER_ID, "no_answer_nudge", outreach.NUDGE_TEMPLATE
)


def reference(contact_id: str, profile: JurisdictionProfile = CN) -> Intent:
    """A call to a reference, with the script its profile allows."""
    if profile.code == "us":
        return Intent(Channel.CALL, Target.CONTACT, contact_id, "locate", "reference_locate")
    return Intent(Channel.CALL, Target.CONTACT, contact_id, "relay", "reference_relay")


@pytest.mark.parametrize(
    ("stage", "purpose"),
    [(Stage.EARLY, "reminder"), (Stage.MIDDLE, "learn_reason"), (Stage.LATE, "firm_reason")],
)
def test_each_open_stage_calls_the_borrower_with_its_purpose(stage: str, purpose: str) -> None:
    assert intent(stage) == borrower_call(purpose)
    assert f"call_{purpose}" in STRATEGY.messages, "every call purpose has a script"


@pytest.mark.parametrize("stage", [Stage.EARLY, Stage.MIDDLE, Stage.LATE])
def test_queued_stage_messages_come_first(stage: str) -> None:
    found = intent(
        stage, streak=CONTACTS_AFTER + 1, queued=["late_firm", "early_reminder"], profile=US
    )
    assert found == Intent(Channel.SMS, Target.BORROWER, BORROWER_ID, "late_firm", "late_firm")


@pytest.mark.parametrize("stage", [Stage.LEGAL, Stage.CURED, Stage.REFERRED])
def test_no_outreach_in_legal_or_closed_stages(stage: str) -> None:
    assert intent(stage) is None
    assert intent(stage, queued=["early_reminder"], streak=20) is None


@pytest.mark.parametrize("streak", range(SMS_AFTER))
def test_no_nudge_before_sms_after_unanswered(streak: int) -> None:
    assert intent(streak=streak) == borrower_call("reminder")


def test_nudge_after_sms_after_unanswered_calls() -> None:
    assert intent(streak=SMS_AFTER) == NUDGE
    assert intent(streak=SMS_AFTER, nudges=1) == borrower_call("reminder"), "once per run"
    assert intent(streak=SMS_AFTER + 1, nudges=1) == borrower_call("reminder")


def test_nudge_again_after_each_further_run() -> None:
    # No references to ask, so the nudge schedule shows on its own.
    for streak in range(0, 4 * SMS_AFTER):
        nudges_due = streak // SMS_AFTER
        for nudges in range(nudges_due + 1):
            found = intent(streak=streak, nudges=nudges, contacts=[])
            expected = NUDGE if nudges < nudges_due else borrower_call("reminder")
            assert found == expected, (streak, nudges)


def test_references_after_contacts_after_unanswered() -> None:
    assert intent(streak=CONTACTS_AFTER - 1, nudges=1) == borrower_call("reminder")
    assert intent(streak=CONTACTS_AFTER, nudges=2) == reference(CONTACT_IDS[0])
    # References come before a due nudge.
    assert intent(streak=CONTACTS_AFTER, nudges=1) == reference(CONTACT_IDS[0])


@pytest.mark.parametrize("profile", [US, CN], ids=["us", "cn"])
def test_only_allowed_references_are_asked(profile: JurisdictionProfile) -> None:
    a, b, c = CONTACT_IDS
    assert intent(streak=CONTACTS_AFTER, nudges=2, contacted=[a], profile=profile) == reference(
        b, profile
    )
    assert intent(
        streak=CONTACTS_AFTER, nudges=2, contacted=[a, b], objected=[b], profile=profile
    ) == reference(c, profile)


def test_when_no_reference_is_allowed_the_cadence_goes_on() -> None:
    everyone = list(CONTACT_IDS)
    assert intent(streak=CONTACTS_AFTER, nudges=1, contacted=everyone) == NUDGE
    assert intent(streak=CONTACTS_AFTER, nudges=2, contacted=everyone) == borrower_call("reminder")
    assert intent(streak=CONTACTS_AFTER, nudges=2, contacts=[]) == borrower_call("reminder")


def test_cn_law_holds_even_if_the_strategy_asks_references_early() -> None:
    # A strategy that asks references after 2 unanswered calls: cn still needs the borrower
    # unreachable (3 in a row), us does not.
    eager = dataclasses.replace(STRATEGY, contacts_after_unanswered=2)
    assert intent(streak=2, strategy=eager, profile=CN) == borrower_call("reminder")
    assert intent(streak=3, strategy=eager, profile=CN) == reference(CONTACT_IDS[0])
    assert intent(streak=2, strategy=eager, profile=US) == reference(CONTACT_IDS[0], US)


# --- what a reference is asked, by profile ---------------------------------------------------


def test_us_references_are_asked_for_location_information_only() -> None:
    # Regulation F § 1006.10: a third party may be asked for location information only, never
    # to relay a message.
    assert US.reference_script == "locate"
    found = intent(streak=CONTACTS_AFTER, nudges=2, profile=US)
    assert found == Intent(
        Channel.CALL, Target.CONTACT, CONTACT_IDS[0], "locate", "reference_locate"
    )
    assert found is not None and "relay" not in found.purpose + found.template


def test_cn_references_may_be_asked_to_relay_a_message() -> None:
    assert CN.reference_script == "relay"
    found = intent(streak=CONTACTS_AFTER, nudges=2, profile=CN)
    assert found == Intent(Channel.CALL, Target.CONTACT, CONTACT_IDS[0], "relay", "reference_relay")


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_every_profiles_reference_script_is_in_the_strategy(profile: JurisdictionProfile) -> None:
    template, purpose = outreach.REFERENCE_SCRIPTS[profile.reference_script]
    assert STRATEGY.messages[template].strip(), f"{profile.code}: {template} has no words"
    assert purpose == profile.reference_script


# The words a reference must never hear: the debt, the account, the loan, paying or owing.
DEBT_WORDS = re.compile(r"debt|account|loan|pay|owe|overdue|collect|balance|amount")


@pytest.mark.parametrize("template", ["reference_locate", "reference_relay"])
def test_no_reference_script_mentions_the_debt(template: str) -> None:
    text = STRATEGY.messages[template]
    assert "$first_name" in text
    assert not DEBT_WORDS.search(text.lower()), f"{template}: {text!r}"


def test_the_locate_script_asks_only_for_a_way_to_reach_the_borrower() -> None:
    text = STRATEGY.messages["reference_locate"].lower()
    assert any(word in text for word in ("phone", "address", "workplace"))
    # Not a message to pass on: no "call us back", no "tell them", no "ask them".
    for relay in ("call us back", "ask them", "tell them", "pass on", "message"):
        assert relay not in text, relay


def test_a_loan_whose_strategy_predates_the_locate_script_still_asks_for_location_only() -> None:
    """A loan keeps the strategy it started with; one started before ``reference_locate``
    existed gets the shipped words, never an empty script or the relay one."""
    strategy = default_strategy()
    older = dataclasses.replace(
        strategy,
        messages={k: v for k, v in strategy.messages.items() if k != "reference_locate"},
    )
    assert outreach.script(older, "reference_locate") == strategy.messages["reference_locate"]
    assert outreach.script(strategy, "reference_relay") == strategy.messages["reference_relay"]
