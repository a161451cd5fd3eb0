"""One borrower across all their loans: the loans, the shared contact budget, and what each
loan plans next (``overdue borrower``).

Budgets belong to people and numbers, not loans (docs/decisions.md, "Borrower-level contact
budget"), so this is the view that shows them: what the borrower's loans, and every loan that
reaches the borrower's phone number, have used of each per-person and per-number limit today
(the borrower-local day) and in the last seven days, next to the limit; the places held in the
budget for planned contacts; whether a cease request stands; and each loan's next contact, from
its running collection.

The ledger is read here (``read_loans``, ``read_budget``) and the plans through the workflows'
``status`` query (``read_plans``); ``borrower_view`` builds the view from those rows and is
pure. The view holds no PII: no name, no phone number (numbers are counted by their key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.strategy import read_strategy
from overdue.worker import package_folder
from workflows import planner, profiles, rotation
from workflows.budget import number_key
from workflows.clock import format_local
from workflows.commands import LoadStrategy
from workflows.money import format_minor
from workflows.strategy import Strategy
from workflows.types import CollectionStatus, workflow_id_for
from workflows.vocabulary import Channel, Outcome, Target

WEEK = planner.WEEK
LOOK_BACK = rotation.KEEP_ATTEMPTS_FOR  # the week, and the whole borrower-local day it starts in
# The next actions that are a contact: a call or a message to the borrower, a reference's call,
# or a contact that waits for room in the borrower's budget (``at_utc``: when it looks again).
CONTACT_KINDS = ("call", "sms", "contact", "budget_wait")
# How long one loan's plan may take to read before it is shown as unavailable.
QUERY_TIMEOUT = timedelta(seconds=5)
MEASURES = ("calls", "unanswered_calls_to_number", "conversations", "sms")
MEASURE_TITLES = {
    "calls": "calls to borrower",
    "unanswered_calls_to_number": "unanswered, number",
    "conversations": "conversations",
    "sms": "SMS to borrower",
}

Row = Mapping[str, Any]


# --- reading --------------------------------------------------------------------------------


def default_strategy() -> Strategy:
    """The strategy a collection loads when none is named: its daily calls are a limit here."""
    return read_strategy(package_folder("strategies") / f"{LoadStrategy().name}.toml")


@dataclass(frozen=True)
class BorrowerLoans:
    """The borrower as the ledger knows them, and their loans (rows of ``loans``)."""

    borrower_id: str
    timezone: str
    number_key: str  # the key of the borrower's phone number; the number itself stays here
    loans: list[dict[str, Any]]


async def read_loans(pool: asyncpg.Pool, borrower_id: str) -> BorrowerLoans | None:
    """The borrower's loans from the ledger, or None when the ledger knows no such borrower."""
    async with pool.acquire() as conn:
        borrower = await conn.fetchrow(
            "SELECT borrower_id, timezone, phone FROM borrowers WHERE borrower_id = $1",
            borrower_id,
        )
        if borrower is None:
            return None
        loans = await conn.fetch(
            "SELECT loan_id, product, stage, outstanding_minor, trim(currency) AS currency,"
            " jurisdiction, due_date, opened_at, closed_at FROM loans WHERE borrower_id = $1"
            " ORDER BY opened_at, loan_id",
            borrower_id,
        )
    return BorrowerLoans(
        borrower_id=borrower["borrower_id"],
        timezone=borrower["timezone"],
        number_key=number_key(borrower["phone"]),
        loans=[dict(r) for r in loans],
    )


@dataclass(frozen=True)
class BudgetRows:
    """What the ledger holds of the borrower's budget since a moment."""

    # Attempts of the borrower's loans, and of any loan that called the borrower's number.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # Conversations reported by a collector or a dialer (``contact_outcomes.conversation``).
    reported: list[dict[str, Any]] = field(default_factory=list)
    # Places held in the budget, not yet used nor released.
    reservations: list[dict[str, Any]] = field(default_factory=list)
    # The loans on which the borrower asked that collection contact stop (at any time).
    ceased_loans: list[str] = field(default_factory=list)


async def read_budget(pool: asyncpg.Pool, borrower: BorrowerLoans, since: datetime) -> BudgetRows:
    """The attempts, reported conversations and held places of the borrower's budget after
    ``since``, and the loans with a cease request."""
    async with pool.acquire() as conn:
        attempts = await conn.fetch(
            "SELECT a.loan_id, l.borrower_id AS loan_borrower_id, a.borrower_id, a.number_key,"
            " a.channel, a.target, a.outcome, a.at_utc AS at"
            " FROM contact_attempts a JOIN loans l USING (loan_id)"
            " WHERE (l.borrower_id = $1 OR a.borrower_id = $1 OR a.number_key = $2)"
            " AND a.at_utc > $3 ORDER BY a.at_utc",
            borrower.borrower_id,
            borrower.number_key,
            since,
        )
        reported = await conn.fetch(
            "SELECT o.loan_id, o.channel, o.at FROM contact_outcomes o JOIN loans l USING (loan_id)"
            " WHERE l.borrower_id = $1 AND o.conversation AND o.at > $2 ORDER BY o.at",
            borrower.borrower_id,
            since,
        )
        reservations = await conn.fetch(
            "SELECT loan_id, channel, target, at, expires_at FROM contact_reservations"
            " WHERE borrower_id = $1 AND status = 'held' AND expires_at > $2"
            " ORDER BY at, loan_id",
            borrower.borrower_id,
            since,
        )
        ceased = await conn.fetch(
            "SELECT DISTINCT a.loan_id FROM audit_log a JOIN loans l USING (loan_id)"
            " WHERE l.borrower_id = $1 AND a.action = 'cease_requested' ORDER BY a.loan_id",
            borrower.borrower_id,
        )
    return BudgetRows(
        attempts=[dict(r) for r in attempts],
        reported=[dict(r) for r in reported],
        reservations=[dict(r) for r in reservations],
        ceased_loans=[r["loan_id"] for r in ceased],
    )


@dataclass(frozen=True)
class LoanPlan:
    """What a loan's collection says of itself: its status, and while it runs, its next action
    (``NextAction`` as JSON) and its collection time."""

    workflow_status: str  # running, completed, terminated, ..., not_found, or unavailable
    next_action: dict[str, Any] | None = None
    collection_time: datetime | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Plans:
    """The loans' plans, or why they could not be read (Temporal down: ``available`` False)."""

    available: bool
    loans: dict[str, LoanPlan] = field(default_factory=dict)
    problem: str | None = None

    @classmethod
    def unavailable(cls, problem: str) -> Plans:
        return cls(False, {}, problem)


async def read_plans(client: Client, loan_ids: Sequence[str]) -> Plans:
    """Each loan's next action, from its running collection's ``status`` query.

    A loan whose collection has ended, or that Temporal does not know, plans nothing. A loan
    whose plan cannot be read (its query times out, as with no worker) is ``unavailable``; when
    no loan's can, the plans as a whole are.
    """
    plans = await asyncio.gather(*(_read_plan(client, loan_id) for loan_id in loan_ids))
    by_loan = dict(zip(loan_ids, plans, strict=True))
    failed = [p for p in plans if p.workflow_status == "unavailable"]
    if plans and len(failed) == len(plans):
        return Plans(False, by_loan, failed[0].problem)
    return Plans(True, by_loan)


async def _read_plan(client: Client, loan_id: str) -> LoanPlan:
    handle = client.get_workflow_handle(workflow_id_for(loan_id))
    try:
        status = (await handle.describe(rpc_timeout=QUERY_TIMEOUT)).status
        if status != WorkflowExecutionStatus.RUNNING:
            return LoanPlan(status.name.lower() if status is not None else "unknown")
        # By name, like ``overdue status``: the query is the workflow's contract, not its class.
        current: CollectionStatus = await handle.query(
            "status", result_type=CollectionStatus, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return LoanPlan("not_found")
        return LoanPlan("unavailable", problem=f"temporal: {error.message or error}")
    except Exception as error:  # a failed query (no worker, a bad payload): this loan only
        return LoanPlan("unavailable", problem=f"temporal: {type(error).__name__}: {error}")
    return LoanPlan(
        "running",
        next_action=_jsonable(asdict(current.next_action)),
        collection_time=current.collection_time,
    )


def moment_of(plans: Plans, wall_now: datetime) -> tuple[datetime, str]:
    """The moment the budget is counted at, and whose clock it is.

    The ledger records contacts in collection time. In production that is real time, and the
    wall clock's now is used (``wall``). On a compressed demo clock collection time runs ahead
    of it, and the latest collection time a running loan reports is used (``collection``): the
    moment of that loan's last wake, so it may lag behind while every loan sleeps.
    """
    times = [p.collection_time for p in plans.loans.values() if p.collection_time is not None]
    latest = max(times, default=None)
    if latest is not None and latest > wall_now:
        return latest.astimezone(UTC), "collection"
    return wall_now.astimezone(UTC), "wall"


# --- the view (pure) ------------------------------------------------------------------------


def limits_for(jurisdictions: Sequence[str], max_calls_per_day: int) -> dict[str, dict[str, Any]]:
    """Each measure's limit today and over seven days, with the rule that sets it.

    The profiles' caps are law (``profiles.PROFILES``); the daily calls are the strategy's. A
    borrower with loans under more than one profile is held to the strictest of each cap.
    """
    laws = [profiles.PROFILES[j] for j in dict.fromkeys(jurisdictions) if j in profiles.PROFILES]

    def strictest(values: list[int | None]) -> int | None:
        given = [v for v in values if v is not None]
        return min(given) if given else None

    def limit(value: int | None, rule: str) -> tuple[int | None, str | None]:
        return value, (rule if value is not None else None)

    per_number = strictest([p.max_unanswered_per_number_per_day for p in laws])
    conversations = strictest([p.max_conversations_per_day for p in laws])
    weekly = strictest([p.max_calls_per_week for p in laws])
    table = {
        "calls": (
            limit(max_calls_per_day, planner.Rule.DAILY_CALLS),
            limit(weekly, planner.Rule.CALLS_PER_WEEK),
        ),
        "unanswered_calls_to_number": (
            limit(per_number, planner.Rule.UNANSWERED_PER_NUMBER_PER_DAY),
            (None, None),
        ),
        "conversations": (
            limit(conversations, planner.Rule.CONVERSATIONS_PER_DAY),
            (None, None),
        ),
        "sms": ((None, None), (None, None)),
    }
    return {
        measure: {
            "today_limit": today[0],
            "today_rule": today[1],
            "week_limit": week[0],
            "week_rule": week[1],
        }
        for measure, (today, week) in table.items()
    }


def borrower_view(
    borrower: BorrowerLoans,
    budget: BudgetRows,
    plans: Plans,
    *,
    as_of: datetime,
    clock: str,
    max_calls_per_day: int,
) -> dict[str, Any]:
    """The borrower view, JSON-ready, from the ledger's rows and the loans' plans.

    Today is the borrower-local day of ``as_of``; the week is the seven days up to it. Calls,
    SMS and conversations are the borrower's (whichever loan made them); unanswered calls are
    the number's (whichever loan or borrower made them).
    """
    zone = ZoneInfo(borrower.timezone)
    today = as_of.astimezone(zone).date()
    week_since = as_of - WEEK

    def is_today(at: datetime) -> bool:
        return at.astimezone(zone).date() == today

    def this_week(at: datetime) -> bool:
        return at > week_since

    def about_borrower(row: Row) -> bool:
        return (row.get("borrower_id") or row.get("loan_borrower_id")) == borrower.borrower_id

    def to_borrower(row: Row, channel: str) -> bool:
        return (
            row["channel"] == channel and row["target"] == Target.BORROWER and about_borrower(row)
        )

    def to_number(row: Row) -> bool:
        # Attempts recorded before number keys existed count for the borrower's own number.
        if row.get("number_key"):
            return bool(row["number_key"] == borrower.number_key)
        return row["target"] == Target.BORROWER and about_borrower(row)

    moments: dict[str, list[datetime]] = {measure: [] for measure in MEASURES}
    for row in budget.attempts:
        if to_borrower(row, Channel.CALL):
            moments["calls"].append(row["at"])
            if row["outcome"] == Outcome.ANSWERED:
                moments["conversations"].append(row["at"])
        if (
            row["channel"] == Channel.CALL
            and row["outcome"] in Outcome.UNANSWERED
            and to_number(row)
        ):
            moments["unanswered_calls_to_number"].append(row["at"])
        if to_borrower(row, Channel.SMS):
            moments["sms"].append(row["at"])
    moments["conversations"] += [row["at"] for row in budget.reported]

    loans = borrower.loans
    open_loans = [loan for loan in loans if loan.get("closed_at") is None] or loans
    limits = limits_for([loan["jurisdiction"] for loan in open_loans], max_calls_per_day)
    used = {
        measure: {
            "today": sum(1 for at in moments[measure] if is_today(at)),
            "week": sum(1 for at in moments[measure] if this_week(at)),
            **limits[measure],
        }
        for measure in MEASURES
    }
    last_conversation = max(moments["conversations"], default=None)
    quiet = [
        profiles.PROFILES[loan["jurisdiction"]].quiet_after_conversation
        for loan in open_loans
        if loan["jurisdiction"] in profiles.PROFILES
    ]
    quiet_for = max((q for q in quiet if q is not None), default=None)
    quiet_until = (
        last_conversation + quiet_for
        if last_conversation is not None
        and quiet_for is not None
        and last_conversation + quiet_for > as_of
        else None
    )
    reservations = [
        {
            "loan_id": r["loan_id"],
            "channel": r["channel"],
            "target": r["target"],
            "at_utc": _iso(r["at"]),
            "at_local": format_local(r["at"], zone),
            "expires_at": _iso(r["expires_at"]),
        }
        for r in sorted(budget.reservations, key=lambda r: (r["at"], r["loan_id"]))
        if r["expires_at"] > as_of
    ]
    return {
        "borrower_id": borrower.borrower_id,
        "timezone": borrower.timezone,
        "loans": [_loan_view(loan, plans) for loan in loans],
        "budget": {
            "as_of": _iso(as_of),
            "as_of_local": format_local(as_of, zone),
            "clock": clock,
            "day": today.isoformat(),
            "week_since": _iso(week_since),
            **used,
            "last_conversation_at": _iso(last_conversation) if last_conversation else None,
            "quiet_until": _iso(quiet_until) if quiet_until else None,
        },
        "reservations": reservations,
        "cease_requested": bool(budget.ceased_loans),
        "cease_requested_on": list(budget.ceased_loans),
        "plans": {"available": plans.available, "problem": plans.problem},
    }


def _loan_view(loan: Row, plans: Plans) -> dict[str, Any]:
    plan = plans.loans.get(loan["loan_id"])
    next_action = plan.next_action if plan is not None else None
    return {
        "loan_id": loan["loan_id"],
        "product": loan["product"],
        "stage": loan["stage"],
        "outstanding_minor": loan["outstanding_minor"],
        "outstanding": format_minor(loan["outstanding_minor"], loan["currency"]),
        "currency": loan["currency"],
        "jurisdiction": loan["jurisdiction"],
        "due_date": _iso(loan["due_date"]),
        "opened_at": _iso(loan["opened_at"]),
        "closed_at": _iso(loan["closed_at"]) if loan.get("closed_at") else None,
        "workflow_status": plan.workflow_status if plan is not None else None,
        "next_contact": (
            next_action
            if next_action is not None and next_action.get("kind") in CONTACT_KINDS
            else None
        ),
    }


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value.isoformat() if hasattr(value, "isoformat") else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return _iso(value) if isinstance(value, datetime) else value
