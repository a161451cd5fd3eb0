"""``overdue list``'s client-side sorting and query building (``overdue.listing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowExecution

from overdue.listing import (
    DEFAULT_QUERY,
    ListingError,
    SortKey,
    collection_query,
    custom_sort_keys,
    sort_rows,
    top_rows,
)
from workflows import search_attributes


def rows(*values: Any, name: str = "OutstandingMinor") -> list[dict[str, Any]]:
    """One row per value, in order, ``None`` meaning the attribute is absent."""
    made = []
    for n, value in enumerate(values):
        row: dict[str, Any] = {"workflow_id": f"collection-L-{n}"}
        if value is not None:
            row[name] = value
        made.append(row)
    return made


def ids(sorted_rows: list[dict[str, Any]]) -> list[str]:
    return [r["workflow_id"][len("collection-L-") :] for r in sorted_rows]


def test_sort_keys_are_read_from_the_project_list_and_the_built_ins() -> None:
    assert custom_sort_keys() == tuple(k.name for k in search_attributes.ALL)
    assert SortKey.parse("-OutstandingMinor") == SortKey("OutstandingMinor", descending=True)
    assert SortKey.parse("DaysPastDue") == SortKey("DaysPastDue", descending=False)
    assert SortKey.parse("+DueDate") == SortKey("DueDate", descending=False)
    assert SortKey.parse("-StartTime") == SortKey("StartTime", descending=True)
    assert SortKey.parse("CloseTime").name == "CloseTime"


def test_an_unknown_sort_key_names_the_option_and_lists_the_valid_ones() -> None:
    with pytest.raises(ListingError) as refused:
        SortKey.parse("-Balance")
    message = str(refused.value)
    assert message.startswith("--sort: unknown key '-Balance'")
    for name in (*custom_sort_keys(), "StartTime", "CloseTime"):
        assert name in message


def test_descending_and_ascending_keep_missing_values_last() -> None:
    given = rows(300, None, 100, 200, None)
    assert ids(sort_rows(given, SortKey("OutstandingMinor", descending=True))) == [
        "0",
        "3",
        "2",
        "1",
        "4",
    ]
    assert ids(sort_rows(given, SortKey("OutstandingMinor", descending=False))) == [
        "2",
        "3",
        "0",
        "1",
        "4",
    ]


def test_equal_values_keep_the_server_order() -> None:
    given = rows(5, 5, 7, 5, name="DaysPastDue")
    assert ids(sort_rows(given, SortKey("DaysPastDue", descending=True))) == [
        "2",
        "0",
        "1",
        "3",
    ]


def test_numbers_compare_across_int_and_float_and_datetimes_as_instants() -> None:
    assert ids(
        sort_rows(
            rows(2, 10.5, 3.25, name="TotalOutstandingAmount"),
            SortKey("TotalOutstandingAmount", True),
        )
    ) == ["1", "2", "0"]
    due = rows("2026-11-30T05:00:00+00:00", "2026-11-02T05:00:00+00:00", name="DueDate")
    assert ids(sort_rows(due, SortKey("DueDate", descending=False))) == ["1", "0"]


def test_built_in_keys_sort_on_the_execution_fields() -> None:
    given = [
        {"workflow_id": "collection-L-0", "start_time": "2026-12-01T10:00:00+00:00"},
        {"workflow_id": "collection-L-1", "start_time": "2026-12-01T09:00:00+00:00"},
    ]
    assert ids(sort_rows(given, SortKey("StartTime", descending=False))) == ["1", "0"]
    assert ids(sort_rows(given, SortKey("WorkflowId", descending=True))) == ["1", "0"]


def test_the_query_is_held_to_collections() -> None:
    assert collection_query(None) == DEFAULT_QUERY
    assert DEFAULT_QUERY == 'WorkflowType = "LoanCollection" AND ExecutionStatus = "Running"'
    assert collection_query('LoanId STARTS_WITH "B-" OR DaysPastDue > 5') == (
        'WorkflowType = "LoanCollection" AND (LoanId STARTS_WITH "B-" OR DaysPastDue > 5)'
    )
    assert collection_query('CollectionStage = "late"', running_only=True) == (
        'WorkflowType = "LoanCollection" AND ExecutionStatus = "Running"'
        ' AND (CollectionStage = "late")'
    )


class FakeExecution:
    """What ``row_of`` reads of a listed execution: stands in for the SDK's own type."""

    def __init__(self, n: int, outstanding: int | None) -> None:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.common import SearchAttributePair, TypedSearchAttributes

        self.id = f"collection-L-{n}"
        self.run_id = f"run-{n}"
        self.status = WorkflowExecutionStatus.RUNNING
        self.start_time = datetime(2026, 12, 1, tzinfo=UTC)
        self.close_time = None
        self.execution_time = self.start_time
        pairs = [SearchAttributePair(search_attributes.LOAN_ID, f"L-{n}")]
        if outstanding is not None:
            pairs.append(SearchAttributePair(search_attributes.OUTSTANDING_MINOR, outstanding))
        self.typed_search_attributes = TypedSearchAttributes(pairs)


async def listed(values: list[int | None]) -> AsyncIterator[WorkflowExecution]:
    for n, value in enumerate(values):
        yield FakeExecution(n, value)  # type: ignore[misc]


async def test_a_limit_keeps_the_top_rows_of_every_page() -> None:
    values: list[int | None] = [(n * 37) % 101 for n in range(100)] + [None, None]
    everything, matched = await top_rows(listed(values), SortKey("OutstandingMinor", True), None)
    top, also_matched = await top_rows(listed(values), SortKey("OutstandingMinor", True), 7)
    assert matched == also_matched == 102
    assert top == everything[:7]
    assert [r["OutstandingMinor"] for r in top] == sorted(
        [v for v in values if v is not None], reverse=True
    )[:7]
    assert top[0]["LoanId"] == top[0]["workflow_id"][len("collection-") :]
    assert top[0]["start_time"] == "2026-12-01T00:00:00+00:00"
    assert "OutstandingMinor" not in everything[-1]
