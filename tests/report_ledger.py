"""A small ledger whose report figures are worked out by hand, for ``overdue report``'s tests.

The unit tests compute the figures from these rows; the integration test writes the same rows
to PostgreSQL (with loan ids of its own) and reads them back through ``overdue report --json``.

The period is March 2026, ``[03-01 00:00, 03-31 00:00)`` UTC. Seven loans, all in UTC but C
(Shanghai, UTC+8):

- A (USD 100.00, due 02-19): opened 02-20; middle 02-25, late 03-05, cured 03-10.
- B (USD 200.00, due 03-01): opened 03-02; middle 03-07, late 03-20; paused by an operator
  03-21 and resumed 03-22; paid 50.00 on 03-04 and 40.00 on 04-02 (after the period).
- C (USD 100.00, due 03-02, Shanghai): opened 03-03 00:00; cured 03-06 18:00; paid 20.00 at
  03-04 20:00 UTC (03-05 local) and 85.00 at 03-06 18:00 UTC (03-07 local), 5.00 of it
  overpaid.
- D (CNY 500.00, due 03-09, jurisdiction cn): opened 03-10; a dispute opened 03-12.
- E (USD 300.00, due 2025-12-31): opened 01-01, referred 02-07: closed before the period.
- F (USD 400.00, due 01-31): opened 02-01; middle 02-06, late 02-19, legal 02-28; held by the
  collection itself (a failed activity) 03-15.
- G (USD 150.00, due 02-09): opened 02-10; middle 02-15; long-term hardship 02-20 (a person
  reviews it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from overdue.report.rows import (
    AttemptRow,
    EventRow,
    Ledger,
    LoanRow,
    PaymentRow,
    Period,
    PromiseRow,
)

PERIOD = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))


def at(month: int, day: int, hour: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def ledger(prefix: str = "", product: str = "personal") -> Ledger:
    """The ledger's rows; loan ids are ``prefix`` and the letter."""

    def loan(
        letter: str,
        currency: str,
        due: date,
        opened: datetime,
        closed: datetime | None,
        *,
        zone: str = "UTC",
        jurisdiction: str = "us",
    ) -> LoanRow:
        return LoanRow(
            f"{prefix}{letter}", product, jurisdiction, "default", "", currency, due, zone,
            opened, closed,
        )  # fmt: skip

    seq = iter(range(1, 1000))

    def event(letter: str, when: datetime, action: str, **details: Any) -> EventRow:
        return EventRow(next(seq), f"{prefix}{letter}", when, action, **details)

    def stage(letter: str, when: datetime, to: str) -> EventRow:
        return event(letter, when, "stage_changed", to_stage=to)

    def opened(letter: str, when: datetime, minor: int) -> EventRow:
        return event(letter, when, "loan_opened", outstanding_minor=minor)

    def call(
        letter: str, when: datetime, local: str, slot: str, outcome: str, **how: str
    ) -> AttemptRow:
        channel, target = how.get("channel", "call"), how.get("target", "borrower")
        return AttemptRow(f"{prefix}{letter}", when, local, slot, channel, target, outcome)

    def promise(letter: str, status: str, made: datetime, settled: datetime | None) -> PromiseRow:
        return PromiseRow(f"{prefix}{letter}", status, made, settled)

    return Ledger(
        loans=[
            loan("A", "USD", date(2026, 2, 19), at(2, 20), at(3, 10)),
            loan("B", "USD", date(2026, 3, 1), at(3, 2), None),
            loan("C", "USD", date(2026, 3, 2), at(3, 3), at(3, 6, 18), zone="Asia/Shanghai"),
            loan("D", "CNY", date(2026, 3, 9), at(3, 10), None, jurisdiction="cn"),
            loan("E", "USD", date(2025, 12, 31), at(1, 1), at(2, 7)),
            loan("F", "USD", date(2026, 1, 31), at(2, 1), None),
            loan("G", "USD", date(2026, 2, 9), at(2, 10), None),
        ],
        events=[
            opened("A", at(2, 20), 10000),
            stage("A", at(2, 25), "middle"),
            stage("A", at(3, 5), "late"),
            stage("A", at(3, 10), "cured"),
            opened("B", at(3, 2), 20000),
            stage("B", at(3, 7), "middle"),
            stage("B", at(3, 20), "late"),
            event("B", at(3, 21), "collection_paused", operator="ops:ann"),
            event("B", at(3, 22), "collection_resumed", operator="ops:ann"),
            opened("C", at(3, 3), 10000),
            stage("C", at(3, 6, 18), "cured"),
            opened("D", at(3, 10), 50000),
            event("D", at(3, 12), "dispute_opened"),
            opened("E", at(1, 1), 30000),
            stage("E", at(1, 6), "middle"),
            stage("E", at(1, 19), "late"),
            stage("E", at(1, 28), "legal"),
            stage("E", at(2, 7), "referred"),
            opened("F", at(2, 1), 40000),
            stage("F", at(2, 6), "middle"),
            stage("F", at(2, 19), "late"),
            stage("F", at(2, 28), "legal"),
            event("F", at(3, 15), "collection_paused", operator="overdue"),
            opened("G", at(2, 10), 15000),
            stage("G", at(2, 15), "middle"),
            event("G", at(2, 20), "long_term_hardship"),
        ],
        payments=[
            PaymentRow(f"{prefix}A", at(3, 10), 10000),
            PaymentRow(f"{prefix}B", at(3, 4, 12), 5000),
            PaymentRow(f"{prefix}B", at(4, 2), 4000),
            PaymentRow(f"{prefix}C", at(3, 4, 20), 2000),
            PaymentRow(f"{prefix}C", at(3, 6, 18), 8500, overpaid_minor=500),
        ],
        attempts=[
            call("B", at(3, 2, 9), "2026-03-02 09:10 UTC", "morning", "no_answer"),
            call("B", at(3, 3, 9), "2026-03-03 09:30 UTC", "morning", "answered"),
            call("B", at(3, 3, 18), "2026-03-03 18:05 UTC", "evening", "no_answer"),
            call("B", at(3, 5, 9), "2026-03-05 09:00 UTC", "morning", "reserved"),
            call("C", at(3, 4, 10), "2026-03-04 18:00 CST", "evening", "answered"),
            call("D", at(3, 11, 4), "2026-03-11 12:00 CST", "midday", "busy"),
            call("D", at(3, 11, 6), "2026-03-11 14:00 CST", "midday", "relayed", target="contact"),
            call("D", at(3, 12, 1), "2026-03-12 09:00 CST", "morning", "delivered", channel="sms"),
            call("D", at(3, 13, 1), "2026-03-13 09:00 CST", "morning", "deferred"),
            call("F", at(2, 27, 9), "2026-02-27 09:00 UTC", "morning", "answered"),
            call("G", at(3, 12, 15), "2026-03-12 15:00 UTC", "afternoon", "no_answer"),
        ],
        promises=[
            promise("B", "kept", at(3, 3), at(3, 6)),
            promise("C", "broken", at(3, 4), at(3, 6)),
            promise("D", "open", at(3, 12), None),
            promise("G", "partially_kept", at(2, 25), at(3, 2)),
            promise("F", "broken", at(2, 20), at(2, 27)),
        ],
    )


def rates(**counts: int) -> dict[str, float | None]:
    total = sum(counts.values())
    return {k: round(v / total, 4) for k, v in counts.items()}


# The figures of the whole ledger, worked out by hand.
EXPECTED: dict[str, Any] = {
    # E was closed (02-07) before the period began: six loans, one collection each.
    "loans": 6,
    "collections": 6,
    "roll_rates": [
        # In early during March: B (left for middle 03-07), C (cured 03-06), D (still early).
        # A, F and G had left early in February.
        {
            "stage": "early",
            "loans": 3,
            "rolled": 1,
            "cured": 1,
            "referred": 0,
            "closed_other": 0,
            "stayed": 1,
            "next_stage": "middle",
            "shares": rates(rolled=1, cured=1, referred=0, closed_other=0, stayed=1),
        },
        # In middle: A (to late 03-05), B (to late 03-20), G (still middle): 2/3 rolled.
        {
            "stage": "middle",
            "loans": 3,
            "rolled": 2,
            "cured": 0,
            "referred": 0,
            "closed_other": 0,
            "stayed": 1,
            "next_stage": "late",
            "shares": rates(rolled=2, cured=0, referred=0, closed_other=0, stayed=1),
        },
        # In late: A (cured 03-10), B (still late): 1/2 each.
        {
            "stage": "late",
            "loans": 2,
            "rolled": 0,
            "cured": 1,
            "referred": 0,
            "closed_other": 0,
            "stayed": 1,
            "next_stage": "legal",
            "shares": rates(rolled=0, cured=1, referred=0, closed_other=0, stayed=1),
        },
        # In legal: F, still there at the end.
        {
            "stage": "legal",
            "loans": 1,
            "rolled": 0,
            "cured": 0,
            "referred": 0,
            "closed_other": 0,
            "stayed": 1,
            "next_stage": "referred",
            "shares": rates(rolled=0, cured=0, referred=0, closed_other=0, stayed=1),
        },
    ],
    "cures": [
        # Entered in early (opened in March): B, C, D. C cured 3.75 days after opening
        # (03-03 00:00 to 03-06 18:00): 1/3.
        {
            "entry_stage": "early",
            "loans": 3,
            "cured": 1,
            "cure_rate": 0.3333,
            "median_days_to_cure": 3.75,
        },
        # In middle on 03-01: A and G. A cured 18 days after opening (02-20 to 03-10): 1/2.
        {
            "entry_stage": "middle",
            "loans": 2,
            "cured": 1,
            "cure_rate": 0.5,
            "median_days_to_cure": 18.0,
        },
        {
            "entry_stage": "late",
            "loans": 0,
            "cured": 0,
            "cure_rate": None,
            "median_days_to_cure": None,
        },
        # In legal since 02-28: F, not cured.
        {
            "entry_stage": "legal",
            "loans": 1,
            "cured": 0,
            "cure_rate": 0.0,
            "median_days_to_cure": None,
        },
        # 2 of 6; median of 3.75 and 18 = 10.875, shown as 10.88.
        {
            "entry_stage": "all",
            "loans": 6,
            "cured": 2,
            "cure_rate": 0.3333,
            "median_days_to_cure": 10.88,
        },
    ],
    "recovery": [
        # Opened in March in CNY: D, 500.00, nothing paid.
        {
            "currency": "CNY",
            "loans": 1,
            "overdue_minor": 50000,
            "recovered_minor": 0,
            "share": 0.0,
            "points": [],
        },
        # Opened in March in USD: B (200.00) and C (100.00), 300.00 in all. By DPD:
        # 3: B's 50.00 (03-04 less due 03-01) + C's 20.00 (03-05 Shanghai less due 03-02)
        #    = 70.00, 70/300 = 0.2333;
        # 5: C's 85.00 less 5.00 overpaid (03-07 Shanghai less 03-02) = 80.00, 150/300 = 0.5.
        # B's 40.00 of 04-02 is after the period; A opened in February.
        {
            "currency": "USD",
            "loans": 2,
            "overdue_minor": 30000,
            "recovered_minor": 15000,
            "share": 0.5,
            "points": [
                {"dpd": 3, "recovered_minor": 7000, "share": 0.2333},
                {"dpd": 5, "recovered_minor": 15000, "share": 0.5},
            ],
        },
    ],
    "right_party_contact": {
        # Phone attempts to borrowers in March: B's three (the reserved place is no attempt),
        # C's, D's busy call, G's: 6, of which 2 answered (B 03-03 09:30, C 18:00 local).
        # D's relayed call reached a reference, its SMS is no call, its deferral no attempt;
        # F's answered call was in February.
        "attempts": 6,
        "right_party": 2,
        "rate": 0.3333,
        # Slots in the order of their earliest local hour: 9, 12, 15, 18.
        "by_slot": [
            {"slot": "morning", "attempts": 2, "right_party": 1, "rate": 0.5},
            {"slot": "midday", "attempts": 1, "right_party": 0, "rate": 0.0},
            {"slot": "afternoon", "attempts": 1, "right_party": 0, "rate": 0.0},
            {"slot": "evening", "attempts": 2, "right_party": 1, "rate": 0.5},
        ],
        "by_hour": [
            {"hour": 9, "attempts": 2, "right_party": 1, "rate": 0.5},
            {"hour": 12, "attempts": 1, "right_party": 0, "rate": 0.0},
            {"hour": 15, "attempts": 1, "right_party": 0, "rate": 0.0},
            {"hour": 18, "attempts": 2, "right_party": 1, "rate": 0.5},
        ],
    },
    # Made in March: B, C, D. Settled in March: B kept, C broken, G partially kept: 1/3.
    "promises": {
        "made": 3,
        "settled": 3,
        "kept": 1,
        "partially_kept": 1,
        "broken": 1,
        "kept_rate": 0.3333,
    },
    # Contacts in March: the 6 phone attempts, D's call to a reference and D's SMS = 8; cured
    # in March: A and C = 2; 8 / 2 = 4.
    "contacts_per_cure": {"contacts": 8, "cures": 2, "contacts_per_cure": 4.0},
    # Open on 03-31: B (resumed: not waiting), D (dispute), F (held by the collection),
    # G (hardship review since 02-20).
    "waiting_for_person": {
        "loans": 3,
        "by_reason": {
            "dispute": 1,
            "hardship_review": 1,
            "death_verification": 0,
            "estate": 0,
            "held_by_collection": 1,
            "held_by_operator": 0,
        },
    },
}
