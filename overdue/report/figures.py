"""The report's figures: pure functions over the ledger's rows for one period.

Every figure is defined in docs/strategies.md ("How to read the report"). Shares and rates are
floats rounded to 4 places, ``None`` when nothing was there to divide by; money stays integer
minor units, per currency, and amounts of different currencies are never added.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from overdue.report.rows import (
    NEXT_STAGE,
    OPEN_STAGES,
    AttemptRow,
    Collection,
    Ledger,
    LoanRow,
    Period,
    all_collections,
)
from workflows.vocabulary import PHONE_CONVERSATIONS, Outcome, Stage

SPLITS = ("strategy", "jurisdiction", "product")
ALL = "all"
# Rows of contact_attempts that are not attempts: a place held in a borrower's budget, and a
# contact the budget had no room for (nothing was sent).
NOT_ATTEMPTS = (Outcome.RESERVED, Outcome.DEFERRED)
# The audit entries of the situation region that put a loan in a situation only a person ends,
# and those that take it out of one (workflows/machine.py): an entry is written only when the
# machine took the event, so the last one tells where the loan stands.
WAITS = {
    "dispute_opened": "dispute",  # a person resolves it (dispute_resolved)
    "long_term_hardship": "hardship_review",  # a person decides forbearance
    "verification_overdue": "death_verification",  # a person verifies the death
    "registry_not_verified": "death_verification",
    "death_verified": "estate",  # a person decides the estate claim
}
ENDS_WAIT = (
    "dispute_rejected",
    "death_not_verified",
    "forbearance_approved",
    "forbearance_rejected",
    "death_reported",
    "cease_requested",
    "short_term_hardship",
    "instalment_missed",
)
HOLDS = ("collection_paused", "collection_resumed")
HELD_BY_THE_COLLECTION = "overdue"  # workflows.collection.rules.HELD_BY_THE_COLLECTION
REASONS = (
    "dispute",
    "hardship_review",
    "death_verification",
    "estate",
    "held_by_collection",
    "held_by_operator",
)


def share(part: int | float, whole: int | float) -> float | None:
    """``part / whole`` rounded to 4 places, or None when ``whole`` is zero."""
    return round(part / whole, 4) if whole else None


def group_key(loan: LoanRow, by: str | None) -> str:
    """The group a loan falls in: its strategy (``name@version``), jurisdiction or product."""
    if by is None:
        return ALL
    if by == "strategy":
        return (
            f"{loan.strategy}@{loan.strategy_version}" if loan.strategy_version else loan.strategy
        )
    if by in SPLITS:
        return str(getattr(loan, by))
    raise ValueError(f"by: {by!r} is not one of {', '.join(SPLITS)}")


def report(ledger: Ledger, period: Period, by: str | None = None) -> dict[str, Any]:
    """Every figure, for the whole portfolio or for each group of ``by``."""
    groups: dict[str, set[str]] = defaultdict(set)
    for loan in ledger.loans:
        groups[group_key(loan, by)].add(loan.loan_id)
    return {
        "period": {"since": period.since.isoformat(), "until": period.until.isoformat()},
        "by": by,
        # Every group's slots in one order: by the earliest borrower-local hour called in each.
        "slots": [r["slot"] for r in right_party_contact(ledger.attempts, period)["by_slot"]],
        "groups": [
            {"key": key, **figures(ledger.only(ids), period)} for key, ids in sorted(groups.items())
        ],
    }


def figures(ledger: Ledger, period: Period) -> dict[str, Any]:
    """The figures of one group of loans."""
    collections = [c for c in all_collections(ledger) if c.open_during(period)]
    return {
        "loans": len({c.loan.loan_id for c in collections}),
        "collections": len(collections),
        "roll_rates": roll_rates(collections, period),
        "cures": cures(collections, period),
        "recovery": recovery(collections, ledger, period),
        "right_party_contact": right_party_contact(ledger.attempts, period),
        "promises": promises(ledger, period),
        "contacts_per_cure": contacts_per_cure(collections, ledger.attempts, period),
        "waiting_for_person": waiting_for_person(collections, period),
    }


def roll_rates(collections: list[Collection], period: Period) -> list[dict[str, Any]]:
    """Of the collections in each open stage at some instant of the period, how many moved on
    to the next stage, were cured, were referred, closed otherwise, or stayed, by the period's
    end (each stint in a stage counts once)."""
    rows = []
    for stage in OPEN_STAGES:
        counts = dict.fromkeys(("rolled", "cured", "referred", "closed_other", "stayed"), 0)
        for c in collections:
            for stint in c.stints:
                if stint.stage != stage or stint.start >= period.until:
                    continue
                if stint.end is not None and stint.end < period.since:
                    continue
                counts[_left_for(stint.end, stint.exit_to, period)] += 1
        total = sum(counts.values())
        rows.append(
            {
                "stage": stage,
                "loans": total,
                **counts,
                "shares": {k: share(v, total) for k, v in counts.items()},
                "next_stage": NEXT_STAGE.get(stage, Stage.REFERRED),
            }
        )
    return rows


def _left_for(end: datetime | None, exit_to: str | None, period: Period) -> str:
    if end is None or end >= period.until or exit_to is None:
        return "stayed"
    if exit_to in OPEN_STAGES:
        return "rolled"
    if exit_to in (Stage.CURED, Stage.REFERRED):
        return str(exit_to)
    return "closed_other"


def cures(collections: list[Collection], period: Period) -> list[dict[str, Any]]:
    """Cure rate and median days to cure, by stage of entry, and for all stages together.

    The stage of entry is the stage a collection was in when it entered the period: at the
    period's start if it was open then, else at its opening (always early). Days to cure run
    from the collection's opening to its cure.
    """
    entered: dict[str, list[Collection]] = {stage: [] for stage in OPEN_STAGES}
    for c in collections:
        entered[c.stage_at(max(c.opened_at, period.since))].append(c)
    rows = [_cure_row(stage, entered[stage], period) for stage in OPEN_STAGES]
    rows.append(_cure_row(ALL, collections, period))
    return rows


def _cure_row(stage: str, collections: list[Collection], period: Period) -> dict[str, Any]:
    days = [
        (c.closed_at - c.opened_at).total_seconds() / 86400
        for c in collections
        if c.cured_in(period) and c.closed_at is not None
    ]
    return {
        "entry_stage": stage,
        "loans": len(collections),
        "cured": len(days),
        "cure_rate": share(len(days), len(collections)),
        "median_days_to_cure": round(statistics.median(days), 2) if days else None,
    }


def recovery(collections: list[Collection], ledger: Ledger, period: Period) -> list[dict[str, Any]]:
    """The recovery curve of the collections opened in the period, per currency: the
    cumulative share of the balance they opened with that was paid by each day past due.

    A payment's DPD is its borrower-local date less the loan's due date; what was overpaid
    beyond the balance is not counted as recovered.
    """
    payments = defaultdict(list)
    for p in ledger.payments:
        payments[p.loan_id].append(p)
    overdue: dict[str, int] = defaultdict(int)
    loans: dict[str, int] = defaultdict(int)
    by_dpd: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for c in collections:
        if not period.holds(c.opened_at) or not c.overdue_minor:
            continue
        currency, zone = c.loan.currency, ZoneInfo(c.loan.timezone)
        overdue[currency] += c.overdue_minor
        loans[currency] += 1
        for p in payments[c.loan.loan_id]:
            if p.paid_at < c.opened_at or p.paid_at >= period.until:
                continue
            if c.ends_before is not None and p.paid_at >= c.ends_before:
                continue
            dpd = max(0, (p.paid_at.astimezone(zone).date() - c.loan.due_date).days)
            by_dpd[currency][dpd] += p.amount_minor - p.overpaid_minor
    rows = []
    for currency in sorted(overdue):
        cumulative, points = 0, []
        for dpd in sorted(by_dpd[currency]):
            cumulative += by_dpd[currency][dpd]
            points.append(
                {
                    "dpd": dpd,
                    "recovered_minor": cumulative,
                    "share": share(cumulative, overdue[currency]),
                }
            )
        rows.append(
            {
                "currency": currency,
                "loans": loans[currency],
                "overdue_minor": overdue[currency],
                "recovered_minor": cumulative,
                "share": share(cumulative, overdue[currency]),
                "points": points,
            }
        )
    return rows


def right_party_contact(attempts: list[AttemptRow], period: Period) -> dict[str, Any]:
    """Right-party contact rate of the period's phone attempts to borrowers, by slot and by
    borrower-local hour: attempts answered by the borrower over attempts."""
    calls = [
        a
        for a in attempts
        if period.holds(a.at_utc)
        and a.channel in PHONE_CONVERSATIONS
        and a.target == "borrower"
        and a.outcome not in NOT_ATTEMPTS
    ]
    first_hour: dict[str, int] = {}
    for a in calls:
        first_hour[a.slot] = min(first_hour.get(a.slot, 24), _hour(a))
    slots = sorted(first_hour, key=lambda s: (first_hour[s], s))
    return {
        "attempts": len(calls),
        "right_party": sum(a.outcome == Outcome.ANSWERED for a in calls),
        "rate": share(sum(a.outcome == Outcome.ANSWERED for a in calls), len(calls)),
        "by_slot": _rates(calls, slots, lambda a: a.slot, "slot"),
        "by_hour": _rates(calls, sorted({_hour(a) for a in calls}), _hour, "hour"),
    }


def _hour(attempt: AttemptRow) -> int:
    return int(attempt.at_local[11:13])


def _rates(
    calls: list[AttemptRow], keys: list[Any], key_of: Callable[[AttemptRow], Any], name: str
) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        mine = [a for a in calls if key_of(a) == key]
        answered = sum(a.outcome == Outcome.ANSWERED for a in mine)
        rows.append(
            {
                name: key,
                "attempts": len(mine),
                "right_party": answered,
                "rate": share(answered, len(mine)),
            }
        )
    return rows


def promises(ledger: Ledger, period: Period) -> dict[str, Any]:
    """Promises made in the period, and those settled in it by how they ended; the kept rate
    is kept over settled (a partially kept promise is not kept)."""
    settled = [
        p for p in ledger.promises if p.settled_at is not None and period.holds(p.settled_at)
    ]
    counts = {
        status: sum(p.status == status for p in settled)
        for status in ("kept", "partially_kept", "broken")
    }
    return {
        "made": sum(period.holds(p.made_at) for p in ledger.promises),
        "settled": len(settled),
        **counts,
        "kept_rate": share(counts["kept"], len(settled)),
    }


def contacts_per_cure(
    collections: list[Collection], attempts: list[AttemptRow], period: Period
) -> dict[str, Any]:
    """Every contact attempt made in the period (calls, messages, letters, to anyone) over the
    collections cured in it."""
    contacts = sum(period.holds(a.at_utc) and a.outcome not in NOT_ATTEMPTS for a in attempts)
    cured = sum(c.cured_in(period) for c in collections)
    return {
        "contacts": contacts,
        "cures": cured,
        "contacts_per_cure": round(contacts / cured, 2) if cured else None,
    }


def waiting_for_person(collections: list[Collection], period: Period) -> dict[str, Any]:
    """The loans open at the period's end that wait on a person: held (by the collection
    itself after a failure, or by an operator), or in a dispute, a hardship review, a death
    verification or an estate decision. A loan may wait for more than one reason; ``loans``
    counts it once."""
    end = period.until
    reasons: dict[str, int] = dict.fromkeys(REASONS, 0)
    waiting: set[str] = set()
    for c in collections:
        if not c.open_at(end):
            continue
        mine = _waits_of(c, end)
        for reason in mine:
            reasons[reason] += 1
        if mine:
            waiting.add(c.loan.loan_id)
    return {"loans": len(waiting), "by_reason": reasons}


def _waits_of(collection: Collection, end: datetime) -> list[str]:
    """Why a collection waits on a person at ``end``, from its audit entries before then."""
    situation: str | None = None
    hold: str | None = None
    for event in collection.events:
        if event.at >= end:
            continue
        if event.action in WAITS:
            situation = WAITS[event.action]
        elif event.action in ENDS_WAIT:
            situation = None
        elif event.action == "collection_paused":
            hold = (
                "held_by_collection"
                if event.operator == HELD_BY_THE_COLLECTION
                else "held_by_operator"
            )
        elif event.action == "collection_resumed":
            hold = None
    return [r for r in (situation, hold) if r is not None]
