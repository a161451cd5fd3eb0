"""What a repayment schedule says is owed: overdue, outstanding, and days past due."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workflows.schedule import (
    ScheduledInstalment,
    amount_overdue,
    days_past_due,
    is_delinquent,
    oldest_unpaid,
    outstanding,
)

TODAY = date(2026, 12, 1)


def due(days_ago: int, amount: int = 10_000, paid: int = 0) -> ScheduledInstalment:
    return ScheduledInstalment((TODAY - timedelta(days=days_ago)).isoformat(), amount, paid)


def test_days_past_due_count_from_the_oldest_unpaid_instalment() -> None:
    schedule = [due(61, paid=10_000), due(31, paid=2_000), due(1), due(-29)]
    assert days_past_due(schedule, TODAY) == 31
    assert amount_overdue(schedule, TODAY) == 8_000 + 10_000
    assert outstanding(schedule) == 8_000 + 10_000 + 10_000
    assert is_delinquent(schedule, TODAY)


def test_an_instalment_due_today_is_not_yet_past_due() -> None:
    schedule = [due(0), due(-30)]
    assert (days_past_due(schedule, TODAY), amount_overdue(schedule, TODAY)) == (0, 0)
    assert not is_delinquent(schedule, TODAY)


def test_a_paid_up_loan_owes_nothing() -> None:
    schedule = [due(40, paid=10_000), due(10, paid=10_000)]
    assert oldest_unpaid(schedule) is None
    assert (days_past_due(schedule, TODAY), outstanding(schedule)) == (0, 0)


instalments = st.lists(
    st.builds(
        lambda days_ago, amount, paid_share: due(days_ago, amount, amount * paid_share // 4),
        st.integers(-365, 365),
        st.integers(1, 10**9),
        st.integers(0, 4),
    ),
    max_size=24,
)


@given(instalments)
def test_what_is_overdue_is_part_of_what_is_outstanding(
    schedule: list[ScheduledInstalment],
) -> None:
    assert 0 <= amount_overdue(schedule, TODAY) <= outstanding(schedule)
    assert (amount_overdue(schedule, TODAY) > 0) == is_delinquent(schedule, TODAY)
    oldest = oldest_unpaid(schedule)
    if oldest is not None and is_delinquent(schedule, TODAY):
        assert days_past_due(schedule, TODAY) == (TODAY - date.fromisoformat(oldest.due_date)).days
