"""``overdue report``'s figures, computed from a ledger worked out by hand (tests/report_ledger.py
shows the arithmetic of every expected number)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from overdue.cli.common import UserError
from overdue.cli.report import parse_period
from overdue.report.figures import figures, report, waiting_for_person
from overdue.report.html import render
from overdue.report.rows import (
    Collection,
    EventRow,
    LoanRow,
    Period,
    collections_of,
)
from tests.report_ledger import EXPECTED, PERIOD, at, ledger


@pytest.mark.parametrize("figure", sorted(EXPECTED))
def test_each_figure_is_the_hand_computed_one(figure: str) -> None:
    assert figures(ledger(), PERIOD)[figure] == EXPECTED[figure]


def test_a_split_gives_each_group_its_own_figures() -> None:
    split = report(ledger(), PERIOD, by="jurisdiction")
    assert split["by"] == "jurisdiction"
    assert [g["key"] for g in split["groups"]] == ["cn", "us"]
    cn, us = split["groups"]
    # cn holds D alone: early all month, in a dispute, 500.00 CNY unpaid.
    assert cn["loans"] == 1
    assert cn["roll_rates"][0]["stayed"] == 1
    assert cn["waiting_for_person"]["by_reason"]["dispute"] == 1
    assert [r["currency"] for r in cn["recovery"]] == ["CNY"]
    # us holds the five others of the month (A, B, C, F, G); the USD curve is unchanged.
    assert us["loans"] == 5
    assert us["recovery"] == [r for r in EXPECTED["recovery"] if r["currency"] == "USD"]
    # Slots in one order for every group: by the earliest local hour called in each (D's
    # midday call in cn at 12 sits between us's morning and afternoon).
    assert split["slots"] == ["morning", "midday", "afternoon", "evening"]
    assert [g["key"] for g in report(ledger(), PERIOD)["groups"]] == ["all"]


def test_a_loan_collected_again_counts_once_per_collection() -> None:
    loan = LoanRow(
        "R", "personal", "us", "default", "", "USD", date(2026, 3, 14), "UTC", at(3, 15), None
    )
    events = [
        EventRow(1, "R", at(2, 1), "loan_opened", outstanding_minor=5000),
        EventRow(2, "R", at(2, 4), "stage_changed", to_stage="cured"),
        EventRow(3, "R", at(3, 15), "loan_opened", outstanding_minor=7000),
        EventRow(4, "R", at(3, 20), "stage_changed", to_stage="middle"),
    ]
    first, second = collections_of(loan, events)
    assert (first.closed_stage, first.ends_before) == ("cured", at(3, 15))
    assert [s.stage for s in second.stints] == ["early", "middle"]
    assert (second.overdue_minor, second.closed_at) == (7000, None)
    # February's collection is not in March; March's is, and entered in early.
    assert not first.open_during(PERIOD) and second.open_during(PERIOD)
    assert second.stage_at(PERIOD.since) == "early"


def _waiting(*actions: tuple[str, str | None]) -> dict[str, int]:
    loan = LoanRow("W", "p", "us", "default", "", "USD", date(2026, 3, 1), "UTC", at(3, 2), None)
    events = [EventRow(1, "W", at(3, 2), "loan_opened", outstanding_minor=100)] + [
        EventRow(n, "W", at(3, n), action, operator=operator)
        for n, (action, operator) in enumerate(actions, start=3)
    ]
    collections: list[Collection] = collections_of(loan, events)
    reasons: dict[str, int] = waiting_for_person(collections, PERIOD)["by_reason"]
    return {k: v for k, v in reasons.items() if v}


def test_the_last_situation_entry_says_whom_a_loan_waits_for() -> None:
    # A death reported, the registry without a record (a person verifies), then verified: the
    # estate decision is a person's.
    death = [("death_reported", None), ("registry_not_verified", None)]
    assert _waiting(*death) == {"death_verification": 1}
    assert _waiting(*death, ("death_verified", None)) == {"estate": 1}
    # A dispute rejected waits no more; a hardship reviewed neither.
    assert _waiting(("dispute_opened", None), ("dispute_rejected", None)) == {}
    assert _waiting(("long_term_hardship", None), ("forbearance_approved", None)) == {}
    # A hold waits on whoever can resume it, whatever the situation.
    assert _waiting(("dispute_opened", None), ("collection_paused", "ops:ann")) == {
        "dispute": 1,
        "held_by_operator": 1,
    }
    # A report that a person is needed, with no one needed yet (registry still asked): none.
    assert _waiting(("death_reported", None)) == {}


def test_nothing_to_divide_by_is_none_not_zero() -> None:
    empty = figures(ledger(product="x").only(set()), PERIOD)
    assert empty["loans"] == 0
    assert empty["promises"]["kept_rate"] is None
    assert empty["contacts_per_cure"]["contacts_per_cure"] is None
    assert empty["right_party_contact"]["rate"] is None
    assert all(r["cure_rate"] is None for r in empty["cures"])


def test_the_period_defaults_to_the_last_90_days_and_dates_are_whole_days() -> None:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert parse_period(None, None, now) == Period(datetime(2026, 9, 2, 9, 30, tzinfo=UTC), now)
    march = parse_period("2026-03-01", "2026-03-30", now)
    assert march == PERIOD  # --until 2026-03-30 runs through that day
    assert parse_period("2026-03-01T12:00:00+08:00", None, now).since == datetime(
        2026, 3, 1, 4, tzinfo=UTC
    )
    with pytest.raises(UserError, match=r"^since:"):
        parse_period("2026-03-31", "2026-03-01", now)
    with pytest.raises(UserError, match=r"^until:"):
        parse_period(None, "March", now)


def test_the_page_holds_every_plot_and_plotly_inline() -> None:
    page = render(report(ledger(), PERIOD, by="jurisdiction"))
    for name in ("roll-rates", "cure-rates", "recovery", "rpc-slot", "rpc-hour", "promises"):
        assert f'data-figure="{name}"' in page
    assert 'data-figure="waiting"' in page
    assert "<script src=" not in page  # nothing loaded from elsewhere
    assert "Plotly.newPlot" in page
