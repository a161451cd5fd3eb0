"""A malformed signal is refused whole, audited and shown in ``status``: it never vanishes.

On the time-skipping server with the real activities and PostgreSQL. Each message is sent by
name with a plain JSON object, as the Web UI's signal form or a careless source sends it: a
payment missing most of its fields, an outcome whose ``at`` is not a date, a pause with ``{}``,
a pause without an operator, and a signal with no input at all. The SDK's deserializer would
have dropped the first ones with only a worker log line; each is now a ``message_refused``
audit entry naming the field (never the value) and a refusal in the status, and a whole payment
after them is still applied.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.conftest import Loans
from tests.workflow.support import collecting, poll_status, wait_for_audit
from workflows.collection import LoanCollection
from workflows.types import PaymentReceived

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_malformed_signals_are_refused_audited_and_shown(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, loans: Loans
) -> None:
    loan, handle = await loans.start_new()
    await collecting(handle)
    marker = f"secret-{uuid.uuid4().hex[:8]}"  # a value that must not reach the audit log

    # What the Web UI's form sends when only the id is typed in.
    await handle.signal("payment_received", {"payment_id": "P-1"})
    await handle.signal(
        "contact_outcome", {"outcome_id": "O-1", "source": "dialer:east-1", "at": marker}
    )
    await handle.signal("pause", {})
    await handle.signal("pause", {"reason": "customer asked"})
    await handle.signal("resume")  # no input at all

    sent = [
        "payment_received: amount_minor: is required",
        "contact_outcome: at: is not an ISO date and time",
        "pause: reason: is required",
        "pause: operator: is required",
        "resume: payload: is missing",
    ]
    entries = await wait_for_audit(pool, loan.loan_id, "message_refused", len(sent))
    assert [e["problem"] for e in entries] == sent
    assert all(marker not in e["problem"] for e in entries)

    status = await poll_status(handle, lambda s: len(s.refusals) == len(sent))
    assert [f"{r.message}: {r.problem}" for r in status.refusals] == sent
    assert status.hold is None  # neither pause was taken
    assert status.applied_payment_ids == []

    # A whole payment after them is applied as ever: the loop did not stop on the refusals.
    now = await time_env.get_current_time()
    await handle.signal(
        LoanCollection.payment_received,
        PaymentReceived("P-2", 100, loan.currency, now, "bank:test"),
    )
    status = await poll_status(handle, lambda s: s.applied_payment_ids == ["P-2"])
    assert len(status.refusals) == len(sent)


async def test_malformed_updates_are_refused_naming_the_field(
    time_env: WorkflowEnvironment, loans: Loans
) -> None:
    """An update is refused by its validator before anything is written to history: its caller
    gets the field, where the SDK's deserializer answered "Failed decoding arguments"."""
    _, handle = await loans.start_new()
    await collecting(handle)
    for update, arg, problem in (
        ("apply_payment", {"payment_id": "P-1"}, "amount_minor: is required"),
        ("apply_payment", {"payment_id": "P-1", "amount_minor": "ten"}, "amount_minor: is not"),
        ("pause_collection", {}, "reason: is required"),
        ("pause_collection", {"reason": "fraud check"}, "operator: is required"),
    ):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(update, arg)
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.message.startswith(problem), refused.value.cause.message
