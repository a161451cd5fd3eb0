"""What outreach comes next for a loan: the strategy's cadence, before the law's gate.

This module chooses *what* to do (call the borrower, send a message, ask a reference); the
contact planner decides *when* it is allowed. Both are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workflows.planner import check_third_party
from workflows.profiles import JurisdictionProfile
from workflows.strategy import Strategy
from workflows.types import ContactHistory
from workflows.vocabulary import Channel, Stage, Target

CALL_PURPOSE = {
    Stage.EARLY: "reminder",
    Stage.MIDDLE: "learn_reason",
    Stage.LATE: "firm_reason",
}
NUDGE_TEMPLATE = "no_answer_nudge"
# What a reference is asked, by the profile's ``reference_script``: (template, purpose). The law
# sets the script (``profiles.PROFILES``); the strategy holds its words.
REFERENCE_SCRIPTS = {
    "locate": ("reference_locate", "locate"),  # us: a way to reach the borrower, nothing more
    "relay": ("reference_relay", "relay"),  # cn: ask them to pass a message on
}


# Scripts added to the strategy after loans were started with it: a loan keeps the strategy it
# loaded, so one started before a script existed takes these words (the shipped strategy's).
LATER_SCRIPTS = {
    "reference_locate": "Hello, we are trying to reach $first_name. Could you tell us a phone"
    " number, home address or workplace where we can reach them? Thank you.",
}


def script(strategy: Strategy, template: str) -> str:
    """The words of ``template`` in the loan's strategy, or the shipped ones it predates."""
    return strategy.messages.get(template) or LATER_SCRIPTS.get(template, "")


def translations(strategy: Strategy, template: str) -> dict[str, str]:
    """The words of ``template`` in the strategy's other languages than en-US, by language."""
    return {
        language: scripts[template]
        for language, scripts in strategy.translations.items()
        if template in scripts
    }


@dataclass(frozen=True)
class Intent:
    channel: Channel
    target: Target
    target_id: str
    purpose: str
    template: str


def next_intent(
    stage: Stage,
    strategy: Strategy,
    profile: JurisdictionProfile,
    history: ContactHistory,
    queued_messages: list[str],
    nudges_in_streak: int,
    borrower_id: str,
    contact_ids: list[str],
    contact_numbers: Mapping[str, str] | None = None,
) -> Intent | None:
    """The next outreach for a loan in ``stage``, or None when the stage calls for none.

    In order: a message the stage asked for; a reference, once calls have gone unanswered long
    enough, with the script its profile allows; an SMS nudge after each run of unanswered calls;
    otherwise a call to the borrower. ``contact_numbers`` (contact id to number key) lets the
    rules that hold for a reference across the borrower's loans recognise the person.
    """
    if stage not in CALL_PURPOSE:
        return None
    if queued_messages:
        template = queued_messages[0]
        return Intent(Channel.SMS, Target.BORROWER, borrower_id, template, template)
    streak = history.unanswered_streak
    if streak >= strategy.contacts_after_unanswered:
        template, purpose = REFERENCE_SCRIPTS[profile.reference_script]
        for contact_id in contact_ids:
            number = (contact_numbers or {}).get(contact_id, "")
            if check_third_party(profile, history, contact_id, number).allowed:
                return Intent(Channel.CALL, Target.CONTACT, contact_id, purpose, template)
    if (
        streak >= strategy.sms_after_unanswered
        and streak // strategy.sms_after_unanswered > nudges_in_streak
    ):
        return Intent(Channel.SMS, Target.BORROWER, borrower_id, "no_answer_nudge", NUDGE_TEMPLATE)
    purpose = CALL_PURPOSE[stage]
    return Intent(Channel.CALL, Target.BORROWER, borrower_id, purpose, f"call_{purpose}")
