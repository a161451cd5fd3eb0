"""The slot rotation: unanswered calls are tried again at other times of day.

A loan's history keeps the slots tried without an answer in the current rotation; the planner
avoids them until every slot has been tried, and a conversation starts a new rotation. This module
folds each attempt into the history and says whether a call may still be made in a slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from workflows import budget
from workflows.slots import SlotLearning, waiting_slots
from workflows.strategy import Strategy
from workflows.types import AttemptRecord, ContactHistory
from workflows.vocabulary import Channel, Outcome, Target

if TYPE_CHECKING:
    from workflows.planner import PlannedContact

KEEP_ATTEMPTS_FOR = timedelta(days=8)  # the longest rule looks back seven days


def slot_of(at: datetime, strategy: Strategy, zone: ZoneInfo) -> str:
    local_time = at.astimezone(zone)
    minute = local_time.hour * 60 + local_time.minute
    for slot in strategy.slots:
        if slot.start_minute <= minute < slot.end_minute:
            return slot.name
    return "off_slot"


def slots_to_avoid(history: ContactHistory, strategy: Strategy) -> set[str]:
    """Slots tried without an answer in the current rotation (none once all have been tried)."""
    tried = set(history.tried_slots)
    if tried >= {s.name for s in strategy.slots}:
        return set()
    return tried


def record_attempt(history: ContactHistory, attempt: AttemptRecord, slot_names: list[str]) -> None:
    """Fold one attempt's outcome into the history, forgetting what no rule looks at any more."""
    history.attempts.append(attempt)
    cutoff = attempt.at - KEEP_ATTEMPTS_FOR
    history.attempts = [a for a in history.attempts if a.at >= cutoff]
    if attempt.target == Target.CONTACT:
        if attempt.target_id not in history.contacted_third_parties:
            history.contacted_third_parties.append(attempt.target_id)
        if attempt.outcome == Outcome.OBJECTED:
            history.objected_third_parties.append(attempt.target_id)
        return
    if attempt.channel != Channel.CALL:
        return
    if budget.is_conversation(attempt):
        history.unanswered_streak = 0
        history.nudges_in_streak = 0
        history.tried_slots = []
        history.last_conversation_at = attempt.at
    elif attempt.outcome in (*Outcome.UNANSWERED, Outcome.WRONG_PARTY):
        # Right-party detection: a call someone else answered has not reached the borrower.
        history.unanswered_streak += 1
        if attempt.slot not in history.tried_slots:
            history.tried_slots.append(attempt.slot)
        if set(history.tried_slots) >= set(slot_names):
            history.tried_slots = []


def slot_still_fits(
    planned: PlannedContact,
    channel: str,
    target: str,
    at: datetime,
    strategy: Strategy,
    history: ContactHistory,
    zone: ZoneInfo,
    learning: SlotLearning | None = None,
) -> bool:
    """Whether a borrower call planned into ``planned.slot`` may be made at ``at``, the real
    moment its timer fired.

    A timer fires late when a worker was down or the demo's clock is compressed. A call that
    slipped into a slot already tried without an answer in this rotation would break the
    rotation: it is not made, and the loan plans again from ``at`` into an untried slot. One
    that slipped into another untried slot, or between slots, keeps the rotation and is made if
    the planner's ``check`` still allows it then (the contact window, the caps). Messages and
    reference calls are bound to no slot: ``check`` alone decides for them.

    With ``learning`` (learning slots), the slots to avoid are those waiting while untried ones
    are explored (``slots.waiting_slots``).
    """
    if channel != Channel.CALL or target != Target.BORROWER:
        return True
    slot = slot_of(at, strategy, zone)
    avoid = (
        slots_to_avoid(history, strategy)
        if learning is None
        else waiting_slots(learning, [s.name for s in strategy.slots])
    )
    return slot == planned.slot or slot not in avoid
