"""The borrower-level contact budget: what the borrower's other loans have used of it.

The law and the strategy set some limits per person or per phone number, not per loan: ``cn``'s
unanswered calls a day per number and conversations a day per borrower, the strategy's calls a
day and minimum gap, the quiet period after a conversation and the weekly call cap (per debt in
law, per borrower by our default), and the rules about references. A loan's own history knows
only its own attempts; this module joins them with the other loans' attempts and reservations
(``ContactHistory.shared``, filled from the ledger by the ``reserve_contact`` activity) so that
the contact planner counts every limit across all of them.

Pure and deterministic, like the planner that uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from workflows.types import AttemptRecord, ContactHistory
from workflows.vocabulary import Channel, Outcome, Target

if TYPE_CHECKING:
    from workflows.planner import Proposal

# The outcome of another loan's held reservation: a contact that is about to happen. Every rule
# counts it as a contact that will happen (an unanswered call, for the number's cap); at the
# moment of a contact, one in flight may also be a conversation.
RESERVED = "reserved"
# How long after its moment a held, unused place in the budget lapses by itself.
RESERVATION_GRACE = timedelta(minutes=15)


def number_key(phone: str) -> str:
    """The budget key of a phone number: a digest of its E.164 form, so that no number is kept
    in workflow state, search attributes or logs. Two loans or borrowers on one number share it.

    Intake stores numbers in E.164; punctuation and spaces are dropped here as well, so that a
    number written ``+1 555-000-1000`` and ``+15550001000`` is the same number.
    """
    digits = "".join(c for c in phone if c.isdigit())
    canonical = f"+{digits}" if phone.strip().startswith("+") else digits
    return "n-" + hashlib.sha256(canonical.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Counted:
    """How many attempts a rule counts: the loan's own, and those of the borrower's other loans."""

    own: int
    others: int

    @property
    def total(self) -> int:
        return self.own + self.others

    def over(self, cap: int) -> bool:
        return self.total >= cap

    def only_with_others(self, cap: int) -> bool:
        """True when the loan alone is under the cap: the borrower's other loans filled it."""
        return self.own < cap


def count(matches: Iterable[bool], shared: Iterable[bool]) -> Counted:
    """Count the attempts that match: ``matches`` over own attempts, ``shared`` over others."""
    return Counted(own=sum(1 for m in matches if m), others=sum(1 for m in shared if m))


def is_conversation(attempt: AttemptRecord) -> bool:
    """A right-party conversation: a call to the borrower's number that the borrower answered."""
    return (
        attempt.channel == Channel.CALL
        and attempt.target == Target.BORROWER
        and attempt.outcome == Outcome.ANSWERED
    )


def may_be_conversation(attempt: AttemptRecord, proposal: Proposal) -> bool:
    """A conversation, or, at the moment of a contact, another loan's call to the borrower in
    flight (its place held for a moment already come), which may be turning into one.

    A plan does not count another loan's planned call as a conversation: were it to become
    one, the loan is told at once and plans again, and its contact is checked again anyway.
    """
    return is_conversation(attempt) or (
        proposal.at_contact
        and attempt.outcome == RESERVED
        and attempt.at <= proposal.at
        and attempt.channel == Channel.CALL
        and attempt.target == Target.BORROWER
    )


def same_number(attempt: AttemptRecord, number: str, target_id: str) -> bool:
    """Whether ``attempt`` reached the number of a proposal (by key; by target for histories
    recorded before number keys existed)."""
    if attempt.number and number:
        return attempt.number == number
    return attempt.target_id == target_id


def of_borrower(attempt: AttemptRecord, borrower_id: str) -> bool:
    """Whether another loan's attempt was about this borrower (not another on a shared phone)."""
    return not attempt.borrower_id or not borrower_id or attempt.borrower_id == borrower_id


def happened_by(attempt: AttemptRecord, at: datetime) -> bool:
    """Made by ``at``, or held for a moment that the rule must count whatever ``at`` is."""
    return attempt.at <= at or attempt.outcome == RESERVED


def objected(history: ContactHistory, contact_id: str, number: str) -> bool:
    """A reference who objected, on this loan or on any loan (the same person, by number)."""
    return contact_id in history.objected_third_parties or (
        bool(number) and number in history.shared.objected_numbers
    )


def already_asked(history: ContactHistory, contact_id: str, number: str) -> bool:
    """A reference already asked, on this loan or on any of the borrower's loans, or being
    asked: another loan holds a place to call them."""
    if contact_id in history.contacted_third_parties:
        return True
    return bool(number) and (
        number in history.shared.contacted_numbers
        or any(
            a.outcome == RESERVED and a.target == Target.CONTACT and a.number == number
            for a in history.shared.attempts
        )
    )


def cease_requested(history: ContactHistory) -> tuple[bool, bool]:
    """Whether a cease request stands, and whether it came from another loan."""
    if history.cease_requested:
        return True, False
    across = history.cross_loan.cease and history.shared.cease_requested
    return across, across


def borrower_deceased(history: ContactHistory) -> tuple[bool, bool]:
    """Whether the borrower is reported dead, and whether another loan learnt it."""
    if history.borrower_deceased:
        return True, False
    return history.shared.borrower_deceased, history.shared.borrower_deceased


def reservation_lapses(at: datetime, day_seconds: float | None) -> datetime:
    """When a place held for a contact at ``at`` lapses, unused.

    A grace after the moment, long enough for the contact to be made. On a compressed demo clock
    (a day in ``day_seconds`` real seconds) the grace is also at least a real minute, which is
    many collection hours there.
    """
    if day_seconds is None:
        return at + RESERVATION_GRACE
    real_minute = timedelta(minutes=1) * (86_400 / day_seconds)
    return at + max(RESERVATION_GRACE, real_minute)
