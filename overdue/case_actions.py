"""Operators' actions on cases: through the loan's collection while it runs, else (a
complaint outliving its collection) in the ledger directly, as the collection would write them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from overdue.cases import case_of, find_open_case, record_change
from workflows import limits, queue
from workflows.collection import LoanCollection
from workflows.commands import CaseChange
from workflows.queue import CaseAction
from workflows.types import CollectionStatus, workflow_id_for


class CaseRefused(ValueError):
    """An action on a case that cannot be taken; the message names the field."""


async def act(client: Client, pool: asyncpg.Pool, action: CaseAction, now: datetime) -> None:
    """Assign a case or resolve a complaint, through the collection that opened it while it runs.

    Raises:
        CaseRefused: the action is outside the limits, the case is not open, or the
            collection refused it (its message names the field).
    """
    problem = limits.case_action_problem(action)
    if problem is not None:
        raise CaseRefused(problem)
    row = await find_open_case(pool, action.case_id)
    if row is None:
        raise CaseRefused(f"case_id: no open case {action.case_id}")
    handle = client.get_workflow_handle(workflow_id_for(row["loan_id"]))
    if not row["collection_ended"] and await _running(handle):
        try:
            await handle.execute_update(
                LoanCollection.take_case_action, action, result_type=CollectionStatus
            )
            return
        except WorkflowUpdateFailedError as failure:
            cause = failure.cause
            raise CaseRefused(
                cause.message if isinstance(cause, ApplicationError) else str(cause)
            ) from None
    # The case's collection has ended (the loan closed, or is collected again): what stays open
    # is a complaint, written here directly.
    case = case_of(row)
    problem = queue.action_problem(action, [case])
    if problem is not None:
        raise CaseRefused(problem)
    change = CaseChange.taken(action, case, row["loan_id"], now)
    async with pool.acquire() as conn, conn.transaction():
        await record_change(conn, change)


async def _running(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        return (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
