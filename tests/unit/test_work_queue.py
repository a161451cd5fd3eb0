"""The work queue's rules (``workflows.queue``): deadlines in working days, which case a loan
shows it waits on, and which operator actions a case takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows import queue
from workflows.queue import CaseAction, CaseKind, PersonCase

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("opened", "days", "ends"),
    [
        # Tuesday 1 Dec 2026, 15:00: five working days end with Tuesday 8 Dec.
        (local(NEW_YORK, 2026, 12, 1, 15), 5, local(NEW_YORK, 2026, 12, 9)),
        # Friday evening: the weekend does not count, Monday is the first day.
        (local(NEW_YORK, 2026, 12, 4, 21), 1, local(NEW_YORK, 2026, 12, 8)),
        # Opened on a Saturday: Monday and Tuesday.
        (local(NEW_YORK, 2026, 12, 5, 10), 2, local(NEW_YORK, 2026, 12, 9)),
        # Ten working days are two weeks.
        (local(NEW_YORK, 2026, 12, 1, 9), 10, local(NEW_YORK, 2026, 12, 16)),
    ],
)
def test_a_deadline_counts_working_days_after_the_day_it_opened(
    opened: datetime, days: int, ends: datetime
) -> None:
    assert queue.working_days_after(opened, days, NEW_YORK) == ends


def test_working_days_are_the_borrowers_local_days() -> None:
    # 23:30 UTC on Friday is already Saturday in Shanghai: Monday is the first working day.
    opened = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    assert queue.working_days_after(opened, 1, SHANGHAI) == local(SHANGHAI, 2026, 12, 8)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.integers(min_value=1, max_value=40),
)
def test_a_deadline_gives_at_least_the_working_days_asked(opened: datetime, days: int) -> None:
    at = opened.replace(tzinfo=UTC)
    deadline = queue.working_days_after(at, days, NEW_YORK)
    span = deadline.date() - at.astimezone(NEW_YORK).date()
    whole_days = [at.astimezone(NEW_YORK).date() + timedelta(n) for n in range(1, span.days)]
    assert sum(d.weekday() < 5 for d in whole_days) == days
    assert deadline.astimezone(NEW_YORK).time() == datetime.min.time()
    assert (deadline - timedelta(days=1)).astimezone(NEW_YORK).weekday() < 5


def case(case_id: str, kind: CaseKind, assignee: str | None = None) -> PersonCase:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return PersonCase(case_id, kind, "asked", at, at + timedelta(days=7), assignee=assignee)


def test_the_loan_shows_the_case_that_holds_its_collection_before_a_complaint() -> None:
    complaint = case("L:complaint:o-1", CaseKind.COMPLAINT, "ops:ann")
    dispute = case("L:case:2", CaseKind.DISPUTE)
    assert queue.first_waited([complaint, dispute]) is dispute
    assert queue.first_waited([complaint]) is complaint
    assert queue.first_waited([]) is None


OPEN = [case("L:case:1", CaseKind.DISPUTE), case("L:complaint:o-1", CaseKind.COMPLAINT)]


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (CaseAction("a", "L:case:1", "ops:lead"), "assign_to"),
        (
            CaseAction("a", "L:case:1", "ops:lead", assign_to="x", resolve_with="upheld"),
            "assign_to",
        ),
        (CaseAction("a", "L:case:9", "ops:lead", assign_to="ops:ann"), "case_id"),
        (CaseAction("a", "L:case:1", "ops:lead", resolve_with="upheld"), "resolve_with"),
        (CaseAction("a", "L:complaint:o-1", "ops:lead", resolve_with="maybe"), "resolve_with"),
    ],
)
def test_an_action_a_case_cannot_take_names_the_field(action: CaseAction, field: str) -> None:
    problem = queue.action_problem(action, OPEN)
    assert problem is not None and problem.startswith(f"{field}:")


@pytest.mark.parametrize(
    "action",
    [
        CaseAction("a", "L:case:1", "ops:lead", assign_to="ops:ann"),
        CaseAction("a", "L:complaint:o-1", "ops:lead", assign_to="ops:ann"),
        CaseAction("a", "L:complaint:o-1", "ops:lead", resolve_with="not_upheld"),
    ],
)
def test_any_case_is_assigned_and_a_complaint_resolved(action: CaseAction) -> None:
    assert queue.action_problem(action, OPEN) is None


def test_a_star_acts_on_the_case_the_loan_shows() -> None:
    handover = CaseAction("a", queue.SHOWN_CASE, "ops:lead", assign_to="ops:bo")
    assert queue.target(handover, OPEN) is OPEN[0]
    assert queue.action_problem(handover, OPEN) is None
    assert queue.action_problem(handover, []) is not None
