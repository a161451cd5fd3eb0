"""The borrower view (``overdue borrower``), built from ledger rows and the loans' plans."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from overdue.borrowers import (
    BorrowerLoans,
    BudgetRows,
    LoanPlan,
    Plans,
    borrower_view,
    default_strategy,
    limits_for,
    moment_of,
)
from tests.unit.support import local_dt
from workflows.budget import number_key

ZONE = "America/New_York"
BORROWER = "never_answers-b1"
PHONE = "+15550001000"
NUMBER = number_key(PHONE)
# 2026-11-20 15:00 in New York: the borrower's today is the 20th.
AS_OF = local_dt(ZONE, 2026, 11, 20, 15, 0)
OPENED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def loan(loan_id: str, jurisdiction: str = "us", **extra: Any) -> dict[str, Any]:
    row = {
        "loan_id": loan_id,
        "product": "personal",
        "stage": "early",
        "outstanding_minor": 50_000,
        "currency": "USD",
        "jurisdiction": jurisdiction,
        "due_date": date(2026, 11, 18),
        "opened_at": OPENED,
        "closed_at": None,
    }
    return {**row, **extra}


def attempt(
    at: datetime,
    channel: str = "call",
    outcome: str = "no_answer",
    *,
    loan_id: str = "L-1",
    borrower_id: str | None = BORROWER,
    number: str | None = NUMBER,
    target: str = "borrower",
) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "loan_borrower_id": borrower_id,
        "borrower_id": borrower_id,
        "number_key": number,
        "channel": channel,
        "target": target,
        "outcome": outcome,
        "at": at,
    }


def borrower(*loans: dict[str, Any]) -> BorrowerLoans:
    return BorrowerLoans(BORROWER, ZONE, NUMBER, list(loans or (loan("L-1"), loan("L-2"))))


def view(
    budget: BudgetRows | None = None,
    plans: Plans | None = None,
    who: BorrowerLoans | None = None,
    as_of: datetime = AS_OF,
) -> dict[str, Any]:
    return borrower_view(
        who or borrower(),
        budget or BudgetRows(),
        plans or Plans(True),
        as_of=as_of,
        clock="wall",
        max_calls_per_day=3,
    )


def at_local(*parts: int) -> datetime:
    return local_dt(ZONE, 2026, 11, *parts)


def test_the_budget_counts_every_loan_of_the_borrower_and_every_loan_on_the_number() -> None:
    budget = BudgetRows(
        attempts=[
            attempt(at_local(20, 9, 0), loan_id="L-1"),  # unanswered, today
            attempt(at_local(20, 11, 0), outcome="answered", loan_id="L-2"),  # conversation
            attempt(at_local(20, 8, 30), "sms", "delivered", loan_id="L-2"),
            attempt(at_local(18, 10, 0), outcome="busy", loan_id="L-1"),  # this week
            attempt(at_local(13, 10, 0), loan_id="L-1"),  # over seven days ago
            # Another borrower on the same household phone: the number's, not the borrower's.
            attempt(at_local(20, 10, 0), loan_id="L-9", borrower_id="other-b"),
            # The borrower's reference, on a number of its own: neither.
            attempt(at_local(20, 12, 0), loan_id="L-1", number="n-ref", target="contact"),
        ],
        reported=[{"loan_id": "L-1", "channel": "inbound_call", "at": at_local(19, 17, 0)}],
    )
    budget_view = view(budget)["budget"]
    assert budget_view["calls"] == {
        "today": 2,
        "today_limit": 3,
        "today_rule": "daily_calls",
        "week": 3,
        "week_limit": 7,
        "week_rule": "calls_per_week",
    }
    assert budget_view["unanswered_calls_to_number"] == {
        "today": 2,
        "today_limit": None,
        "today_rule": None,
        "week": 3,
        "week_limit": None,
        "week_rule": None,
    }
    assert (budget_view["conversations"]["today"], budget_view["conversations"]["week"]) == (1, 2)
    assert (budget_view["sms"]["today"], budget_view["sms"]["week"]) == (1, 1)
    assert budget_view["last_conversation_at"] == at_local(20, 11, 0).isoformat()
    # us: no call for seven days after a conversation, whichever loan held it.
    assert budget_view["quiet_until"] == (at_local(20, 11, 0) + timedelta(days=7)).isoformat()
    assert budget_view["day"] == "2026-11-20"
    assert budget_view["week_since"] == (AS_OF - timedelta(days=7)).isoformat()


def test_today_is_the_borrower_local_day() -> None:
    # 2026-11-20 03:00 UTC is the 19th, 22:00, in New York and the 20th, 11:00, in Shanghai.
    attempted = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    as_of = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # the 20th in both
    rows = BudgetRows(attempts=[attempt(attempted)])
    new_york = view(rows, as_of=as_of)["budget"]
    assert (new_york["day"], new_york["calls"]["today"], new_york["calls"]["week"]) == (
        "2026-11-20",
        0,
        1,
    )
    in_shanghai = BorrowerLoans(BORROWER, "Asia/Shanghai", NUMBER, [loan("L-1", "cn")])
    shanghai = view(rows, who=in_shanghai, as_of=as_of)["budget"]
    assert (shanghai["day"], shanghai["calls"]["today"]) == ("2026-11-20", 1)
    assert shanghai["as_of_local"] == "2026-11-20 18:00 CST"


def test_attempts_before_number_keys_count_for_the_borrowers_number() -> None:
    old = attempt(at_local(20, 9, 0), number=None)
    old["borrower_id"] = None  # recorded before the budget: known only by its loan
    budget_view = view(BudgetRows(attempts=[old]))["budget"]
    assert budget_view["unanswered_calls_to_number"]["today"] == 1
    assert budget_view["calls"]["today"] == 1


def test_limits_follow_the_profiles_and_the_strategy() -> None:
    cn = limits_for(["cn"], 3)
    assert cn["unanswered_calls_to_number"]["today_limit"] == 6
    assert cn["unanswered_calls_to_number"]["today_rule"] == "unanswered_per_number_per_day"
    assert cn["conversations"]["today_limit"] == 3
    assert cn["calls"]["today_limit"] == 3 and cn["calls"]["week_limit"] is None
    us = limits_for(["us"], 3)
    assert us["calls"]["week_limit"] == 7
    assert us["unanswered_calls_to_number"]["today_limit"] is None
    assert us["conversations"]["today_limit"] is None
    both = limits_for(["us", "cn", "us"], 2)
    assert both["calls"] == {
        "today_limit": 2,
        "today_rule": "daily_calls",
        "week_limit": 7,
        "week_rule": "calls_per_week",
    }
    assert both["conversations"]["today_limit"] == 3
    assert all(v is None for v in both["sms"].values())
    # The shipped default strategy sets the daily calls the CLI shows.
    assert default_strategy().max_calls_per_day == 3


def test_the_limits_are_those_of_the_open_loans() -> None:
    closed_cn = loan("L-0", "cn", closed_at=OPENED + timedelta(days=3))
    limits = view(who=borrower(closed_cn, loan("L-1", "us")))["budget"]
    assert limits["conversations"]["today_limit"] is None
    assert limits["calls"]["week_limit"] == 7


def test_held_places_cease_requests_and_next_contacts() -> None:
    budget = BudgetRows(
        reservations=[
            {
                "loan_id": "L-2",
                "channel": "call",
                "target": "borrower",
                "at": at_local(20, 16, 10),
                "expires_at": at_local(20, 16, 25),
            },
            {  # lapsed: a place that was never used counts no more
                "loan_id": "L-1",
                "channel": "sms",
                "target": "borrower",
                "at": at_local(20, 9, 0),
                "expires_at": at_local(20, 9, 15),
            },
        ],
        ceased_loans=["L-2"],
    )
    call_next = {
        "kind": "call",
        "at_utc": at_local(20, 17, 5).isoformat(),
        "at_local": "2026-11-20 17:05 EST",
        "detail": "reminder · afternoon slot",
    }
    plans = Plans(
        True,
        {
            "L-1": LoanPlan("running", call_next, AS_OF),
            "L-2": LoanPlan("completed"),
            "L-3": LoanPlan("running", {"kind": "on_hold", "at_utc": None}, AS_OF),
        },
    )
    shown = view(budget, plans, borrower(loan("L-1"), loan("L-2"), loan("L-3")))
    assert shown["reservations"] == [
        {
            "loan_id": "L-2",
            "channel": "call",
            "target": "borrower",
            "at_utc": at_local(20, 16, 10).isoformat(),
            "at_local": "2026-11-20 16:10 EST",
            "expires_at": at_local(20, 16, 25).isoformat(),
        }
    ]
    assert (shown["cease_requested"], shown["cease_requested_on"]) == (True, ["L-2"])
    by_loan = {entry["loan_id"]: entry for entry in shown["loans"]}
    assert by_loan["L-1"]["next_contact"] == call_next
    assert by_loan["L-1"]["workflow_status"] == "running"
    assert by_loan["L-2"]["next_contact"] is None  # ended: plans nothing
    assert by_loan["L-2"]["workflow_status"] == "completed"
    assert by_loan["L-3"]["next_contact"] is None  # paused: no contact planned
    assert shown["plans"] == {"available": True, "problem": None}


def test_a_budget_wait_is_the_next_contact() -> None:
    waiting = {"kind": "budget_wait", "at_utc": AS_OF.isoformat(), "detail": "deferred by x"}
    plans = Plans(True, {"L-1": LoanPlan("running", waiting, AS_OF)})
    assert view(plans=plans)["loans"][0]["next_contact"] == waiting


def test_the_loans_as_the_ledger_has_them() -> None:
    closed = OPENED + timedelta(days=9)
    shown = view(who=borrower(loan("L-1", stage="cured", outstanding_minor=0, closed_at=closed)))
    assert shown["loans"] == [
        {
            "loan_id": "L-1",
            "product": "personal",
            "stage": "cured",
            "outstanding_minor": 0,
            "outstanding": "0.00",
            "currency": "USD",
            "jurisdiction": "us",
            "due_date": "2026-11-18",
            "opened_at": OPENED.isoformat(),
            "closed_at": closed.isoformat(),
            "workflow_status": None,
            "next_contact": None,
        }
    ]
    assert shown["borrower_id"] == BORROWER and shown["timezone"] == ZONE


def test_without_temporal_the_ledger_part_stands() -> None:
    down = Plans.unavailable("temporal: cannot reach 127.0.0.1:1")
    shown = view(BudgetRows(attempts=[attempt(at_local(20, 9, 0))]), down)
    assert shown["plans"] == {"available": False, "problem": "temporal: cannot reach 127.0.0.1:1"}
    assert [entry["next_contact"] for entry in shown["loans"]] == [None, None]
    assert shown["budget"]["calls"]["today"] == 1


def test_the_view_holds_no_phone_number_nor_its_key() -> None:
    shown = json.dumps(view(BudgetRows(attempts=[attempt(at_local(20, 9, 0))])))
    assert PHONE not in shown and PHONE[1:] not in shown
    assert NUMBER not in shown


def test_the_moment_is_the_latest_collection_time_on_a_compressed_clock() -> None:
    wall = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    ahead = wall + timedelta(hours=5)
    plans = Plans(
        True,
        {
            "L-1": LoanPlan("running", None, wall + timedelta(hours=2)),
            "L-2": LoanPlan("running", None, ahead),
            "L-3": LoanPlan("completed"),
        },
    )
    assert moment_of(plans, wall) == (ahead, "collection")
    # In production collection time is real time, and a sleeping loan's lags behind it.
    behind = Plans(True, {"L-1": LoanPlan("running", None, wall - timedelta(hours=3))})
    assert moment_of(behind, wall) == (wall, "wall")
    assert moment_of(Plans.unavailable("down"), wall) == (wall, "wall")
