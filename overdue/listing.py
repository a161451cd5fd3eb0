"""Listing collections by a visibility query, sorted on the client.

The dev server's visibility store refuses ``ORDER BY`` ("operation is not supported"), so
"largest balances first" cannot be asked of it. ``overdue list`` pages through
``Client.list_workflows`` instead and sorts here, on any custom search attribute
(``workflows.search_attributes.ALL``) or a built-in one (``BUILT_IN_SORT_KEYS``).

Memory: without a limit every matching row is held (a row is a few hundred bytes: 100,000 loans
are tens of MB). With ``limit`` at most ``2 * limit`` rows are held at any time: the rows are
cut back to the best ``limit`` whenever twice that many have come in, so a top-N of any number
of loans costs O(N).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cmp_to_key
from typing import Any

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError

from workflows import search_attributes
from workflows.types import WORKFLOW_TYPE

TYPE_CLAUSE = f'WorkflowType = "{WORKFLOW_TYPE}"'
RUNNING = 'ExecutionStatus = "Running"'
DEFAULT_QUERY = f"{TYPE_CLAUSE} AND {RUNNING}"

# Built-in attributes an execution always reports, by the name a visibility query uses for them.
BUILT_IN_SORT_KEYS = ("StartTime", "CloseTime", "ExecutionTime", "WorkflowId", "ExecutionStatus")

# System attributes the SDK or the server set on an execution (``workflow.patched`` writes
# ``TemporalChangeVersion``): not the project's, so not listed as the execution's own.
_SYSTEM_PREFIXES = ("Temporal", "BuildIds")


class ListingError(ValueError):
    """A query or sort key the server or this module refuses; the message names the option."""


def custom_sort_keys() -> tuple[str, ...]:
    """The project's search attributes, read from the one list in code (others add to it)."""
    return tuple(key.name for key in search_attributes.ALL)


def sort_keys() -> tuple[str, ...]:
    """Every key ``--sort`` accepts, without a direction."""
    return (*custom_sort_keys(), *BUILT_IN_SORT_KEYS)


@dataclass(frozen=True)
class SortKey:
    """A search attribute to sort by, and the direction (``-Name``: descending)."""

    name: str
    descending: bool

    @classmethod
    def parse(cls, text: str) -> SortKey:
        """``OutstandingMinor`` or ``-OutstandingMinor``; an unknown name is a ``ListingError``
        naming ``--sort`` and listing the valid keys."""
        raw = text.strip()
        descending = raw.startswith("-")
        name = raw[1:] if descending or raw.startswith("+") else raw
        valid = sort_keys()
        if name not in valid:
            raise ListingError(
                f"--sort: unknown key {text!r}; use one of {', '.join(valid)}"
                " (a leading - sorts descending)"
            )
        return cls(name, descending)


def collection_query(user_query: str | None, *, running_only: bool = False) -> str:
    """The visibility query for collections: the user's (or running ones by default), always
    held to the collection workflow type, so that the scan and other workflows never match."""
    query = (user_query or "").strip()
    clauses = [TYPE_CLAUSE]
    if running_only or not query:
        clauses.append(RUNNING)
    if query:
        clauses.append(f"({query})")
    return " AND ".join(clauses)


def plain_value(value: Any) -> Any:
    """A search attribute's value as JSON holds it: datetimes in ISO 8601, the rest as typed."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def row_of(execution: WorkflowExecution) -> dict[str, Any]:
    """One listed execution: its ids, status and times, and every custom search attribute it
    carries, by name and typed (an attribute it does not carry is absent)."""
    row: dict[str, Any] = {
        "workflow_id": execution.id,
        "run_id": execution.run_id,
        "status": execution.status.name if execution.status is not None else None,
        "start_time": plain_value(execution.start_time),
        "close_time": plain_value(execution.close_time),
        "execution_time": plain_value(execution.execution_time),
    }
    for pair in execution.typed_search_attributes:
        name = pair.key.name
        if not name.startswith(_SYSTEM_PREFIXES):
            row[name] = plain_value(pair.value)
    return row


_BUILT_IN_FIELDS = {
    "StartTime": "start_time",
    "CloseTime": "close_time",
    "ExecutionTime": "execution_time",
    "WorkflowId": "workflow_id",
    "ExecutionStatus": "status",
}


def sort_value(row: dict[str, Any], key: SortKey) -> Any:
    """The value a row is sorted on, None when it has none."""
    return row.get(_BUILT_IN_FIELDS.get(key.name, key.name))


def _comparable(value: Any) -> Any:
    # ISO 8601 text in UTC sorts as its instant; numbers compare across int and float.
    return float(value) if isinstance(value, bool | int | float) else str(value)


def sort_rows(rows: Iterable[dict[str, Any]], key: SortKey) -> list[dict[str, Any]]:
    """Rows ordered by ``key``; rows without a value come last, whatever the direction.

    The sort is stable: rows with equal values keep the order the server listed them in.
    """

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        va, vb = sort_value(a, key), sort_value(b, key)
        if va is None or vb is None:
            return int(va is None) - int(vb is None)  # missing last
        ca, cb = _comparable(va), _comparable(vb)
        order = int(ca > cb) - int(ca < cb)
        return -order if key.descending else order

    return sorted(rows, key=cmp_to_key(compare))


async def top_rows(
    executions: AsyncIterable[WorkflowExecution], key: SortKey, limit: int | None
) -> tuple[list[dict[str, Any]], int]:
    """Sort what the server lists, page by page; returns the first ``limit`` rows (all without
    a limit) and how many matched in all. At most ``2 * limit`` rows are held at a time."""
    rows: list[dict[str, Any]] = []
    matched = 0
    async for execution in executions:
        rows.append(row_of(execution))
        matched += 1
        if limit is not None and len(rows) >= 2 * max(limit, 1):
            rows = sort_rows(rows, key)[:limit]
    rows = sort_rows(rows, key)
    return (rows[:limit] if limit is not None else rows), matched


def query_problem(error: RPCError) -> str:
    """The server's words on a refused query, naming the option."""
    return f"--query: {error.message}"


async def list_sorted(
    client: Client, query: str, key: SortKey, limit: int | None, *, page_size: int = 500
) -> tuple[list[dict[str, Any]], int]:
    """The collections matching ``query`` (a whole visibility query), sorted by ``key``.

    Raises:
        ListingError: the server refused the query (an unknown attribute, bad syntax).
    """
    try:
        return await top_rows(client.list_workflows(query, page_size=page_size), key, limit)
    except RPCError as error:
        raise ListingError(query_problem(error)) from None
