"""What outreach comes next for a loan: the strategy's cadence, before the law's gate.

This module chooses *what* to do (call the borrower, send a message, ask a reference); the
contact planner decides *when* it is allowed. Both are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.planner import JurisdictionProfile, check_third_party
from workflows.types import Channel, ContactHistory, Stage, Strategy, Target

CALL_PURPOSE = {
    Stage.EARLY: "reminder",
    Stage.MIDDLE: "learn_reason",
    Stage.LATE: "firm_reason",
}
NUDGE_TEMPLATE = "no_answer_nudge"
REFERENCE_TEMPLATE = "reference_relay"


@dataclass(frozen=True)
class Intent:
    channel: str
    target: str
    target_id: str
    purpose: str
    template: str


def next_intent(
    stage: str,
    strategy: Strategy,
    profile: JurisdictionProfile,
    history: ContactHistory,
    queued_messages: list[str],
    nudges_in_streak: int,
    borrower_id: str,
    contact_ids: list[str],
) -> Intent | None:
    """The next outreach for a loan in ``stage``, or None when the stage calls for none.

    In order: a message the stage asked for; a reference, once calls have gone unanswered long
    enough; an SMS nudge after each run of unanswered calls; otherwise a call to the borrower.
    """
    if stage not in CALL_PURPOSE:
        return None
    if queued_messages:
        template = queued_messages[0]
        return Intent(Channel.SMS, Target.BORROWER, borrower_id, template, template)
    streak = history.unanswered_streak
    if streak >= strategy.contacts_after_unanswered:
        for contact_id in contact_ids:
            if check_third_party(profile, history, contact_id).allowed:
                return Intent(
                    Channel.CALL, Target.CONTACT, contact_id, "relay_or_locate", REFERENCE_TEMPLATE
                )
    if (
        streak >= strategy.sms_after_unanswered
        and streak // strategy.sms_after_unanswered > nudges_in_streak
    ):
        return Intent(Channel.SMS, Target.BORROWER, borrower_id, "no_answer_nudge", NUDGE_TEMPLATE)
    purpose = CALL_PURPOSE[stage]
    return Intent(Channel.CALL, Target.BORROWER, borrower_id, purpose, f"call_{purpose}")
