"""Which activity errors are permanent: the ledger refusing the data itself.

A retry cannot change the answer of a constraint, a value out of range, a character PostgreSQL
cannot store or a key too long for its index: retried, such an activity would fail forever
and the loan would wait behind it for good. ``PermanentErrors``, one interceptor on the worker,
turns these into non-retryable ``ApplicationError`` s of type ``LEDGER_REFUSED``, for every
activity and local activity. Everything else (a lost connection, a database restarting, a
provider timing out) stays retryable, within each activity's limits
(``workflows.collection.context.RetryLimits``).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

LEDGER_REFUSED = "LedgerRefused"

# PostgreSQL's classes 22 (data exception), 23 (integrity constraint violation) and 54 (program
# limit exceeded, e.g. an index row too large), and asyncpg's own refusal to encode an argument
# (an integer out of int64 range): none of them is fixed by asking again.
PERMANENT: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    # Not exported under its own name: ``asyncpg.DataError`` is the server's class 22.
    asyncpg_base.DataError,
)


class PermanentErrors(Interceptor):
    """Marks the ledger's refusals of the data as non-retryable, for every activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Classified(next)


class _Classified(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except PERMANENT as error:
            # Named here: a local activity's failure reaches the workflow without its type.
            raise ApplicationError(
                f"{input.fn.__name__}: the ledger refused the data: {type(error).__name__}:"
                f" {error}",
                type=LEDGER_REFUSED,
                non_retryable=True,
            ) from error
