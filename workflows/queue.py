"""The work queue: what a loan waits on a person for, by when, and who is on it.

A loan waits on a person in four of its situations (a dispute to decide, a death report to
verify, an estate to decide, forbearance to review) and for every complaint, which is a case of
its own beside the repayment. Each wait is a **case**: opened when the wait begins, with a
deadline in working days from the strategy (``[people]``); assigned by ``overdue assign``;
escalated to the supervisor queue when its deadline passes; and closed when the decision comes
(or the loan closes), or, for a complaint, when someone resolves it with an outcome.

Everything here is pure: the workflow (``workflows.collection.people``) carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum, nonmember
from zoneinfo import ZoneInfo

# The queue a case goes to when its deadline passes (its ``assignee`` from then on).
SUPERVISOR = "supervisor"
# A ``CaseAction.case_id`` that means the case the loan shows it waits on (``first_waited``).
SHOWN_CASE = "*"


class CaseKind(StrEnum):
    """What a person is asked for: the ``WaitingFor`` search attribute's values, with
    ``operations`` (a failed activity: ``workflows.collection.failures``)."""

    REVIEW = "review"  # approve or reject forbearance (long-term hardship)
    DISPUTE = "dispute"  # uphold or reject a dispute of the debt
    DEATH = "death"  # verify a death report the registry could not
    ESTATE = "estate"  # claim on the estate or write the debt off
    COMPLAINT = "complaint"  # resolve a complaint, a case apart from the repayment


class ComplaintOutcome(StrEnum):
    """How a complaint case ends (``overdue complaint resolve --outcome``)."""

    UPHELD = "upheld"  # the borrower was right; the remedy is in the note
    NOT_UPHELD = "not_upheld"
    WITHDRAWN = "withdrawn"  # the borrower took it back

    ALL = nonmember((UPHELD, NOT_UPHELD, WITHDRAWN))


# The machine's situations that wait on a person, and what the person is asked.
SITUATION_WAITS: dict[str, tuple[CaseKind, str]] = {
    "disputed": (CaseKind.DISPUTE, "uphold or reject the dispute (overdue dispute-resolved)"),
    "deceased_review": (
        CaseKind.DEATH,
        "verify the death report (overdue decide --review death_verification)",
    ),
    "estate_contact": (
        CaseKind.ESTATE,
        "claim on the estate or write the debt off (overdue decide --review estate)",
    ),
    "hardship_review": (
        CaseKind.REVIEW,
        "approve or reject forbearance (overdue decide --review hardship)",
    ),
}
COMPLAINT_ASKED = "resolve the complaint (overdue complaint resolve)"


@dataclass
class CaseDeadlines:
    """Working days (Monday to Friday, borrower-local) a person has for each kind of case.

    Strategy data (``[people]``); the defaults are the packaged strategy's.
    """

    review: int = 5
    dispute: int = 5
    death: int = 3
    estate: int = 10
    complaint: int = 8

    def days_for(self, kind: CaseKind) -> int:
        days: int = getattr(self, kind.value)
        return days


@dataclass
class PersonCase:
    """One wait on a person, as the loan carries it while it is open."""

    case_id: str
    kind: CaseKind
    asked: str
    opened_at: datetime
    deadline: datetime
    team: str = "collections"  # the team whose queue it is in (a complaint's route)
    assignee: str | None = None
    escalated_at: datetime | None = None


@dataclass
class CaseAction:
    """Signal ``case_action`` / update ``take_case_action``: an operator assigns a case or
    resolves a complaint. Idempotent by ``action_id``.

    Exactly one of ``assign_to`` and ``resolve_with`` is given. Any case can be assigned; only
    a complaint is resolved by hand (the other kinds end with their decision). ``case_id`` ``*``
    acts on the case the loan shows it waits on (``WaitingFor``, ``Assignee``).
    """

    action_id: str
    case_id: str
    operator: str
    assign_to: str = ""
    resolve_with: str = ""  # a ``ComplaintOutcome``
    note: str = ""


@dataclass
class CaseBook:
    """The loan's open cases, carried across continue-as-new (``CollectionState.cases``)."""

    open: list[PersonCase] = field(default_factory=list)
    opened: int = 0  # cases opened so far: numbers their ids


def working_days_after(start: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The end of the ``days``-th working day after ``start``'s local day: the local midnight
    that ends it. Saturdays and Sundays do not count; public holidays are not modelled."""
    day: date = start.astimezone(zone).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)


def situation_wait(situation: str) -> tuple[CaseKind, str] | None:
    """The kind of case the machine's situation waits on, and what is asked; or None."""
    return SITUATION_WAITS.get(situation)


def first_waited(cases: list[PersonCase]) -> PersonCase | None:
    """The case the loan shows it waits on (``WaitingFor``, ``Assignee``): the one holding its
    collection (a situation's decision) first, else the oldest complaint."""
    held = [c for c in cases if c.kind != CaseKind.COMPLAINT]
    first = held or cases
    return first[0] if first else None


def target(action: CaseAction, cases: list[PersonCase]) -> PersonCase | None:
    """The open case ``action`` acts on: the one it names, or with ``case_id`` ``*`` the one
    the loan shows it waits on (``first_waited``), which lets one batch signal reassign every
    loan of a query whatever its case's id."""
    if action.case_id == SHOWN_CASE:
        return first_waited(cases)
    return next((c for c in cases if c.case_id == action.case_id), None)


def action_problem(action: CaseAction, cases: list[PersonCase]) -> str | None:
    """Why ``action`` cannot be taken on the loan's open ``cases``, naming the field; or None."""
    if bool(action.assign_to) == bool(action.resolve_with):
        return "assign_to: give exactly one of assign_to and resolve_with"
    case = target(action, cases)
    if case is None:
        known = ", ".join(c.case_id for c in cases) or "none"
        return f"case_id: no open case {action.case_id} on this loan (open: {known})"
    if action.resolve_with:
        if case.kind != CaseKind.COMPLAINT:
            return (
                f"resolve_with: a {case.kind} case ends with its decision, not by hand"
                f" ({case.asked})"
            )
        if action.resolve_with not in ComplaintOutcome.ALL:
            return f"resolve_with: expected one of {', '.join(ComplaintOutcome.ALL)}"
    return None
