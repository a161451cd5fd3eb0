"""Jurisdiction profiles: the contact rules the law sets, per jurisdiction.

They are law, not tuning, so they live here in code and not in the strategy file; the strategy
may only be stricter. The planner (``workflows.planner``) applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta


@dataclass(frozen=True)
class JurisdictionProfile:
    """Contact rules of one jurisdiction.

    Attributes:
        code: Profile id, as written on the loan.
        window_start: Earliest borrower-local time of any call or message.
        window_end: Borrower-local time at which the window closes (exclusive).
        reference_script: What a reference (a third party) may be asked: ``locate`` (only a
            way to reach the borrower: home address and phone, or workplace) or ``relay`` (to
            pass a message on). Either way a reference is never told of the debt.
        max_unanswered_per_number_per_day: Unanswered attempts allowed to one number a local day.
        max_conversations_per_day: Right-party conversations allowed a local day.
        max_calls_per_week: Calls to the borrower in any 7 consecutive days.
        quiet_after_conversation: No call to the borrower for this long after a conversation.
        third_party_needs_unreachable: References may be contacted only when the borrower is
            unreachable (``unreachable_after_unanswered`` calls in a row, no conversation since).
        unreachable_after_unanswered: Unanswered calls in a row that make a borrower unreachable.
    """

    code: str
    window_start: time
    window_end: time
    reference_script: str
    max_unanswered_per_number_per_day: int | None = None
    max_conversations_per_day: int | None = None
    max_calls_per_week: int | None = None
    quiet_after_conversation: timedelta | None = None
    third_party_needs_unreachable: bool = False
    unreachable_after_unanswered: int = 0


PROFILES: dict[str, JurisdictionProfile] = {
    # China: CBA guideline (2026) and GB/T 45251-2025.
    "cn": JurisdictionProfile(
        code="cn",
        window_start=time(8, 0),
        window_end=time(22, 0),
        reference_script="relay",  # a message may be relayed; the debt is never named
        max_unanswered_per_number_per_day=6,
        max_conversations_per_day=3,
        third_party_needs_unreachable=True,
        unreachable_after_unanswered=3,
    ),
    # United States: Regulation F (12 CFR 1006).
    "us": JurisdictionProfile(
        code="us",
        window_start=time(8, 0),
        window_end=time(21, 0),
        # § 1006.10: location information only, never a message to relay.
        reference_script="locate",
        max_calls_per_week=7,
        quiet_after_conversation=timedelta(days=7),
    ),
}


def profile_for(code: str) -> JurisdictionProfile:
    """The profile for a jurisdiction code; unknown codes are an error, never a default."""
    try:
        return PROFILES[code]
    except KeyError:
        raise ValueError(f"unknown jurisdiction {code!r}; known: {', '.join(PROFILES)}") from None
